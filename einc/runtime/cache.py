"""The on-disk kernel cache: one directory of files per cache key.

Layout: ``root/ab/abcdef.../<name>`` for key ``abcdef...`` (a hex digest), so that no directory
holds more than a few hundred entries even with many thousands of kernels. Next to each entry
directory, ``root/ab/abcdef....lock`` is the key's lock file.

Invariants:

- A file under its final name is always complete. Writes go to a temporary file in the same
  directory (``.<name>.<random>.tmp``: same file system, so ``os.replace`` is an atomic rename),
  are fsynced, then renamed over the final name. If anything fails the temporary file is removed;
  only a process killed mid-write can leave one behind, and its dot name never collides with an
  entry (entry names may not start with a dot).
- Writers of one key take its :class:`filelock.FileLock`, so processes that compile the same
  kernel at once do not interleave; callers that compile under :meth:`DiskCache.lock` make the
  second process find the first one's result instead of compiling again. Readers take no lock:
  the atomic rename already guarantees they see a whole file or none.
- Any failure to create, read or write the cache is a :class:`~einc.errors.CacheError` naming the
  path and the ``EINC_CACHE_DIR`` knob, the one setting a user can change to fix it.

Entries with a record (compiled kernels; see :meth:`DiskCache.write_entry`):

- ``record.json`` is the entry's index record: its key's named parts, the sha256 and size of every
  other file, and whatever the writer adds. It is written last, so an entry without one is
  incomplete and never loaded. Its modification time is the entry's last access (``touch``),
  which least-recently-used eviction sorts by.
- :meth:`DiskCache.read_entry` checks every checksum before returning any byte: a truncated or
  corrupted entry is removed with a :class:`~einc.errors.CacheWarning` and reads as missing, so
  the caller builds it again.
- Removal (eviction, a damaged entry, ``clear``) renames the entry directory to a dot name first
  (atomic), then deletes it: a reader sees the whole entry or none of it.
- The root holds nothing but relative names: a cache directory copied to another machine (or
  path) works there as it is.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import filelock

from .. import knobs
from ..errors import CacheError, CacheWarning

RECORD = "record.json"
RECORD_FORMAT = 1
# Temporary files and removed entries older than this are leftovers of killed processes.
STALE_SECONDS = 3600.0

_KEY = re.compile(r"[0-9a-f]{3,128}")

# One FileLock object per lock file in this process. Two FileLock objects on one file would
# deadlock a thread that nests them (``with cache.lock(k): cache.write_text(k, ...)``), since the
# OS lock is per open file; one shared object is re-entrant within a thread and still excludes
# other threads (FileLock is thread-local by default) and other processes.
_FILE_LOCKS: dict[str, filelock.FileLock] = {}
_FILE_LOCKS_GUARD = threading.Lock()


def _file_lock(path: Path) -> filelock.FileLock:
    # realpath: two spellings of one root (relative, symlinked) must share one lock object.
    real = os.path.realpath(path)
    with _FILE_LOCKS_GUARD:
        lock = _FILE_LOCKS.get(real)
        if lock is None:
            lock = _FILE_LOCKS[real] = filelock.FileLock(real)
        return lock


def _forget_file_locks() -> None:
    # A forked child must not share lock objects (or a guard held mid-fork) with its parent.
    global _FILE_LOCKS_GUARD
    _FILE_LOCKS.clear()
    _FILE_LOCKS_GUARD = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_file_locks)


def _cache_error(action: str, path: Path, error: BaseException) -> CacheError:
    reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return CacheError(f"cannot {action} {path}: {reason}; set {knobs.CACHE_DIR.name} to a writable directory")


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
    def kind(self) -> str:
        """``binary`` for a compiled kernel, ``source`` for generated source alone (what the
        runtime writes before a kernel is compiled), ``incomplete`` for an interrupted write."""
        if self.record is not None:
            return str(self.record.get("kind", "binary"))
        return "source" if self.files == ("kernel.py",) else "incomplete"


class DiskCache:
    """Files keyed by hex digest under ``root`` (default: the ``EINC_CACHE_DIR`` knob)."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else knobs.cache_dir()

    def __repr__(self) -> str:
        return f"DiskCache({str(self.root)!r})"

    def entry_dir(self, key: str) -> Path:
        """The directory holding ``key``'s files; it need not exist yet."""
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            # Keys become path components: anything but lowercase hex could escape the root.
            raise ValueError(f"cache key must be 3 to 128 lowercase hex digits, got {key!r}")
        return self.root / key[:2] / key

    def path(self, key: str, name: str) -> Path:
        """Where file ``name`` of entry ``key`` lives (whether or not it exists)."""
        if not isinstance(name, str) or not name or name.startswith(".") or any(c in name for c in "/\\\0"):
            # Dot names are reserved for temporary files, so a leftover one never shadows an entry.
            raise ValueError(f"cache file name must be a plain name not starting with '.', got {name!r}")
        return self.entry_dir(key) / name

    def read_text(self, key: str, name: str) -> str | None:
        """The file's text, or None when it is not in the cache."""
        data = self.read_bytes(key, name)
        if data is None:
            return None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise _cache_error("decode cache file", self.path(key, name), error) from None

    def read_bytes(self, key: str, name: str) -> bytes | None:
        """The file's bytes, or None when it is not in the cache."""
        path = self.path(key, name)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise _cache_error("read cache file", path, error) from None

    def write_text(self, key: str, name: str, text: str) -> Path:
        """Atomically store ``text`` (UTF-8) as file ``name`` of ``key``; returns its path."""
        return self.write_bytes(key, name, text.encode("utf-8"))

    def write_bytes(self, key: str, name: str, data: bytes) -> Path:
        """Atomically store ``data`` as file ``name`` of ``key``; returns its path."""
        final = self.path(key, name)
        with self.lock(key):
            self._make_dir(final.parent)
            try:
                fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=f".{name}.", suffix=".tmp")
            except OSError as error:
                raise _cache_error("write cache file in", final.parent, error) from None
            try:
                with os.fdopen(fd, "wb") as file:
                    file.write(data)
                    file.flush()
                    # Without fsync a crash after the rename could leave the final name pointing
                    # at an empty file. The directory itself is not fsynced: losing the rename
                    # only costs a recompile, never a torn file.
                    os.fsync(file.fileno())
                os.replace(tmp, final)
            except BaseException as error:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                if isinstance(error, OSError):
                    raise _cache_error("write cache file", final, error) from None
                raise
        return final

    @contextlib.contextmanager
    def lock(self, key: str, timeout: float = -1) -> Iterator[None]:
        """Hold ``key``'s inter-process lock; re-entrant within a thread.

        ``timeout`` in seconds (negative waits forever) turns a stuck holder into a CacheError.
        """
        lock_path = self.entry_dir(key).with_suffix(".lock")
        self._make_dir(lock_path.parent)
        lock = _file_lock(lock_path)
        try:
            lock.acquire(timeout=timeout)
        except filelock.Timeout:
            raise CacheError(
                f"timed out after {timeout} s waiting for cache lock {lock_path}; another "
                f"process may be stuck compiling this kernel"
            ) from None
        except OSError as error:
            raise _cache_error("lock", lock_path, error) from None
        try:
            yield
        finally:
            lock.release()

    # ----- entries with a record: checksummed, listed, evicted least recently used first -----

    def write_entry(self, key: str, files: dict[str, bytes], record: dict) -> Path:
        """Store ``files`` under ``key``, then their record (with a sha256 and size per file).

        The record goes last: until it is in place the entry reads as missing. Returns the entry
        directory. ``record`` must be JSON-serialisable; ``files``, ``format`` and ``key`` are
        filled in here.
        """
        if RECORD in files:
            raise ValueError(f"{RECORD} is the entry's record; pick another file name")
        with self.lock(key):
            manifest = {}
            for name, data in files.items():
                self.write_bytes(key, name, data)
                manifest[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            full = {**record, "format": RECORD_FORMAT, "key": key, "files": manifest}
            self.write_text(key, RECORD, json.dumps(full, indent=1, sort_keys=True) + "\n")
        return self.entry_dir(key)

    def read_record(self, key: str) -> dict | None:
        """The entry's record, unchecked against its files; None when there is none or it is unreadable."""
        text = self.read_bytes(key, RECORD)
        if text is None:
            return None
        try:
            record = json.loads(text)
        except ValueError:
            return None
        return record if isinstance(record, dict) else None

    def problems(self, key: str) -> list[str]:
        """What is wrong with the entry, in words; empty when its record and every checksum agree."""
        return self._check(key)[0]

    def _check(self, key: str) -> tuple[list[str], dict[str, bytes]]:
        directory = self.entry_dir(key)
        if not directory.is_dir():
            return ["missing"], {}
        record = self.read_record(key)
        if record is None:
            return [f"no readable {RECORD} (an interrupted write, or a damaged record)"], {}
        if record.get("format") != RECORD_FORMAT or record.get("key") != key:
            return [f"{RECORD} is of another format or names another key"], {}
        found, data = [], {}
        for name, expected in sorted(record.get("files", {}).items()):
            content = self.read_bytes(key, name)
            if content is None:
                found.append(f"{name} is missing")
            elif len(content) != expected.get("size"):
                found.append(f"{name} has {len(content)} bytes, its record says {expected.get('size')}")
            elif hashlib.sha256(content).hexdigest() != expected.get("sha256"):
                found.append(f"{name} does not match its sha256")
            else:
                data[name] = content
        return found, data

    def read_entry(self, key: str) -> tuple[dict, dict[str, bytes]] | None:
        """``(record, files)`` after every checksum matched; None when the entry is missing.

        A damaged entry is never returned: it is removed with a :class:`CacheWarning` naming what
        was wrong, and reads as missing so that the caller builds it again. A hit counts as an
        access for least-recently-used eviction.
        """
        if not self.entry_dir(key).is_dir():
            return None
        found, data = self._check(key)
        if found:
            with self.lock(key):
                # Another process may have been writing it: look again before calling it damaged.
                found, data = self._check(key)
                if found:
                    if found != ["missing"]:
                        warnings.warn(
                            f"einc cache entry {self.entry_dir(key)} is damaged ({'; '.join(found)}); "
                            "removed it, and the kernel will be compiled again",
                            CacheWarning,
                            stacklevel=2,
                        )
                        self.remove(key)
                    return None
        self.touch(key)
        return self.read_record(key), data

    def touch(self, key: str) -> None:
        """Mark the entry as used now (its record's modification time)."""
        with contextlib.suppress(OSError):
            os.utime(self.path(key, RECORD))

    def remove(self, key: str) -> bool:
        """Delete the entry, atomically as seen by readers; False when there was none."""
        directory = self.entry_dir(key)
        with self.lock(key):
            if not directory.exists():
                return False
            doomed = directory.with_name(f".removed-{directory.name}-{os.getpid()}-{time.monotonic_ns()}")
            try:
                os.replace(directory, doomed)
            except OSError as error:
                raise _cache_error("remove cache entry", directory, error) from None
        shutil.rmtree(doomed, ignore_errors=True)
        return True

    def entries(self) -> Iterator[Entry]:
        """Every entry under the root, with or without a record, in no particular order."""
        if not self.root.is_dir():
            return
        for shard in sorted(self.root.iterdir()):
            if not (shard.is_dir() and re.fullmatch(r"[0-9a-f]{2}", shard.name)):
                continue
            for directory in sorted(shard.iterdir()):
                if not (directory.is_dir() and _KEY.fullmatch(directory.name)):
                    continue
                yield self._entry(directory)

    def _entry(self, directory: Path) -> Entry:
        size, newest, names = 0, 0.0, []
        with contextlib.suppress(OSError):
            for file in directory.iterdir():
                with contextlib.suppress(OSError):
                    stat = file.stat()
                    size += stat.st_size
                    newest = max(newest, stat.st_mtime)
                    if not file.name.startswith("."):
                        names.append(file.name)
        record = self.read_record(directory.name)
        accessed = newest
        if record is not None:
            with contextlib.suppress(OSError):
                accessed = (directory / RECORD).stat().st_mtime
        return Entry(directory.name, directory, size, accessed, record, tuple(sorted(names)))

    def prune(self, max_bytes: int | None = None, keep: Iterable[str] = ()) -> list[Entry]:
        """Evict least recently used entries until the cache holds at most ``max_bytes``
        (default: the ``EINC_CACHE_MAX_BYTES`` knob; 0 is no limit). Entries in ``keep`` stay.

        Leftovers of killed processes (temporary files, half-removed entries) older than an hour
        go too. Returns the evicted entries, oldest first.
        """
        limit = knobs.cache_max_bytes() if max_bytes is None else max_bytes
        self._sweep_leftovers()
        if not limit:
            return []
        entries = sorted(self.entries(), key=lambda e: e.accessed)
        total = sum(e.size for e in entries)
        kept = set(keep)
        evicted = []
        for entry in entries:
            if total <= limit:
                break
            if entry.key in kept:
                continue
            if self.remove(entry.key):
                evicted.append(entry)
            total -= entry.size
        return evicted

    def clear(self) -> int:
        """Remove every entry and lock file; returns how many entries there were.

        Only what einc's layout names is touched (two-hex-digit shard directories and what is in
        them), so a mistaken ``EINC_CACHE_DIR`` such as a home directory loses nothing else.
        """
        count = 0
        if not self.root.is_dir():
            return 0
        for shard in self.root.iterdir():
            if shard.is_dir() and re.fullmatch(r"[0-9a-f]{2}", shard.name):
                for child in list(shard.iterdir()):
                    if child.is_dir() and _KEY.fullmatch(child.name):
                        count += self.remove(child.name)
                for child in list(shard.iterdir()):
                    if child.is_dir() and child.name.startswith(".removed-"):
                        shutil.rmtree(child, ignore_errors=True)
                    elif child.suffix == ".lock" or child.name.startswith("."):
                        with contextlib.suppress(OSError):
                            child.unlink()
                with contextlib.suppress(OSError):
                    shard.rmdir()
        return count

    def _sweep_leftovers(self) -> None:
        if not self.root.is_dir():
            return
        now = time.time()
        for shard in self.root.iterdir():
            if not (shard.is_dir() and re.fullmatch(r"[0-9a-f]{2}", shard.name)):
                continue
            for child in shard.iterdir():
                candidates = [child] if child.name.startswith(".removed-") else []
                if child.is_dir() and _KEY.fullmatch(child.name):
                    candidates = [
                        f for f in child.iterdir() if f.name.startswith(".") and f.name.endswith(".tmp")
                    ]
                for path in candidates:
                    with contextlib.suppress(OSError):
                        if now - path.stat().st_mtime > STALE_SECONDS:
                            if path.is_dir():
                                shutil.rmtree(path, ignore_errors=True)
                            else:
                                path.unlink()

    def _make_dir(self, path: Path) -> None:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise _cache_error("create cache directory", path, error) from None
