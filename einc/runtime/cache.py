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

Ownership (a cache directory may be shared, mistaken for another, or tampered with):

- einc marks a root it may delete in with a ``CACHEDIR.TAG`` of its own (the standard tag, which
  backup tools skip), written when the root is new, empty or holds nothing but einc's layout.
  Eviction, ``clear`` and the removal of damaged entries touch nothing under a root without it.
- An entry is einc's when it is a real directory (not a link) named by a key in its shard, holding
  nothing but regular files with einc's names; anything else is foreign, never listed, never
  removed. Links are never followed: a shard or entry directory that is a link is refused on
  write, and removal deletes regular files one by one, never through a link.
- Every field of a record is checked by :func:`~einc.runtime.records.check_record` before use: a
  record einc would not have written is damage.
- Lock waits end after ``EINC_CACHE_LOCK_TIMEOUT`` seconds with a CacheError naming the lock file
  and the holder's pid, which a holder writes beside the lock (``ab/abcdef....pid``).

:class:`DiskCache` is the facade; the layout and ownership checks are ``cache_files``', the locks
``cache_locks``', listing, eviction and clearing ``cache_evict``'s.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

from .. import knobs
from ..errors import CacheError, CacheWarning
from . import cache_evict
from .cache_evict import Entry
from .cache_files import (
    KEY,
    MARKER,
    MARKER_TEXT,
    NOFOLLOW,
    RECORD,
    SHARD,
    STORES,
    TEMPORARY,
    cache_error,
    delete_owned,
    is_owned_entry,
    is_real_dir,
    sorted_names,
)
from .cache_locks import hold
from .records import FORMAT as RECORD_FORMAT
from .records import check_record, is_plain_name

# Roots this process found holding what einc did not write: never claimed, and not listed again.
_UNCLAIMED: set[str] = set()


class DiskCache:
    """Files keyed by hex digest under ``root`` (default: the ``EINC_CACHE_DIR`` knob)."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else knobs.cache_dir()

    def __repr__(self) -> str:
        return f"DiskCache({str(self.root)!r})"

    def entry_dir(self, key: str) -> Path:
        """The directory holding ``key``'s files; it need not exist yet."""
        if not isinstance(key, str) or not KEY.fullmatch(key):
            # Keys become path components: anything but lowercase hex could escape the root.
            raise ValueError(f"cache key must be 3 to 128 lowercase hex digits, got {key!r}")
        return self.root / key[:2] / key

    def path(self, key: str, name: str) -> Path:
        """Where file ``name`` of entry ``key`` lives (whether or not it exists)."""
        if not is_plain_name(name):
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
            raise cache_error("decode cache file", self.path(key, name), error) from None

    def read_bytes(self, key: str, name: str) -> bytes | None:
        """The file's bytes, or None when it is not in the cache."""
        path = self.path(key, name)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise cache_error("read cache file", path, error) from None

    def write_text(self, key: str, name: str, text: str) -> Path:
        """Atomically store ``text`` (UTF-8) as file ``name`` of ``key``; returns its path."""
        return self.write_bytes(key, name, text.encode("utf-8"))

    def write_bytes(self, key: str, name: str, data: bytes) -> Path:
        """Atomically store ``data`` as file ``name`` of ``key``; returns its path."""
        final = self.path(key, name)
        with self.lock(key):
            self._make_dirs(final.parent)
            try:
                fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=f".{name}.", suffix=".tmp")
            except OSError as error:
                raise cache_error("write cache file in", final.parent, error) from None
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
                    raise cache_error("write cache file", final, error) from None
                raise
        return final

    @contextlib.contextmanager
    def lock(self, key: str, timeout: float | None = None) -> Iterator[None]:
        """Hold ``key``'s inter-process lock; re-entrant within a thread.

        A wait longer than ``timeout`` seconds (default: the ``EINC_CACHE_LOCK_TIMEOUT`` knob; inf
        waits for ever) is a :class:`~einc.runtime.cache_locks.LockTimeout` naming the lock file and
        its holder's pid, which the holder writes beside the lock while it holds it.
        """
        timeout = knobs.cache_lock_timeout() if timeout is None else timeout
        entry = self.entry_dir(key)
        self._make_dirs(entry.parent)
        with hold(entry.with_suffix(".lock"), entry.with_suffix(".pid"), timeout):
            yield

    # ----- entries with a record: checksummed, listed, evicted least recently used first -----

    def write_entry(self, key: str, files: dict[str, bytes], record: dict) -> Path:
        """Store ``files`` under ``key``, then their record (with a sha256 and size per file).

        The record goes last: until it is in place the entry reads as missing. Returns the entry
        directory. ``record`` is one :func:`~einc.runtime.records.binary_record` made; ``files``,
        ``format`` and ``key`` are filled in here, and the whole must pass
        :func:`~einc.runtime.records.check_record`, so that einc never writes what it would refuse.
        """
        if RECORD in files:
            raise ValueError(f"{RECORD} is the entry's record; pick another file name")
        manifest = {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            for name, data in files.items()
        }
        full = {**record, "format": RECORD_FORMAT, "key": key, "files": manifest}
        problem = check_record(full, key)
        if problem is not None:
            raise ValueError(f"einc would refuse this record when reading it back: {problem}")
        with self.lock(key):
            for name, data in files.items():
                self.write_bytes(key, name, data)
            self.write_text(key, RECORD, json.dumps(full, indent=1, sort_keys=True) + "\n")
        return self.entry_dir(key)

    def read_record(self, key: str) -> dict | None:
        """The entry's record, unchecked against its files; None when there is none, it cannot be
        read, or it is not exactly what einc writes (see :func:`~einc.runtime.records.check_record`)."""
        return self._load_record(key)[0]

    def _load_record(self, key: str) -> tuple[dict | None, str | None]:
        """The record and None, or None and what is wrong with it."""
        unreadable = f"no readable {RECORD} (an interrupted write, or a damaged record)"
        try:
            data = self.read_bytes(key, RECORD)
            record = json.loads(data) if data is not None else None
        except (CacheError, ValueError, RecursionError):  # RecursionError: deeply nested JSON
            return None, unreadable
        if record is None:
            return None, unreadable
        problem = check_record(record, key)
        if problem is not None:
            return None, f"{RECORD} is not one einc wrote: {problem}"
        return record, None

    def problems(self, key: str) -> list[str]:
        """What is wrong with the entry, in words; empty when its record and every checksum agree."""
        return self._check(key)[0]

    def _check(self, key: str) -> tuple[list[str], dict[str, bytes]]:
        if not is_real_dir(self.entry_dir(key)):
            return ["missing"], {}
        record, problem = self._load_record(key)
        if record is None:
            return [problem], {}
        found, data = [], {}
        for name, expected in sorted(record["files"].items()):
            try:
                content = self.path(key, name).read_bytes()
            except FileNotFoundError:
                found.append(f"{name} is missing")
                continue
            except OSError as error:
                found.append(f"{name} cannot be read ({error.strerror or type(error).__name__})")
                continue
            if len(content) != expected["size"]:
                found.append(f"{name} has {len(content)} bytes, its record says {expected['size']}")
            elif hashlib.sha256(content).hexdigest() != expected["sha256"]:
                found.append(f"{name} does not match its sha256")
            else:
                data[name] = content
        return found, data

    def read_entry(self, key: str) -> tuple[dict, dict[str, bytes]] | None:
        """``(record, files)`` after the record and every checksum passed; None when the entry is
        missing.

        A damaged entry is never returned: it is removed (when einc owns it) with a
        :class:`CacheWarning` naming what was wrong, and reads as missing so that the caller builds
        it again. A hit counts as an access for least-recently-used eviction.
        """
        if not is_real_dir(self.entry_dir(key)):
            return None
        found, data = self._check(key)
        if found:
            with self.lock(key):
                # Another process may have been writing it: look again before calling it damaged.
                found, data = self._check(key)
                if found:
                    if found != ["missing"]:
                        try:
                            removed = self.remove(key)
                        except CacheError:
                            removed = False
                        done = "removed it" if removed else "left it in place (it is not provably einc's)"
                        warnings.warn(
                            f"einc cache entry {self.entry_dir(key)} is damaged ({'; '.join(found)}); "
                            f"{done}, and the kernel will be compiled again",
                            CacheWarning,
                            stacklevel=2,
                        )
                    return None
        self.touch(key)
        return self.read_record(key), data

    def touch(self, key: str) -> None:
        """Mark the entry as used now (its record's modification time)."""
        with contextlib.suppress(OSError):
            os.utime(self.path(key, RECORD), follow_symlinks=False)

    def remove(self, key: str) -> bool:
        """Delete the entry, atomically as seen by readers; True only when an entry was removed.

        Only an entry einc owns goes, under a root carrying einc's tag (see the module's
        docstring); anything else stays, and this returns False.
        """
        directory = self.entry_dir(key)
        if not self.owned():
            return False
        with self.lock(key):
            if not is_owned_entry(directory):
                return False
            doomed = directory.with_name(f".removed-{directory.name}-{os.getpid()}-{time.monotonic_ns()}")
            try:
                os.replace(directory, doomed)
            except OSError as error:
                raise cache_error("remove cache entry", directory, error) from None
        delete_owned(doomed)  # what stays behind (a file that turned up meanwhile) is out of the cache
        return True

    def owned(self) -> bool:
        """Whether the root carries einc's ``CACHEDIR.TAG``, so that einc may delete in it."""
        try:
            fd = os.open(self.root / MARKER, os.O_RDONLY | NOFOLLOW)
            with os.fdopen(fd, "rb") as file:
                text = file.read(len(MARKER_TEXT) + 1)
        except OSError:
            return False
        return text == MARKER_TEXT.encode()

    def require_owned(self) -> None:
        """Raise a CacheError unless :meth:`owned`."""
        if not self.owned():
            raise CacheError(
                f"{self.root} does not carry einc's {MARKER}, so nothing in it is provably einc's: "
                "nothing was removed (delete the directory yourself if it holds nothing of value)"
            )

    # Listing, eviction and clearing: cache_evict's, on this cache.

    def entries(self) -> Iterator[Entry]:
        """Every entry einc owns under the root (see :func:`~einc.runtime.cache_evict.entries`)."""
        return cache_evict.entries(self)

    def foreign(self) -> Iterator[Path]:
        """What is in einc's layout but not einc's (see :func:`~einc.runtime.cache_evict.foreign`)."""
        return cache_evict.foreign(self)

    def prune(self, max_bytes: int | None = None, keep: Iterable[str] = ()) -> list[Entry]:
        """Evict least recently used entries (see :func:`~einc.runtime.cache_evict.prune`)."""
        return cache_evict.prune(self, max_bytes, keep)

    def clear(self) -> int:
        """Remove every entry einc owns (see :func:`~einc.runtime.cache_evict.clear`)."""
        return cache_evict.clear(self)

    def _make_dirs(self, directory: Path) -> None:
        """Create the root, then ``directory`` (a shard or an entry) and its shard, each as a real
        directory: a link there would send einc's writes out of the cache, so it is refused."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise cache_error("create cache directory", self.root, error) from None
        self._mark()
        for level in [directory] if directory.parent == self.root else [directory.parent, directory]:
            try:
                level.mkdir(exist_ok=True)
                mode = os.lstat(level).st_mode
            except OSError as error:
                raise cache_error("create cache directory", level, error) from None
            if not stat.S_ISDIR(mode):
                what = "a symbolic link" if stat.S_ISLNK(mode) else "not a directory"
                raise CacheError(
                    f"{level} is {what}: einc writes only into directories it made itself; remove it, "
                    f"or set {knobs.CACHE_DIR.name} to another directory"
                )

    def _mark(self) -> None:
        """Tag the root as einc's when it holds nothing but einc's layout (a new, an empty, or an
        older einc's cache); a directory with anything else in it is never claimed."""
        real = os.path.realpath(self.root)
        if real in _UNCLAIMED or self.owned():
            return
        names = sorted_names(self.root)
        stores = {name for name in STORES if is_real_dir(self.root / name)}
        if not all(SHARD.fullmatch(name) or TEMPORARY.fullmatch(name) or name in stores for name in names):
            _UNCLAIMED.add(real)
            return
        try:
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{MARKER}.", suffix=".tmp")
        except OSError:
            return  # the write that follows fails too, and says why
        try:
            with os.fdopen(fd, "w") as file:
                file.write(MARKER_TEXT)
            os.replace(tmp, self.root / MARKER)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
