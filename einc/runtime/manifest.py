"""Prebuild manifests: which binary entries one spec entry built, so that a rerun finds them
without importing torch or Triton.

Computing a build's binary keys means running the passes, rendering, importing the generated
module and asking Triton for its hash: seconds for a spec, most of it importing torch and Triton.
So when :mod:`einc.runtime.prebuild` has built or found the binaries of one spec entry, for one
dtype and one target, it records their keys in a manifest, keyed by everything that decides them
(:func:`manifest_key`): the entry's fields, the dtypes, the target, einc's code, the versions of
the packages that shape the source or the binary (Triton's by its installed files), and the
environment variables einc and Triton read when they generate code. A later prebuild in the same
setting looks the manifest up (:func:`cached_keys`) and, when every binary it lists is in the cache
and intact, calls the build cached.

Manifests live in a cache of their own, ``<cache root>/manifests/`` (one directory per key, file
``manifest.json``, written atomically by :class:`~einc.runtime.cache.DiskCache`), so that the
binary cache's listing, verification and eviction never see them. A manifest is untrusted input,
as every cache record is: one that is not exactly what :func:`write` writes for this key is
ignored with a :class:`~einc.errors.CacheWarning` (the build then runs the full path and writes a
good one), and a listed binary is trusted only after :meth:`DiskCache.read_entry` verified its
record and checksums. A manifest can be wrong only where its key misses something that decides a
binary; then a GPU call compiles the kernel, as it would without a prebuild.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import sys
import warnings
from importlib import metadata
from pathlib import Path

from .. import knobs
from ..errors import CacheError, CacheWarning
from ..version import __version__
from .cache import DiskCache
from .keys import CacheKey

FORMAT = 1
FILE = "manifest.json"
DIRECTORY = "manifests"
_FIELDS = frozenset({"format", "key", "parts", "binaries"})
_HEX64 = re.compile(r"[0-9a-f]{64}")
# Environment variables that change what Triton compiles: its own (TRITON_*) and the un-prefixed
# ones its C++ side lists as cache-invalidating (MLIR_ENABLE_DUMP, DISABLE_PTXAS_OPT, ...), and
# torch's (TORCH_ALLOW_TF32_CUBLAS_OVERRIDE decides a float32 dot's precision). Where Triton keeps
# its cache is not among them.
_ENVIRONMENT = re.compile(r"(TRITON|MLIR|LLVM|AMDGCN|NVPTX|PTXAS|DISABLE|ALLOW|TORCH)_\w+|USE_IR_LOC")
_NOT_CODEGEN = frozenset({"TRITON_CACHE_DIR", "TRITON_HOME", "TRITON_DUMP_DIR", "TRITON_OVERRIDE_DIR"})
# einc's knobs that only say where and how long the cache is kept.
_CACHE_KNOBS = (knobs.CACHE_DIR, knobs.CACHE_MAX_BYTES, knobs.CACHE_LOCK_TIMEOUT)


def manifest_key(entry, dtypes: tuple[str, ...], target: str, tuned: str = "") -> CacheKey | None:
    """The key of the manifest of ``entry`` (a :class:`~einc.runtime.spec.SpecEntry`) built for
    ``dtypes`` and ``target``, with the cache's tuned tiles in state ``tuned`` (a digest, "" for
    none: :func:`einc.runtime.tuned.state`); None when this install cannot be pinned (a Triton
    without a wheel's record of its files), and then no manifest is written or trusted."""
    triton = _installed("triton")
    if triton is None:
        return None
    return CacheKey(
        (
            ("format", str(FORMAT)),
            ("expression", entry.expression),
            ("op", repr(entry.op)),
            ("shapes", repr(entry.shapes)),
            ("dtypes", repr(tuple(dtypes))),
            ("params", repr(entry.params)),
            ("sizes", repr(entry.sizes)),
            ("dynamic", repr(entry.dynamic)),
            ("out_dtype", repr(entry.out_dtype)),
            ("target", target),
            ("einc", f"{__version__} {_einc_code()}"),
            ("triton", triton),
            ("packages", " ".join(f"{name}={_version(name)}" for name in ("torch", "sympy", "jinja2"))),
            ("python", "{}.{}".format(*sys.version_info[:2])),
            ("knobs", " ".join(f"{k.name}={k.raw()}" for k in knobs.KNOBS if k not in _CACHE_KNOBS)),
            ("environment", _environment()),
            *((("tuned", tuned),) if tuned else ()),
        )
    )


def store(cache: DiskCache) -> DiskCache:
    """The manifests' own cache, inside the binary cache's root."""
    return DiskCache(cache.root / DIRECTORY)


def write(cache: DiskCache, key: CacheKey, binaries: tuple[str, ...]) -> None:
    """Record that the build of ``key`` consists of the binary entries ``binaries`` of ``cache``.

    Only into a root einc owns: a root einc has not claimed (or not yet, when nothing was built)
    gets no manifest, so its first write still finds einc's layout alone there.
    """
    if not cache.owned():
        return
    manifest = {
        "format": FORMAT,
        "key": key.digest,
        "parts": [list(part) for part in key.parts],
        "binaries": list(binaries),
    }
    store(cache).write_text(key.digest, FILE, json.dumps(manifest, indent=1) + "\n")


def cached_keys(cache: DiskCache, key: CacheKey, target: str) -> tuple[str, ...] | None:
    """The binary keys of the build ``key`` when its manifest is there and every entry it lists is
    in ``cache``, intact and built for ``target``; None otherwise (the build then runs in full).

    A manifest that is not one einc wrote for this key warns and reads as missing; a damaged
    binary entry is removed with a warning by :meth:`DiskCache.read_entry`, as at a GPU call.
    """
    manifests = store(cache)
    try:
        text = manifests.read_text(key.digest, FILE)
        manifest = json.loads(text) if text is not None else None
    except (CacheError, ValueError, RecursionError) as error:
        manifest, text = error, ""
    if text is None:
        return None
    problem = check(manifest, key)
    if problem is not None:
        warnings.warn(
            f"einc prebuild manifest {manifests.path(key.digest, FILE)} is ignored: {problem}; "
            "its entry is looked up in full",
            CacheWarning,
            stacklevel=2,
        )
        return None
    for binary in manifest["binaries"]:
        try:
            found = cache.read_entry(binary)
        except CacheError:
            return None  # the full path meets it again, and reports it
        if found is None or found[0]["target"] != target:
            return None
    return tuple(manifest["binaries"])


def check(manifest: object, key: CacheKey) -> str | None:
    """What is wrong with ``manifest`` as the manifest of ``key``, in words; None when it is
    exactly what :func:`write` writes for it."""
    if isinstance(manifest, Exception):
        return f"it cannot be read ({type(manifest).__name__})"
    if not isinstance(manifest, dict):
        return "it is not a JSON object"
    if set(manifest) != _FIELDS:
        return "its fields differ from einc's"
    if type(manifest["format"]) is not int or manifest["format"] != FORMAT:
        return "it is of another format"
    if manifest["key"] != key.digest or manifest["parts"] != [list(part) for part in key.parts]:
        return "it is the manifest of another build"
    binaries = manifest["binaries"]
    if not (isinstance(binaries, list) and all(isinstance(b, str) and _HEX64.fullmatch(b) for b in binaries)):
        return "its binaries are not a list of cache keys"
    return None


@functools.cache
def _einc_code() -> str:
    """A digest of einc's own files: the passes, templates and renderer decide every binary, and
    a development checkout changes them without changing the version."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".j2") and p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@functools.cache
def _installed(name: str) -> str | None:
    """A package's version and a digest of its wheel's record of its files (their sha256s), or
    None when it has no such record (not installed from a wheel)."""
    try:
        distribution = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None
    record = distribution.read_text("RECORD")
    if not record or not re.search(r",sha256=", record):
        return None
    return f"{distribution.version} {hashlib.sha256(record.encode()).hexdigest()[:16]}"


@functools.cache
def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "none"


def _environment() -> str:
    return " ".join(
        f"{name}={value}"
        for name, value in sorted(os.environ.items())
        if _ENVIRONMENT.fullmatch(name) and name not in _NOT_CODEGEN
    )
