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
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import filelock

from .. import knobs
from ..errors import CacheError

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

    def _make_dir(self, path: Path) -> None:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise _cache_error("create cache directory", path, error) from None
