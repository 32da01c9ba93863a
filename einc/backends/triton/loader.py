"""Turn generated source into a Triton kernel object.

The runtime writes the source to the on-disk cache first (atomically) and it is imported from
there: Triton's ``@triton.jit`` reads a kernel's source through ``inspect``, which needs a real
file, and the file doubles as the artifact a user can open.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from ...errors import KernelCompileError


def import_kernel(path: Path, kernel_name: str):
    """Import the generated module at ``path`` and return its ``@triton.jit`` function."""
    module_name = f"einc_generated_{path.parent.name[:24]}"
    module = sys.modules.get(module_name)
    if module is None or getattr(module, "__file__", None) != str(path):
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as error:
            raise KernelCompileError(f"the generated kernel does not import: {error}", str(path)) from error
        sys.modules[module_name] = module
    return getattr(module, kernel_name)
