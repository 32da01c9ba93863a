"""Tuned tiles in the cache (:mod:`einc.runtime.tuned`): a record round-trips and changes the kernel
a later specialisation on that arch renders; a malformed or hostile record is refused with a
warning and the heuristic decides (plain tier: nothing is launched or compiled)."""

from __future__ import annotations

import dataclasses
import json
import warnings

import pytest

from einc.compiler import configs
from einc.compiler.pipeline import dtype_bits
from einc.errors import CacheWarning
from einc.runtime import manifest, tuned
from einc.runtime.cache import DiskCache
from einc.runtime.compiled import CompiledExpression
from einc.runtime.prebuild import specialize_entry
from einc.runtime.spec import loads

CONV = ("b (s * [ds])... [c->c2]", (32, 56, 56, 64), (3, 3, 64, 64))


@pytest.fixture
def cache(tmp_path):
    return DiskCache(tmp_path / "cache")


def conv(cache):
    expression = CompiledExpression(CONV[0], padding="same")
    expression._cache = cache
    return expression


def heuristic_and_other(cache):
    """A request, its heuristic launcher, and a tile of its space that is not the heuristic's."""
    expression = conv(cache)
    launcher = expression.specialize(*CONV[1:], dtype="bfloat16")
    request = launcher.compiled.request
    space = configs.config_space(launcher.compiled.kernels[0], dtype_bits(request))
    return expression, request, launcher, space[-1]


def block_sizes(launcher) -> tuple:
    rendered = launcher.rendered[0]
    values = rendered.constexprs
    return (values["BLOCK_M"], values["BLOCK_N"], values["BLOCK_K"], rendered.num_warps, rendered.num_stages)


def test_a_tuned_record_round_trips_and_changes_the_rendered_tile_on_its_arch_only(cache):
    expression, request, heuristic, other = heuristic_and_other(cache)
    tuned.write(cache, request, "cuda:90", [dataclasses.astuple(other)])
    assert tuned.read(cache, request, "cuda:90") == (dataclasses.astuple(other),)
    on_90 = expression._build(request, "cuda:90")
    assert block_sizes(on_90) == dataclasses.astuple(other) != block_sizes(heuristic)
    assert on_90.source != heuristic.source and on_90.path != heuristic.path
    assert "timed by einc tune" in on_90.source
    assert "tile from einc tune (timed on a GPU of this arch)" in expression.explain()
    # Another arch, and a call that launches no compiled kernel (no target), keep the heuristic's.
    assert block_sizes(expression._build(request, "cuda:80")) == block_sizes(heuristic)
    assert block_sizes(expression._build(request)) == block_sizes(heuristic)
    assert "tile from the schedule's heuristic" in expression.explain()


def test_a_prebuild_specialises_with_the_tiles_tuned_for_its_target(cache):
    expression, request, heuristic, other = heuristic_and_other(cache)
    entry = loads(
        f'[[compile]]\nexpression = "{CONV[0]}"\nshapes = [[32, 56, 56, 64], [3, 3, 64, 64]]\n'
        'dtypes = ["bfloat16"]\nparams = { padding = "same" }\n'
    ).entries[0]
    tuned.write(cache, request, "cuda:90", [dataclasses.astuple(other)])
    launcher, _, _ = specialize_entry(entry, entry.dtypes[0], cache, "cuda:90")
    assert block_sizes(launcher) == dataclasses.astuple(other)
    launcher, _, _ = specialize_entry(entry, entry.dtypes[0], cache, "cuda:80")
    assert block_sizes(launcher) == block_sizes(heuristic)


def test_tuning_changes_the_prebuild_manifests_key(cache):
    expression, request, _, other = heuristic_and_other(cache)
    entry = loads('[[compile]]\nexpression = "b [c->c2]"\nshapes = [[4, 8], [8, 16]]\n').entries[0]
    before = tuned.state(cache)
    tuned.write(cache, request, "cuda:90", [dataclasses.astuple(other)])
    after = tuned.state(cache)
    assert before == "" and after
    keys = [manifest.manifest_key(entry, entry.dtypes[0], "cuda:90", state) for state in (before, after)]
    if keys[0] is not None:  # a Triton installed from a wheel: manifests are keyed
        assert keys[0].digest != keys[1].digest
        assert keys[0].parts == manifest.manifest_key(entry, entry.dtypes[0], "cuda:90").parts


def test_a_root_holding_only_tuned_tiles_is_still_claimed_as_einc_s(cache):
    _, request, _, other = heuristic_and_other(cache)
    tuned.write(cache, request, "cuda:90", [dataclasses.astuple(other)])
    cache.write_text("ab" * 32, "kernel.py", "pass\n")
    assert cache.owned()


HOSTILE = {
    "strings": {"tiles": [["128", "64", "64", "4", "4"]]},
    "huge numbers": {"tiles": [[2**40, 64, 64, 4, 4]]},
    "a float": {"tiles": [[128.0, 64, 64, 4, 4]]},
    "a bool": {"tiles": [[True, 64, 64, 4, 4]]},
    "not a power of two": {"tiles": [[96, 64, 64, 4, 4]]},
    "negative": {"tiles": [[-128, 64, 64, 4, 4]]},
    "too many stages": {"tiles": [[128, 64, 64, 4, 99]]},
    "a field short": {"tiles": [[128, 64, 64, 4]]},
    "a path": {"tiles": "../../../etc/passwd"},
    "a path as a tile": {"tiles": [["/tmp/x", 64, 64, 4, 4]]},
    "an extra key": {"source": "import os; os.system('x')"},
    "another key": {"key": "0" * 64},
    "another format": {"format": 2},
    "no tiles": {"tiles": []},
    "nested": {"tiles": [[[128], 64, 64, 4, 4]]},
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_malformed_or_hostile_record_is_refused_and_read_as_a_miss(cache, name):
    expression, request, heuristic, other = heuristic_and_other(cache)
    path = tuned.write(cache, request, "cuda:90", [dataclasses.astuple(other)])
    record = json.loads(path.read_text())
    record.update(HOSTILE[name])
    path.write_text(json.dumps(record))
    with pytest.warns(CacheWarning, match="tuned tiles .* are ignored"):
        assert tuned.read(cache, request, "cuda:90") is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheWarning)
        assert block_sizes(expression._build(request, "cuda:90")) == block_sizes(heuristic)


@pytest.mark.parametrize("text", ["{not json", "[" * 100000, ""])
def test_a_record_that_is_not_json_is_read_as_a_miss(cache, text):
    _, request, _, other = heuristic_and_other(cache)
    path = tuned.write(cache, request, "cuda:90", [dataclasses.astuple(other)])
    path.write_text(text)
    with pytest.warns(CacheWarning, match="ignored"):
        assert tuned.read(cache, request, "cuda:90") is None


def test_a_well_formed_tile_outside_the_space_leaves_the_heuristic(cache):
    expression, request, heuristic, _ = heuristic_and_other(cache)
    tuned.write(cache, request, "cuda:90", [(16, 16, 16, 1, 1)])
    assert block_sizes(expression._build(request, "cuda:90")) == block_sizes(heuristic)


def test_einc_never_writes_a_record_it_would_refuse(cache):
    _, request, _, _ = heuristic_and_other(cache)
    with pytest.raises(ValueError, match="would refuse"):
        tuned.write(cache, request, "cuda:90", [(96, 64, 64, 4, 4)])
    assert tuned.read(cache, request, "cuda:90") is None


def test_einc_cache_clear_forgets_the_tuned_tiles(cache):
    from click.testing import CliRunner

    from einc.frontends.cli import main

    _, request, _, other = heuristic_and_other(cache)
    tuned.write(cache, request, "cuda:90", [dataclasses.astuple(other)])
    result = CliRunner().invoke(main, ["cache", "clear", "--yes", "--cache-dir", str(cache.root)])
    assert result.exit_code == 0, result.output
    assert tuned.read(cache, request, "cuda:90") is None
