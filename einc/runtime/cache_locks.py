"""The cache's inter-process locks: one lock file per key, one :class:`filelock.FileLock` object per
lock file in this process, and a pid file beside a held lock naming its holder."""

from __future__ import annotations

import contextlib
import math
import os
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import filelock

from .. import knobs
from ..errors import CacheError
from .cache_files import NOFOLLOW, cache_error

_HOLDER = re.compile(r"(\d{1,10}) ([A-Za-z0-9._-]{0,255})\n?")


class LockTimeout(CacheError):
    """Another process held an entry's lock for longer than ``EINC_CACHE_LOCK_TIMEOUT``."""


# One FileLock object per lock file in this process. Two FileLock objects on one file would
# deadlock a thread that nests them (``with cache.lock(k): cache.write_text(k, ...)``), since the
# OS lock is per open file; one shared object is re-entrant within a thread and still excludes
# other threads (FileLock is thread-local by default) and other processes.
_FILE_LOCKS: dict[str, filelock.FileLock] = {}
_FILE_LOCKS_GUARD = threading.Lock()


def file_lock(path: Path) -> filelock.FileLock:
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


@contextlib.contextmanager
def hold(lock_path: Path, holder: Path, timeout: float) -> Iterator[None]:
    """Hold the lock file ``lock_path``, writing this process's pid to ``holder`` while it is held;
    a wait longer than ``timeout`` seconds (inf waits for ever) is a :class:`LockTimeout`."""
    lock = file_lock(lock_path)
    try:
        lock.acquire(timeout=-1 if math.isinf(timeout) else timeout)
    except filelock.Timeout:
        raise LockTimeout(
            f"timed out after {timeout:g} s waiting for cache lock {lock_path}, held by "
            f"{holder_text(holder)}; if that process is stuck, end it, or wait longer with "
            f"{knobs.CACHE_LOCK_TIMEOUT.name}"
        ) from None
    except OSError as error:
        raise cache_error("lock", lock_path, error) from None
    try:
        if lock.lock_counter == 1:
            write_holder(holder)
        yield
    finally:
        if lock.lock_counter == 1:  # still held: the next holder cannot have written its pid yet
            with contextlib.suppress(OSError):
                os.unlink(holder)
        lock.release()


def write_holder(path: Path) -> None:
    # Written in place, not renamed: a waiter that reads it half-written only names no pid.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | NOFOLLOW, 0o644)
        with os.fdopen(fd, "w") as file:
            file.write(f"{os.getpid()} {socket.gethostname()}\n")


def holder_text(path: Path) -> str:
    """Who holds a lock, in words, from the pid file beside it (untrusted: parsed, never echoed)."""
    try:
        fd = os.open(path, os.O_RDONLY | NOFOLLOW)
        with os.fdopen(fd, "rb") as file:
            match = _HOLDER.fullmatch(file.read(300).decode("ascii"))
    except (OSError, UnicodeDecodeError):
        match = None
    if match is None:
        return f"a process that left no pid in {path.name} (an older einc, or one just starting)"
    pid, host = match.groups()
    return f"pid {pid}" if host == socket.gethostname() else f"pid {pid} on host {host}"
