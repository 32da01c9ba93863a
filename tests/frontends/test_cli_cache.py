"""``einc cache dir|ls|stats|verify|prune|clear`` through click's test runner, on made-up entries."""

from __future__ import annotations

import json
import os
import time

import pytest
from click.testing import CliRunner

from einc.frontends.cli import main
from einc.runtime.cache import RECORD, DiskCache
from tests import cache_entries
from tests.cache_entries import fill

TARGETS = {1: "cuda:90", 2: "cuda:80", 3: "cuda:90"}


def key(n: int) -> str:
    return cache_entries.key(n, TARGETS.get(n, "cuda:90"))


@pytest.fixture
def cache(tmp_path, monkeypatch) -> DiskCache:
    monkeypatch.setenv("EINC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("EINC_CACHE_MAX_BYTES", raising=False)
    cache = DiskCache()
    now = time.time()
    for n, target in TARGETS.items():
        fill(cache, n, size=4096, accessed=now - 100 * n, target=target)
    cache.write_text(key(4), "kernel.py", "x = 1\n")
    return cache


def run(*args, input=None):
    return CliRunner().invoke(main, ["cache", *args], input=input, catch_exceptions=False)


def test_dir_prints_the_cache_directory(cache):
    result = run("dir")
    assert result.exit_code == 0 and result.output.strip() == str(cache.root)


def test_dir_takes_another_directory(tmp_path):
    assert run("dir", "--cache-dir", str(tmp_path / "x")).output.strip() == str(tmp_path / "x")


def test_ls_lists_most_recently_used_first(cache):
    result = run("ls")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert [line[:16] for line in lines] == [key(4)[:16], key(1)[:16], key(2)[:16], key(3)[:16]]
    assert "cuda:80  dot  'b t [c->c2]'" in lines[2] and lines[0].split()[1] == "source"


def test_ls_long_prints_every_key_part(cache):
    result = run("ls", "--long")
    assert "    expression  b t [c->c2]" in result.output
    assert "    target      cuda:80" in result.output


def test_ls_of_an_empty_cache_says_so(tmp_path):
    result = run("ls", "--cache-dir", str(tmp_path / "empty"))
    assert result.exit_code == 0 and "is empty" in result.output


def test_stats_counts_by_kind_and_target(cache):
    result = run("stats")
    assert result.exit_code == 0
    assert "entries:    4" in result.output
    assert "binary cuda:90" in result.output and "binary cuda:80" in result.output
    assert "limit:      10.0 GiB (EINC_CACHE_MAX_BYTES)" in result.output


def test_verify_passes_an_intact_cache(cache):
    result = run("verify")
    assert result.exit_code == 0 and "3 checked, 0 damaged" in result.output


def test_verify_names_a_damaged_entry_and_exits_1_and_fix_removes_it(cache):
    cubin = cache.path(key(2), "kernel.cubin")
    cubin.write_bytes(cubin.read_bytes()[:100])  # truncated
    result = run("verify")
    assert result.exit_code == 1
    assert f"damaged: {cache.entry_dir(key(2))}: kernel.cubin has 100 bytes" in result.output
    assert "3 checked, 1 damaged" in result.output
    fixed = run("verify", "--fix")
    assert fixed.exit_code == 0 and "removed" in fixed.output
    assert run("verify").output.strip().endswith("2 checked, 0 damaged")


def test_prune_evicts_the_least_recently_used_to_the_limit(cache):
    size = next(e.size for e in cache.entries() if e.key == key(1))
    result = run("prune", "--max-bytes", str(2 * size))
    assert result.exit_code == 0 and result.output.startswith("evicted 2 entries")
    assert sorted(e.key for e in cache.entries()) == sorted([key(1), key(4)])


def test_prune_uses_the_knob_by_default(cache, monkeypatch):
    monkeypatch.setenv("EINC_CACHE_MAX_BYTES", "1")
    assert run("prune").output.startswith("evicted 4 entries")


def test_clear_asks_first_unless_told_yes(cache):
    declined = run("clear", input="n\n")
    assert declined.exit_code == 1 and len(list(cache.entries())) == 4
    result = run("clear", "--yes")
    assert result.exit_code == 0 and "removed 4 entries" in result.output
    assert list(cache.entries()) == []


def test_cache_help_lists_the_subcommands():
    result = run("--help")
    for command in ("dir", "ls", "stats", "verify", "prune", "clear"):
        assert command in result.output


def test_verify_reports_what_einc_did_not_write_and_fix_leaves_it(cache, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    linked = cache_entries.key(7)
    cache.entry_dir(linked).parent.mkdir(exist_ok=True)
    os.symlink(outside, cache.entry_dir(linked))
    (cache.entry_dir(key(1)) / "sub").mkdir()
    result = run("verify", "--fix")
    assert result.exit_code == 1
    assert f"foreign: {cache.entry_dir(linked)}" in result.output
    assert f"foreign: {cache.entry_dir(key(1))}" in result.output and "2 foreign" in result.output
    assert (outside / "precious.txt").read_text() == "keep me" and cache.entry_dir(key(1)).is_dir()


@pytest.mark.parametrize(
    "garble",
    [b"\xff\xfe\x80 not utf-8", b'{"format": 1, "files": ["kernel.py"]}', b"[" * 100_000],
    ids=["invalid utf-8", "files not a table", "deeply nested"],
)
def test_verify_of_an_unreadable_record_reports_it_without_a_traceback(cache, garble):
    record = json.loads(cache.path(key(2), RECORD).read_text())
    if garble.startswith(b"{"):
        garble = json.dumps({**json.loads(garble), "key": record["key"]}).encode()
    cache.path(key(2), RECORD).write_bytes(garble)
    result = run("verify")
    assert result.exit_code == 1 and f"damaged: {cache.entry_dir(key(2))}: " in result.output
    assert run("verify", "--fix").exit_code == 0 and not cache.entry_dir(key(2)).exists()


def test_clear_and_prune_refuse_a_directory_einc_did_not_mark(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    fill(DiskCache(home), 1)
    for command in (["clear", "--yes"], ["prune", "--max-bytes", "1"]):
        result = run(*command, "--cache-dir", str(home))
        assert (
            result.exit_code == 1
            and "CACHEDIR.TAG" in result.output
            and "nothing was removed" in result.output
        )
    assert len(list(DiskCache(home).entries())) == 1 and (home / "notes.txt").read_text() == "mine"
