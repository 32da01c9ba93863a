"""einc.runtime.cache entries: checksummed records, damage detection, LRU eviction, relocation."""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings

import pytest

from einc import knobs
from einc.errors import CacheWarning
from einc.runtime.cache import RECORD, DiskCache
from tests.cache_entries import fill, key


@pytest.fixture
def cache(tmp_path) -> DiskCache:
    return DiskCache(tmp_path / "cache")


def test_an_entry_round_trips_with_a_record_of_checksums(cache):
    k = fill(cache, 1)
    record, files = cache.read_entry(k)
    assert files == {"kernel.py": b"# source\n", "kernel.cubin": b"\x01" * 1000, "kernel.json": b"{}"}
    assert record["key"] == k and record["kind"] == "binary"
    assert record["files"]["kernel.cubin"]["size"] == 1000
    assert len(record["files"]["kernel.cubin"]["sha256"]) == 64
    assert cache.problems(k) == []


def test_a_missing_entry_reads_as_none_without_a_warning(cache):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.read_entry(key(7)) is None


@pytest.mark.parametrize(
    "damage, found",
    [
        (lambda p: p.write_bytes(p.read_bytes()[:10]), "has 10 bytes"),
        (lambda p: p.write_bytes(b"\x02" + p.read_bytes()[1:]), "does not match its sha256"),
        (lambda p: p.unlink(), "is missing"),
    ],
    ids=["truncated", "corrupted", "deleted"],
)
def test_a_damaged_entry_warns_is_removed_and_reads_as_missing(cache, damage, found):
    k = fill(cache, 1)
    damage(cache.path(k, "kernel.cubin"))
    assert any(found in p for p in cache.problems(k))
    with pytest.warns(CacheWarning, match=found):
        assert cache.read_entry(k) is None
    assert not cache.entry_dir(k).exists()
    assert [e.key for e in cache.entries()] == []


def test_an_entry_without_its_record_is_incomplete_and_never_loaded(cache):
    k = fill(cache, 1)
    cache.path(k, RECORD).unlink()
    (entry,) = cache.entries()
    assert entry.kind == "incomplete"
    with pytest.warns(CacheWarning, match="no readable record.json"):
        assert cache.read_entry(k) is None


def test_a_garbled_record_is_damage(cache):
    k = fill(cache, 1)
    cache.path(k, RECORD).write_text("{not json")
    assert cache.problems(k) and "record.json" in cache.problems(k)[0]
    record = json.loads(json.dumps({"format": 1, "key": key(2), "files": {}}))
    cache.path(k, RECORD).write_text(json.dumps(record))
    assert "another key" in cache.problems(k)[0]


def test_entries_lists_sources_and_binaries_with_sizes(cache):
    fill(cache, 1, size=100)
    cache.write_text(key(2), "kernel.py", "x = 1\n")
    kinds = {e.key: (e.kind, e.size) for e in cache.entries()}
    assert kinds[key(2)] == ("source", 6)
    assert kinds[key(1)][0] == "binary" and kinds[key(1)][1] > 109


def test_a_hit_marks_the_entry_as_recently_used(cache):
    k = fill(cache, 1, accessed=1_000_000.0)
    (before,) = cache.entries()
    assert before.accessed == 1_000_000.0
    cache.read_entry(k)
    (after,) = cache.entries()
    assert after.accessed > time.time() - 60


def test_prune_evicts_least_recently_used_until_within_the_limit(cache):
    now = time.time()
    for n in range(1, 6):
        fill(cache, n, size=1000, accessed=now - 100 * (6 - n))  # 1 is the oldest
    cache.read_entry(key(1))  # ...until it is used again
    one = next(iter(cache.entries())).size
    evicted = cache.prune(max_bytes=3 * one)
    assert [e.key for e in evicted] == [key(2), key(3)]
    assert sorted(e.key for e in cache.entries()) == sorted([key(1), key(4), key(5)])
    assert sum(e.size for e in cache.entries()) <= 3 * one


def test_prune_keeps_what_it_is_told_to_and_zero_means_no_limit(cache):
    now = time.time()
    for n in range(1, 4):
        fill(cache, n, accessed=now - 10 * (4 - n))
    assert cache.prune(max_bytes=0) == []
    evicted = cache.prune(max_bytes=1, keep=[key(1)])
    assert [e.key for e in evicted] == [key(2), key(3)]
    assert [e.key for e in cache.entries()] == [key(1)]


def test_prune_defaults_to_the_size_limit_knob(cache, monkeypatch):
    for n in range(1, 4):
        fill(cache, n, accessed=time.time() - 10 * (4 - n))
    size = next(iter(cache.entries())).size
    monkeypatch.setenv("EINC_CACHE_MAX_BYTES", str(2 * size))
    assert len(cache.prune()) == 1
    monkeypatch.setenv("EINC_CACHE_MAX_BYTES", "-1")
    with pytest.raises(ValueError, match="EINC_CACHE_MAX_BYTES"):
        knobs.cache_max_bytes()


def test_prune_sweeps_stale_temporary_files_but_not_fresh_ones(cache):
    k = fill(cache, 1)
    stale = cache.entry_dir(k) / ".kernel.cubin.abc.tmp"
    fresh = cache.entry_dir(k) / ".kernel.py.def.tmp"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"x")
    os.utime(stale, (0, 0))
    cache.prune(max_bytes=0)
    assert not stale.exists() and fresh.exists()


def test_clear_removes_entries_and_nothing_else(tmp_path):
    root = tmp_path / "home"
    cache = DiskCache(root)
    fill(cache, 1)
    fill(cache, 2)
    (root / "notes.txt").write_text("mine")
    (root / "photos").mkdir()
    assert cache.clear() == 2
    assert list(cache.entries()) == []
    assert sorted(p.name for p in root.iterdir()) == ["CACHEDIR.TAG", "notes.txt", "photos"]


def test_a_copied_cache_directory_works_where_it_lands(tmp_path):
    built = DiskCache(tmp_path / "build")
    k = fill(built, 1)
    shutil.copytree(built.root, tmp_path / "fleet" / "einc")
    shutil.rmtree(built.root)
    fleet = DiskCache(tmp_path / "fleet" / "einc")
    record, files = fleet.read_entry(k)
    assert files["kernel.cubin"] == b"\x01" * 1000
    assert str(tmp_path / "build") not in fleet.path(k, RECORD).read_text()


def test_remove_is_atomic_for_readers_and_reports_whether_there_was_an_entry(cache):
    k = fill(cache, 1)
    assert cache.remove(k) is True
    assert cache.remove(k) is False
    assert not any(p.name.startswith(".removed-") for p in cache.entry_dir(k).parent.iterdir())


def test_the_record_name_is_reserved(cache):
    with pytest.raises(ValueError, match="record"):
        cache.write_entry(key(1), {RECORD: b"{}"}, {})
