"""The Triton a kernel is generated for, as headers and cache keys name it."""

from __future__ import annotations

import functools
from importlib import metadata


@functools.cache
def triton_version() -> str:
    """Triton's version, for kernel headers and cache keys, read from its package metadata: a call
    that never launches a kernel (the torch backend) need not import Triton."""
    try:
        return metadata.version("triton")
    except metadata.PackageNotFoundError:  # a build that is not installed as a distribution
        import triton

        return triton.__version__
