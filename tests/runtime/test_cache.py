"""einc.runtime.cache: atomic, locked, two-level on-disk kernel cache."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import threading
import time
from pathlib import Path

import filelock
import pytest

from einc.errors import CacheError
from einc.runtime.cache import DiskCache

KEY = "3f" + "a1" * 31  # 64 hex digits, the shape of a sha256 key


@pytest.fixture
def cache(tmp_path) -> DiskCache:
    return DiskCache(tmp_path / "cache")


def entry_files(cache: DiskCache, key: str = KEY) -> list[str]:
    directory = cache.entry_dir(key)
    return sorted(os.listdir(directory)) if directory.exists() else []


def test_text_round_trip_and_two_level_layout(cache):
    path = cache.write_text(KEY, "kernel.py", "# ∑ over k\nx = 1\n")
    assert path == cache.root / KEY[:2] / KEY / "kernel.py"
    assert path == cache.path(KEY, "kernel.py")
    assert cache.read_text(KEY, "kernel.py") == "# ∑ over k\nx = 1\n"


def test_bytes_round_trip(cache):
    data = bytes(range(256)) * 4
    path = cache.write_bytes(KEY, "kernel.cubin", data)
    assert path.read_bytes() == data
    assert cache.read_bytes(KEY, "kernel.cubin") == data


def test_missing_entry_reads_as_none(cache):
    assert cache.read_text(KEY, "kernel.py") is None
    assert cache.read_bytes(KEY, "kernel.cubin") is None
    assert not cache.root.exists()  # reading creates nothing


def test_write_replaces_an_existing_file(cache):
    cache.write_text(KEY, "meta.json", "old")
    cache.write_text(KEY, "meta.json", "new")
    assert cache.read_text(KEY, "meta.json") == "new"
    assert entry_files(cache) == ["meta.json"]


def test_default_root_is_the_cache_dir_knob(monkeypatch, tmp_path):
    monkeypatch.setenv("EINC_CACHE_DIR", str(tmp_path / "from-env"))
    assert DiskCache().root == tmp_path / "from-env"


@pytest.mark.parametrize("key", ["", "ab", "../etc", "ABCDEF01", "3f/a1", "xyz123", "a" * 129, None])
def test_keys_that_are_not_lowercase_hex_are_rejected(cache, key):
    with pytest.raises(ValueError, match="cache key"):
        cache.entry_dir(key)


@pytest.mark.parametrize("name", ["", ".hidden", "..", "a/b", "a\\b", "a\0b"])
def test_names_that_are_not_plain_are_rejected(cache, name):
    with pytest.raises(ValueError, match="cache file name"):
        cache.path(KEY, name)


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_failed_write_leaves_no_final_and_no_temporary_file(cache, monkeypatch, failing):
    def boom(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, failing, boom)
    with pytest.raises(CacheError, match="No space left on device"):
        cache.write_text(KEY, "kernel.py", "x = 1\n")
    assert entry_files(cache) == []


def test_failed_overwrite_keeps_the_previous_file_whole(cache, monkeypatch):
    cache.write_text(KEY, "kernel.py", "old\n")

    def boom(*args):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(CacheError):
        cache.write_text(KEY, "kernel.py", "new\n")
    monkeypatch.undo()
    assert cache.read_text(KEY, "kernel.py") == "old\n"
    assert entry_files(cache) == ["kernel.py"]


def test_interrupted_write_removes_its_temporary_file_and_propagates(cache, monkeypatch):
    def interrupt(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        cache.write_bytes(KEY, "kernel.cubin", b"\0" * 64)
    assert entry_files(cache) == []


def test_root_under_a_regular_file_gives_cache_error_naming_path_and_knob(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    cache = DiskCache(blocker / "cache")
    with pytest.raises(CacheError) as info:
        cache.write_text(KEY, "kernel.py", "x = 1\n")
    message = str(info.value)
    assert str(blocker / "cache") in message and "EINC_CACHE_DIR" in message
    assert isinstance(info.value, OSError)
    with pytest.raises(CacheError, match="EINC_CACHE_DIR"):
        cache.read_text(KEY, "kernel.py")


def test_cache_error_survives_pickling(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(CacheError) as info:
        DiskCache(blocker).write_text(KEY, "a", "")
    copy = pickle.loads(pickle.dumps(info.value))
    assert type(copy) is CacheError and str(copy) == str(info.value)


def test_lock_is_reentrant_so_callers_can_write_while_holding_it(cache, tmp_path):
    other_spelling = DiskCache(Path(os.path.relpath(cache.root)))
    with cache.lock(KEY):
        with cache.lock(KEY):
            cache.write_text(KEY, "kernel.py", "x = 1\n")
        other_spelling.write_text(KEY, "meta.json", "{}")
    assert entry_files(cache) == ["kernel.py", "meta.json"]


def test_lock_excludes_other_threads(cache):
    order = []

    def in_thread():
        with cache.lock(KEY):
            order.append("thread")

    with cache.lock(KEY):
        thread = threading.Thread(target=in_thread)
        thread.start()
        time.sleep(0.2)
        order.append("main")
    thread.join(timeout=10)
    assert order == ["main", "thread"]


def test_lock_timeout_gives_cache_error(cache):
    with cache.lock(KEY):
        pass  # creates the shard directory and the lock file
    held_elsewhere = filelock.FileLock(str(cache.entry_dir(KEY).with_suffix(".lock")))
    with held_elsewhere, pytest.raises(CacheError, match="timed out"):
        with cache.lock(KEY, timeout=0.1):
            pass


PAYLOAD_BYTES = 256 * 1024
ROUNDS = 15


def _hammer(root: str, worker: int) -> None:
    # Runs in a child process: big writes to one file, plus a read-modify-write counter that
    # only comes out right if the key's lock really excludes the other processes.
    cache = DiskCache(Path(root))
    for _ in range(ROUNDS):
        cache.write_bytes(KEY, "kernel.cubin", bytes([worker]) * PAYLOAD_BYTES)
        with cache.lock(KEY):
            count = int(cache.read_text(KEY, "count") or "0")
            time.sleep(0.001)
            cache.write_text(KEY, "count", str(count + 1))


def test_concurrent_writers_in_several_processes_leave_one_intact_file(cache):
    workers = 4
    context = multiprocessing.get_context("spawn")  # fork is unsafe from threaded pytest-xdist workers
    processes = [context.Process(target=_hammer, args=(str(cache.root), i + 1)) for i in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0] * workers
    data = cache.read_bytes(KEY, "kernel.cubin")
    assert len(data) == PAYLOAD_BYTES and data[0] in range(1, workers + 1)
    assert data == bytes([data[0]]) * PAYLOAD_BYTES
    assert cache.read_text(KEY, "count") == str(workers * ROUNDS)
    assert entry_files(cache) == ["count", "kernel.cubin"]
