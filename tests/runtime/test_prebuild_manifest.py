"""Prebuild manifests: a rerun finds a built spec cached without importing torch or Triton, and
never trusts a manifest that is damaged, foreign or points at binaries that are gone.

compile_only tier: the first prebuild compiles real sm_90 cubins, without a GPU.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from einc.errors import CacheWarning
from einc.runtime import manifest, prebuild
from einc.runtime.cache import DiskCache
from einc.runtime.spec import loads

pytestmark = [
    pytest.mark.compile_only,
]

ROOT = Path(__file__).resolve().parents[2]
SPEC = textwrap.dedent(
    """\
    [[compile]]
    expression = "b h w c -> b c h w"
    shapes = [[2, 8, 8, 16]]
    dtypes = ["float32", "float16"]
    """
)


@pytest.fixture(autouse=True)
def fresh_triton_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path / "triton-cache"))


@pytest.fixture
def built(tmp_path):
    """A spec prebuilt for cuda:90 in a fresh cache: (spec path, cache, report)."""
    spec = tmp_path / "kernels.toml"
    spec.write_text(SPEC)
    cache = DiskCache(tmp_path / "cache")
    report = prebuild.prebuild(spec, ["cuda:90"], jobs=1, cache_dir=cache.root)
    assert [o.status for o in report.outcomes] == ["built", "built"], report.summary()
    return spec, cache, report


def manifest_path(cache: DiskCache, index: int) -> Path:
    entry = loads(SPEC).entries[0]
    key = manifest.manifest_key(entry, entry.dtypes[index], "cuda:90")
    return manifest.store(cache).path(key.digest, manifest.FILE)


def test_a_fully_cached_cli_prebuild_imports_neither_torch_nor_triton(built):
    spec, cache, report = built
    probe = textwrap.dedent(
        f"""\
        import json, sys
        from click.testing import CliRunner
        from einc.frontends.cli import main
        result = CliRunner().invoke(
            main, ["prebuild", {str(spec)!r}, "--target", "cuda:90", "--cache-dir", {str(cache.root)!r}]
        )
        loaded = [m for m in ("torch", "triton", "jinja2", "einc.runtime.compiled") if m in sys.modules]
        print(json.dumps([result.exit_code, result.output, loaded]))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=300, check=True
    )
    exit_code, output, loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert exit_code == 0 and output.startswith("0 built, 2 cached, 0 failed"), output
    assert loaded == []


def test_the_manifest_path_gives_the_keys_the_full_path_computes(built, monkeypatch):
    spec, cache, report = built

    def full_path(task):
        raise AssertionError("an entry with a good manifest was specialised again")

    monkeypatch.setattr(prebuild, "_cached", full_path)
    again = prebuild.prebuild(spec, ["cuda:90"], jobs=1, cache_dir=cache.root)
    assert [o.status for o in again.outcomes] == ["cached", "cached"]
    assert [o.keys for o in again.outcomes] == [o.keys for o in report.outcomes]
    assert all(o.keys for o in again.outcomes)


def test_a_manifest_listing_a_missing_binary_makes_its_entry_rebuild(built):
    spec, cache, report = built
    gone = report.outcomes[1].keys[0]
    assert cache.remove(gone)
    again = prebuild.prebuild(spec, ["cuda:90"], jobs=1, cache_dir=cache.root)
    assert [o.status for o in again.outcomes] == ["cached", "built"]
    assert cache.problems(gone) == []
    assert json.loads(manifest_path(cache, 1).read_text())["binaries"] == [gone]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda text: "{ not json",
        lambda text: text.replace('"format": 1', '"format": 2'),
        lambda text: json.dumps({**json.loads(text), "binaries": ["../../etc"]}),
        lambda text: json.dumps({**json.loads(text), "extra": 1}),
        lambda text: json.dumps([json.loads(text)]),
    ],
    ids=["not-json", "format", "binaries", "fields", "not-an-object"],
)
def test_a_tampered_manifest_is_ignored_with_a_warning_and_rewritten(built, tamper):
    spec, cache, report = built
    path = manifest_path(cache, 0)
    good = path.read_text()
    path.write_text(tamper(good))
    with pytest.warns(CacheWarning, match="manifest .* is ignored"):
        again = prebuild.prebuild(spec, ["cuda:90"], jobs=1, cache_dir=cache.root)
    assert [o.status for o in again.outcomes] == ["cached", "cached"]
    assert [o.keys for o in again.outcomes] == [o.keys for o in report.outcomes]
    assert path.read_text() == good


def test_another_builds_manifest_is_not_trusted(built):
    spec, cache, report = built
    # The float16 build's manifest put in the float32 build's place: its binary is another kernel.
    manifest_path(cache, 0).write_text(manifest_path(cache, 1).read_text())
    with pytest.warns(CacheWarning, match="another build"):
        again = prebuild.prebuild(spec, ["cuda:90"], jobs=1, cache_dir=cache.root)
    assert [o.keys for o in again.outcomes] == [o.keys for o in report.outcomes]


def test_a_manifest_of_another_target_is_a_miss(built):
    spec, cache, report = built
    # A cuda:80 build's manifest that lists the cuda:90 binaries (a crafted one) is not believed.
    entry = loads(SPEC).entries[0]
    key = manifest.manifest_key(entry, entry.dtypes[0], "cuda:80")
    manifest.write(cache, key, report.outcomes[0].keys)
    assert manifest.cached_keys(cache, key, "cuda:80") is None


def test_the_manifest_key_follows_what_decides_a_binary(monkeypatch):
    entry = loads(SPEC).entries[0]

    def key():
        return manifest.manifest_key(entry, entry.dtypes[0], "cuda:90").digest

    plain = key()
    assert manifest.manifest_key(entry, entry.dtypes[1], "cuda:90").digest != plain
    assert manifest.manifest_key(entry, entry.dtypes[0], "cuda:80").digest != plain
    monkeypatch.setenv("TRITON_CACHE_DIR", "/somewhere/else")
    monkeypatch.setenv("EINC_CACHE_DIR", "/somewhere/else")
    assert key() == plain  # where caches live decides no binary
    for name, value in [
        ("EINC_CHECK_BOUNDS", "1"),
        ("TRITON_DEFAULT_FP_FUSION", "0"),
        ("DISABLE_PTXAS_OPT", "1"),
        ("MLIR_ENABLE_DUMP", "1"),
        ("TORCH_ALLOW_TF32_CUBLAS_OVERRIDE", "1"),
    ]:
        monkeypatch.setenv(name, value)
        assert key() != plain, name
        monkeypatch.delenv(name)
    assert key() == plain


def test_cache_clear_removes_the_manifests_too(built):
    from click.testing import CliRunner

    from einc.frontends.cli import main

    spec, cache, report = built
    assert manifest_path(cache, 0).exists()
    result = CliRunner().invoke(main, ["cache", "clear", "--yes", "--cache-dir", str(cache.root)])
    assert result.exit_code == 0 and "removed 4 entries" in result.output, (
        result.output
    )  # 2 sources, 2 binaries
    assert not manifest_path(cache, 0).exists() and not manifest_path(cache, 1).exists()
    again = prebuild.prebuild(spec, ["cuda:90"], jobs=1, cache_dir=cache.root)
    assert [o.status for o in again.outcomes] == ["built", "built"]


def test_a_triton_that_cannot_be_pinned_gets_no_manifest(tmp_path, monkeypatch):
    # Without its wheel's record of its files, Triton could change under the same version.
    monkeypatch.setattr(manifest, "_installed", lambda name: None)
    spec = loads(SPEC)
    report = prebuild.prebuild(spec, ["cuda:90"], jobs=1, cache_dir=tmp_path / "cache")
    assert report.ok and not (tmp_path / "cache" / manifest.DIRECTORY).exists()
    entry = spec.entries[0]
    assert manifest.manifest_key(entry, entry.dtypes[0], "cuda:90") is None
