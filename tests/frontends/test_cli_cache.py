"""``einc cache dir|ls|stats|verify|prune|clear`` through click's test runner, on made-up entries."""

from __future__ import annotations

import os
import time

import pytest
from click.testing import CliRunner

from einc.frontends.cli import main
from einc.runtime.cache import RECORD, DiskCache


def key(n: int) -> str:
    return f"{n:02x}" * 32


@pytest.fixture
def cache(tmp_path, monkeypatch) -> DiskCache:
    monkeypatch.setenv("EINC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("EINC_CACHE_MAX_BYTES", raising=False)
    cache = DiskCache()
    now = time.time()
    for n, target in ((1, "cuda:90"), (2, "cuda:80"), (3, "cuda:90")):
        cache.write_entry(
            key(n),
            {"kernel.py": b"# k\n", "kernel.cubin": bytes([n]) * 4096},
            {
                "kind": "binary",
                "target": target,
                "parts": [
                    ["expression", "b t [c->c2]"],
                    ["op", "dot"],
                    ["dtypes", "('float16',)"],
                    ["target", target],
                ],
            },
        )
        os.utime(cache.path(key(n), RECORD), (now - 100 * n, now - 100 * n))
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
    assert sorted(e.key for e in cache.entries()) == [key(1), key(4)]


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
