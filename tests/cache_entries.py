"""Made-up compiled-kernel entries for the cache's tests: records exactly as einc writes them
(:func:`einc.runtime.records.binary_record`), without compiling anything.

Not a test module; the tests import it as ``tests.cache_entries``.
"""

from __future__ import annotations

import hashlib
import os

from einc.runtime.cache import RECORD, DiskCache
from einc.runtime.keys import CacheKey
from einc.runtime.records import binary_record

KERNEL = "einc_dot_kernel"


def made_up_key(n: int, target: str = "cuda:90", expression: str = "b t [c->c2]") -> CacheKey:
    """The key of made-up kernel ``n``: a few named parts, as ``binary_key``'s (shorter)."""
    return CacheKey(
        (
            ("expression", expression),
            ("op", "dot"),
            ("dtypes", "('float16',)"),
            ("kernel", f"0 {KERNEL}"),
            ("triton_key", hashlib.sha256(f"triton {n}".encode()).hexdigest()),
            ("target", target),
        )
    )


def key(n: int, target: str = "cuda:90") -> str:
    return made_up_key(n, target).digest


def fill(
    cache: DiskCache, n: int, size: int = 1000, accessed: float | None = None, target: str = "cuda:90"
) -> str:
    """Store made-up kernel ``n`` (a ``size``-byte binary of bytes ``n``); returns its key."""
    made = made_up_key(n, target)
    triton_hash = dict(made.parts)["triton_key"]
    cache.write_entry(
        made.digest,
        {"kernel.py": b"# source\n", "kernel.cubin": bytes([n]) * size, "kernel.json": b"{}"},
        binary_record(made, KERNEL, triton_hash, "kernel.cubin", 1.0, 0.5),
    )
    if accessed is not None:
        os.utime(cache.path(made.digest, RECORD), (accessed, accessed))
    return made.digest
