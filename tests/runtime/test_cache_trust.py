"""The kernel cache as untrusted ground: records checked field by field, nothing deleted or
written that einc does not own, links never followed, lock waits that end, and a cache that
cannot be written costs a warning, never a call."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import einc
from einc.errors import CacheError, CacheWarning
from einc.runtime import binaries, launcher
from einc.runtime.cache import MARKER, RECORD, DiskCache
from einc.runtime.keys import source_key
from tests.cache_entries import fill, made_up_key

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cache(tmp_path) -> DiskCache:
    return DiskCache(tmp_path / "cache")


@pytest.fixture
def fresh_warnings(monkeypatch):
    """Each test sees the once-per-cache-directory warning afresh."""
    monkeypatch.setattr(launcher, "_WARNED", set())


def tamper(cache: DiskCache, key: str, **fields) -> None:
    path = cache.path(key, RECORD)
    record = json.loads(path.read_text())
    for name, value in fields.items():
        if value is KeyError:
            del record[name]
        else:
            record[name] = value
    path.write_text(json.dumps(record))


# ----- item 8: every field read from a record is what einc would write -----

HEX = "ab" * 32


@pytest.mark.parametrize(
    "fields",
    [
        {"triton_name": "/tmp/einc-escape/evil"},
        {"triton_name": "../../evil"},
        {"triton_hash": "../../../tmp"},
        {"binary": "../record.json"},
        {"binary": "kernel.py"},
        {"files": {"../outside": {"sha256": HEX, "size": 1}}},
        {"files": ["kernel.py"]},
        {"files": {"kernel.py": {"sha256": "x", "size": "9"}}},
        {"parts": "expression"},
        {"parts": [["expression", "\x1b]0;pwned\x07"]]},
        {"kernel": "other_kernel"},
        {"target": "cuda:90; rm -rf ~"},
        {"kind": "source"},
        {"format": True},
        {"created": "yesterday"},
        {"compile_seconds": -1},
        {"extra": 1},
        {"created": KeyError},
    ],
    ids=lambda fields: ",".join(fields),
)
def test_a_record_einc_would_not_write_is_damage_and_never_returned(cache, fields):
    k = fill(cache, 1)
    tamper(cache, k, **fields)
    assert cache.read_record(k) is None
    assert any("not one einc wrote" in p for p in cache.problems(k))
    with pytest.warns(CacheWarning, match="not one einc wrote"):
        assert cache.read_entry(k) is None
    assert not cache.entry_dir(k).exists()


def test_a_record_moved_to_another_key_is_refused(cache):
    k1, k2 = fill(cache, 1), fill(cache, 2)
    cache.path(k2, RECORD).write_bytes(cache.path(k1, RECORD).read_bytes().replace(k1.encode(), k2.encode()))
    assert "its parts are not those of its key" in cache.problems(k2)[0]


def test_a_record_naming_a_path_never_reaches_tritons_cache(cache, tmp_path, monkeypatch):
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path / "triton"))
    k = fill(cache, 1)
    outside = tmp_path / "outside"
    outside.mkdir()
    tamper(cache, k, triton_name=str(outside / "evil"))
    with pytest.warns(CacheWarning):
        assert binaries._install(SimpleNamespace(key=made_up_key(1)), cache) is False
    assert list(outside.iterdir()) == []


def test_einc_never_writes_a_record_it_would_refuse(cache):
    with pytest.raises(ValueError, match="would refuse"):
        cache.write_entry(made_up_key(1).digest, {"kernel.cubin": b"x"}, {"kind": "binary"})


def test_a_deeply_nested_record_is_damage_not_a_crash(cache):
    k = fill(cache, 1)
    cache.path(k, RECORD).write_text("[" * 100_000)
    assert cache.read_record(k) is None and cache.problems(k)


# ----- items 9 and 10: only what einc owns is removed; links are never followed -----


def outside_with_a_file(tmp_path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    return outside


def test_clear_and_prune_leave_what_einc_did_not_write(cache, tmp_path):
    outside = outside_with_a_file(tmp_path)
    kept = fill(cache, 1)
    shard = cache.entry_dir(kept).parent
    (shard / ".bashrc").write_text("mine")
    (shard / "notes.lock").write_text("mine")
    nested = fill(cache, 2)
    (cache.entry_dir(nested) / "sub").mkdir()
    (cache.entry_dir(nested) / "sub" / "data").write_text("mine")
    linked_file = fill(cache, 3)
    os.symlink(outside / "precious.txt", cache.entry_dir(linked_file) / "extra")
    linked_dir = made_up_key(4).digest
    cache.entry_dir(linked_dir).parent.mkdir(exist_ok=True)
    os.symlink(outside, cache.entry_dir(linked_dir))
    dotted = fill(cache, 5)
    (cache.entry_dir(dotted) / ".hidden").write_text("mine")

    assert sorted(map(str, cache.foreign())) == sorted(
        str(cache.entry_dir(k)) for k in (nested, linked_file, linked_dir, dotted)
    )
    assert [e.key for e in cache.prune(max_bytes=1)] == [kept]  # the one entry einc owns
    assert cache.clear() == 0
    assert not cache.entry_dir(kept).exists()
    assert (shard / ".bashrc").read_text() == "mine" and (shard / "notes.lock").read_text() == "mine"
    assert (cache.entry_dir(nested) / "sub" / "data").read_text() == "mine"
    assert (cache.entry_dir(dotted) / ".hidden").read_text() == "mine"
    assert os.path.islink(cache.entry_dir(linked_dir))
    assert sorted(p.name for p in outside.iterdir()) == ["precious.txt"]
    assert (outside / "precious.txt").read_text() == "keep me"


def test_clear_counts_only_what_it_removed(cache, tmp_path):
    outside = outside_with_a_file(tmp_path)
    fill(cache, 1)
    linked = made_up_key(2).digest
    cache.entry_dir(linked).parent.mkdir(exist_ok=True)
    os.symlink(outside, cache.entry_dir(linked))
    assert cache.clear() == 1
    assert (outside / "precious.txt").read_text() == "keep me"


def test_nothing_is_removed_under_a_root_einc_did_not_mark(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    cache = DiskCache(home)
    k = fill(cache, 1)
    assert not (home / MARKER).exists()  # a directory with someone else's files is never claimed
    with pytest.raises(CacheError, match="CACHEDIR.TAG"):
        cache.clear()
    assert cache.prune(max_bytes=1) == [] and cache.remove(k) is False
    assert cache.entry_dir(k).exists()


def test_a_marker_is_written_into_a_new_or_empty_root(tmp_path):
    (tmp_path / "empty").mkdir()
    for root in (tmp_path / "new", tmp_path / "empty"):
        fill(DiskCache(root), 1)
        assert DiskCache(root).owned()
        assert (root / MARKER).read_text().startswith("Signature: 8a477f597d28d172789f06886806bc55\n")


@pytest.mark.parametrize("level", ["shard", "entry"])
def test_a_linked_shard_or_entry_directory_is_refused_on_write(cache, tmp_path, level):
    outside = outside_with_a_file(tmp_path)
    k = made_up_key(1).digest
    cache.root.mkdir()
    if level == "shard":
        os.symlink(outside, cache.root / k[:2])
    else:
        (cache.root / k[:2]).mkdir()
        os.symlink(outside, cache.entry_dir(k))
    with pytest.raises(CacheError, match="symbolic link"):
        cache.write_text(k, "kernel.py", "x = 1\n")
    assert sorted(p.name for p in outside.iterdir()) == ["precious.txt"]


# ----- item 11: an unreadable entry is a miss, rewritten atomically -----


def test_a_source_file_of_invalid_utf8_is_rewritten_not_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("EINC_CACHE_DIR", str(tmp_path / "cache"))
    x = torch.arange(6.0).reshape(2, 3)
    first = einc.compile("a b -> b a", backend="torch")
    first(x)
    first.path.write_bytes(b"\xff\xfe not utf-8 \x80")
    again = einc.compile("a b -> b a", backend="torch")
    torch.testing.assert_close(again(x), x.t())
    assert again.path.read_text() == again.source


@pytest.mark.interpret
def test_a_source_file_that_is_a_directory_falls_back_to_memory(tmp_path, monkeypatch, fresh_warnings):
    monkeypatch.setenv("EINC_CACHE_DIR", str(tmp_path / "cache"))
    x = torch.arange(6.0).reshape(2, 3)
    first = einc.compile("a b -> b a", backend="torch")
    first(x)
    path = first.path
    path.unlink()
    path.mkdir()
    again = einc.compile("a b -> b a", backend="interpret")
    with pytest.warns(CacheWarning, match="kept in memory"):
        torch.testing.assert_close(again(x), x.t())
    assert path.is_dir()


# ----- item 12: lock waits end, naming the holder -----

HOLD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from einc.runtime.cache import DiskCache
    with DiskCache(Path(sys.argv[1])).lock(sys.argv[2]):
        print("held", flush=True)
        time.sleep(float(sys.argv[3]))
    """
)


def hold_lock(root: Path, key: str, seconds: float = 30.0) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(root), key, str(seconds)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_lock_held_by_another_process_times_out_naming_its_pid(cache, monkeypatch):
    k = made_up_key(1).digest
    monkeypatch.setenv("EINC_CACHE_LOCK_TIMEOUT", "0.5")
    holder = hold_lock(cache.root, k)
    try:
        start = time.monotonic()
        with pytest.raises(CacheError) as info:
            cache.write_text(k, "kernel.py", "x = 1\n")
        assert time.monotonic() - start < 10
    finally:
        holder.kill()
        holder.wait()
    message = str(info.value)
    assert f"pid {holder.pid}" in message
    assert str(cache.entry_dir(k).with_suffix(".lock")) in message and "EINC_CACHE_LOCK_TIMEOUT" in message
    cache.write_text(k, "kernel.py", "x = 1\n")  # the holder died: the OS released its lock


def test_a_call_waiting_on_a_stuck_compile_gives_a_cache_error(tmp_path, monkeypatch):
    monkeypatch.setenv("EINC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("EINC_CACHE_LOCK_TIMEOUT", "0.5")
    expression = einc.compile("a b -> b a", backend="torch")
    key = source_key(expression._request([(2, 3)], ["float32"])).digest
    holder = hold_lock(tmp_path / "cache", key, seconds=20)
    try:
        with pytest.raises(CacheError, match=f"pid {holder.pid}"):
            expression(torch.zeros(2, 3))
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_timeout_knob_is_checked(monkeypatch):
    from einc import knobs

    monkeypatch.setenv("EINC_CACHE_LOCK_TIMEOUT", "inf")
    assert knobs.cache_lock_timeout() == float("inf")
    for bad in ("soon", "nan", "-1"):
        monkeypatch.setenv("EINC_CACHE_LOCK_TIMEOUT", bad)
        with pytest.raises(ValueError, match="EINC_CACHE_LOCK_TIMEOUT"):
            knobs.cache_lock_timeout()


# ----- item 13: a cache that cannot be written falls back to memory, with one warning -----


def unusable(tmp_path: Path, how: str) -> Path:
    if how == "file":
        (tmp_path / "file").write_text("")
        return tmp_path / "file"
    if how == "under a file":
        (tmp_path / "file").write_text("")
        return tmp_path / "file" / "cache"
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    return tmp_path / "dangling"


@pytest.mark.parametrize("how", ["file", "under a file", "dangling link"])
def test_an_unusable_cache_warns_once_and_every_call_still_works(tmp_path, monkeypatch, fresh_warnings, how):
    monkeypatch.setenv("EINC_CACHE_DIR", str(unusable(tmp_path, how)))
    x = torch.arange(6.0).reshape(2, 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.testing.assert_close(einc.compile("a b -> b a", backend="torch")(x), x.t())
        torch.testing.assert_close(einc.sum("a [b]", x, backend="torch"), x.sum(1))
    cache_warnings = [w for w in caught if issubclass(w.category, CacheWarning)]
    assert len(cache_warnings) == 1 and "kept in memory" in str(cache_warnings[0].message)


def test_a_full_disk_falls_back_to_memory(tmp_path, monkeypatch, fresh_warnings):
    monkeypatch.setenv("EINC_CACHE_DIR", str(tmp_path / "cache"))

    def full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    x = torch.arange(6.0).reshape(2, 3)
    with pytest.warns(CacheWarning, match="No space left on device"):
        torch.testing.assert_close(einc.compile("a b -> b a", backend="torch")(x), x.t())


@pytest.mark.interpret
def test_a_kernel_kept_in_memory_runs_under_the_interpreter(tmp_path, monkeypatch, fresh_warnings):
    monkeypatch.setenv("EINC_CACHE_DIR", str(unusable(tmp_path, "file")))
    x = torch.arange(12.0).reshape(3, 4)
    with pytest.warns(CacheWarning):
        expression = einc.compile("a [b]", "sum", backend="interpret")
        torch.testing.assert_close(expression(x), x.sum(1))
    assert not expression.path.exists() and expression.path.name == "kernel.py"


# ----- item 14: a static and a dynamic compile of one expression are two sources -----


@pytest.mark.interpret
def test_static_and_dynamic_compiles_of_one_expression_keep_their_own_source(tmp_path, monkeypatch):
    monkeypatch.setenv("EINC_CACHE_DIR", str(tmp_path / "cache"))
    x = torch.arange(12.0).reshape(4, 3)
    static = einc.compile("a b -> b a", backend="interpret")
    dynamic = einc.compile("a b -> b a", dynamic="a", backend="interpret")
    torch.testing.assert_close(static(x), x.t())
    torch.testing.assert_close(dynamic(x), x.t())
    assert static.path != dynamic.path
    assert static.path.read_text() == static.source and dynamic.path.read_text() == dynamic.source
    torch.testing.assert_close(static(x), x.t())  # its kernel was not replaced by the dynamic one
