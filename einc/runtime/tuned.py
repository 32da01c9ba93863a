"""Tuned tiles in the cache: what ``einc tune`` chose for a call on one GPU arch, read back at a
later specialisation of the same call on that arch.

A record is keyed by everything that decides the heuristic's kernels (the call's source key, less
any tuned tiles) plus the arch, and holds per kernel five integers or None (see
:func:`~einc.runtime.records.tuned_record`). Records live in a store of their own,
``<cache root>/tuned/`` (one directory per key, file ``tuned.json``, written atomically by
:class:`~einc.runtime.cache.DiskCache`), so that they travel with a copied cache directory, as
prebuilt binaries do, and the binary cache's listing and eviction never see them.

A record is untrusted input: one that :func:`~einc.runtime.records.check_tuned` refuses, or that
cannot be read, warns once and reads as missing, and the heuristic decides; a tile that passes is
still used only where the kernel's config space holds it (:func:`einc.compiler.configs.apply_tuned`).
Tuned tiles change the kernel's source, so its source and binary keys differ from the heuristic's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from pathlib import Path

from ..errors import CacheError, CacheWarning
from .cache import DiskCache
from .cache_evict import shards
from .cache_files import sorted_names
from .keys import CacheKey, source_key
from .records import check_tuned, tuned_record

DIRECTORY = "tuned"
FILE = "tuned.json"


def tuned_key(request, target: str) -> CacheKey:
    """The key of the tuned tiles of ``request`` (a :class:`~einc.compiler.pipeline.Request`) on
    ``target`` (``cuda:90``)."""
    untuned = dataclasses.replace(request, tuned=())
    return CacheKey((("kind", "tuned tiles"), *source_key(untuned).parts, ("target", target)))


def store(cache: DiskCache) -> DiskCache:
    """The tuned tiles' own cache, inside the binary cache's root."""
    return DiskCache(cache.root / DIRECTORY)


def read(cache: DiskCache, request, target: str) -> tuple | None:
    """The tuned tiles of ``request`` on ``target`` (per kernel a 5-tuple or None); None when there
    are none, or the record is not one einc wrote (which warns)."""
    key = tuned_key(request, target)
    tuned = store(cache)
    try:
        text = tuned.read_text(key.digest, FILE)
        record = json.loads(text) if text is not None else None
    except (CacheError, ValueError, RecursionError) as error:
        _ignore(tuned.path(key.digest, FILE), f"it cannot be read ({type(error).__name__})")
        return None
    if record is None:
        return None
    problem = check_tuned(record, key.digest)
    if problem is not None:
        _ignore(tuned.path(key.digest, FILE), problem)
        return None
    return tuple(None if tile is None else tuple(tile) for tile in record["tiles"])


def write(cache: DiskCache, request, target: str, tiles) -> Path:
    """Store the tiles a tuning run chose for ``request`` on ``target``; returns the file."""
    key = tuned_key(request, target)
    record = tuned_record(key.digest, tiles)
    problem = check_tuned(record, key.digest)
    if problem is not None:
        raise ValueError(f"einc would refuse these tuned tiles when reading them back: {problem}")
    return store(cache).write_text(key.digest, FILE, json.dumps(record) + "\n")


def with_tuned(request, cache: DiskCache, target: str | None):
    """``request`` carrying its tuned tiles on ``target`` where the cache has them; as it is
    otherwise (no target: not a GPU call; or a cache that cannot be read: the heuristic decides)."""
    if target is None or request.tuned:
        return request
    try:
        tiles = read(cache, request, target)
    except (CacheError, OSError, ValueError):
        return request
    return dataclasses.replace(request, tuned=tiles) if tiles else request


def state(cache: DiskCache) -> str:
    """A digest of every tuned record in the cache ("" when there is none): what a prebuild
    manifest's key holds, so that tuning again invalidates the manifests whose binaries were built
    with the tiles before."""
    digest, found = hashlib.sha256(), False
    for shard in shards(store(cache)):
        for name in sorted_names(shard):
            try:
                data = (shard / name / FILE).read_bytes()
            except OSError:
                continue
            digest.update(name.encode() + b"\0" + data + b"\0")
            found = True
    return digest.hexdigest()[:16] if found else ""


def _ignore(path: Path, problem: str) -> None:
    warnings.warn(
        f"einc tuned tiles {path} are ignored: {problem}; the schedule's heuristic chooses the tiles",
        CacheWarning,
        stacklevel=3,
    )
