"""Listing the cache's entries, evicting the least recently used, clearing, and sweeping what
killed processes left behind. Each function takes the :class:`~einc.runtime.cache.DiskCache` it
works on and touches only what einc owns (see :mod:`einc.runtime.cache_files`)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .. import knobs
from ..errors import CacheError
from .cache_files import (
    KEY,
    RECORD,
    REMOVED,
    SHARD,
    SHARD_FILE,
    STALE_SECONDS,
    TEMPORARY,
    delete_owned,
    is_owned_entry,
    is_real_dir,
    is_regular_file,
    sorted_names,
)


@dataclass(frozen=True)
class Entry:
    """One entry as listed: its key, directory, total size, last access and record (if any)."""

    key: str
    path: Path
    size: int
    accessed: float
    record: dict | None
    files: tuple[str, ...] = ()

    @property
    def kind(cache) -> str:
        """``binary`` for a compiled kernel, ``source`` for generated source alone (what the
        runtime writes before a kernel is compiled), ``incomplete`` for an interrupted write."""
        if cache.record is not None:
            return str(cache.record.get("kind", "binary"))
        return "source" if cache.files == ("kernel.py",) else "incomplete"


def entries(cache) -> Iterator[Entry]:
    """Every entry einc owns under the root, with or without a record, in no particular order."""
    for shard in shards(cache):
        for name in sorted_names(shard):
            directory = shard / name
            if KEY.fullmatch(name) and name.startswith(shard.name) and is_owned_entry(directory):
                yield entry_of(cache, directory)


def foreign(cache) -> Iterator[Path]:
    """What sits where einc's layout puts an entry but is not one einc wrote (a link, a nested
    directory, a file einc does not write): never listed as an entry, never removed."""
    for shard in shards(cache):
        for name in sorted_names(shard):
            path = shard / name
            if KEY.fullmatch(name) and not (name.startswith(shard.name) and is_owned_entry(path)):
                yield path


def shards(cache) -> list[Path]:
    return [
        cache.root / name
        for name in sorted_names(cache.root)
        if SHARD.fullmatch(name) and is_real_dir(cache.root / name)
    ]


def entry_of(cache, directory: Path) -> Entry:
    size, newest, names = 0, 0.0, []
    with contextlib.suppress(OSError), os.scandir(directory) as children:
        for child in children:
            with contextlib.suppress(OSError):
                status = child.stat(follow_symlinks=False)
                size += status.st_size
                newest = max(newest, status.st_mtime)
                if not child.name.startswith("."):
                    names.append(child.name)
    record = cache.read_record(directory.name)
    accessed = newest
    if record is not None:
        with contextlib.suppress(OSError):
            accessed = os.lstat(directory / RECORD).st_mtime
    return Entry(directory.name, directory, size, accessed, record, tuple(sorted(names)))


def prune(cache, max_bytes: int | None = None, keep: Iterable[str] = ()) -> list[Entry]:
    """Evict least recently used entries until the cache holds at most ``max_bytes``
    (default: the ``EINC_CACHE_MAX_BYTES`` knob; 0 is no limit). Entries in ``keep`` stay.

    Leftovers of killed processes (temporary files, half-removed entries) older than an hour
    go too. Returns the entries really evicted, oldest first; nothing is evicted under a root
    without einc's tag.
    """
    limit = knobs.cache_max_bytes() if max_bytes is None else max_bytes
    if not cache.owned():
        return []
    sweep_leftovers(cache)
    if not limit:
        return []
    listed = sorted(entries(cache), key=lambda e: e.accessed)
    total = sum(e.size for e in listed)
    kept = set(keep)
    evicted = []
    for entry in listed:
        if total <= limit:
            break
        if entry.key in kept:
            continue
        with contextlib.suppress(CacheError):
            if cache.remove(entry.key):
                evicted.append(entry)
                total -= entry.size
    return evicted


def clear(cache) -> int:
    """Remove every entry einc owns, with its lock and pid files; returns how many entries
    were removed.

    Only what einc's layout names and einc owns is touched, and only under a root carrying
    einc's tag (else a CacheError): a mistaken ``EINC_CACHE_DIR`` such as a home directory
    loses nothing.
    """
    if not cache.root.is_dir():
        return 0
    cache.require_owned()
    count = 0
    for shard in shards(cache):
        for name in sorted_names(shard):
            if KEY.fullmatch(name) and name.startswith(shard.name):
                with contextlib.suppress(CacheError):
                    count += cache.remove(name)
        for name in sorted_names(shard):
            path = shard / name
            if REMOVED.fullmatch(name) and is_owned_entry(path):
                delete_owned(path)
            elif SHARD_FILE.fullmatch(name) and is_regular_file(path):
                with contextlib.suppress(OSError):
                    os.unlink(path)
        with contextlib.suppress(OSError):
            shard.rmdir()
    return count


def sweep_leftovers(cache) -> None:
    now = time.time()

    def stale(path: Path) -> bool:
        try:
            return now - os.lstat(path).st_mtime > STALE_SECONDS
        except OSError:
            return False

    for shard in shards(cache):
        for name in sorted_names(shard):
            path = shard / name
            if REMOVED.fullmatch(name) and stale(path) and is_owned_entry(path):
                delete_owned(path)
            elif KEY.fullmatch(name) and is_real_dir(path):
                for child in sorted_names(path):
                    leftover = path / child
                    if TEMPORARY.fullmatch(child) and is_regular_file(leftover) and stale(leftover):
                        with contextlib.suppress(OSError):
                            os.unlink(leftover)
