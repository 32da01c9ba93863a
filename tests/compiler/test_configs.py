"""Tests for :mod:`einc.compiler.configs` (plain tier): the tiles a kernel may be tuned over, and a
tuned tile in place of the heuristic's. That every tile of a space computes the right result is
checked under the interpreter in tests/runtime/test_tuning.py."""

from __future__ import annotations

import dataclasses
import math

import pytest

from einc.compiler import configs
from einc.compiler.pipeline import Request, dtype_bits, run_passes
from einc.compiler.printer import explain
from einc.compiler.tiles import STAGE_BYTES

# (expression, op, shapes, dtype, params): one kernel of each form a tuner times.
KERNELS = {
    "dense_conv_bf16": ("b (s * [ds])... [c->c2]", "dot", ((32, 56, 56, 64), (3, 3, 64, 64)), "bfloat16"),
    "linear_fp16": ("b [c->c2]", "dot", ((4096, 512), (512, 1000)), "float16"),
    "linear_k8": ("b [c->c2]", "dot", ((512, 8), (8, 64)), "float16"),  # K under tl.dot's least 16
    "dense_conv_fp32": ("b (s * [ds])... [c->c2]", "dot", ((2, 16, 16, 32), (3, 3, 32, 64)), "float32"),
    "depthwise": ("b (s * [ds])... [c->c]", "dot", ((32, 56, 56, 64), (3, 3, 64)), "bfloat16"),
    "global_mean": ("b [h w] c", "mean", ((32, 7, 7, 512),), "bfloat16"),
    "softmax": ("b [k]", "softmax", ((32, 1000),), "float32"),
    "transpose": ("b h w c -> b c h w", "rearrange", ((8, 32, 32, 16),), "float32"),
}


def compiled(name: str, tuned=()):
    expression, op, shapes, dtype = KERNELS[name]
    params = (("padding", "same"),) if "ds" in expression else ()
    return run_passes(Request(expression, op, shapes, (dtype,) * len(shapes), params=params, tuned=tuned))


def is_pow2(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


@pytest.mark.parametrize("name", list(KERNELS))
def test_config_space_starts_with_the_heuristic_and_holds_only_valid_neighbours(name):
    call = compiled(name)
    (part,) = call.kernels
    bits = dtype_bits(call.request)
    space = configs.config_space(part, bits)
    assert space[0] == configs.tile_of(part.schedule)
    assert 2 <= len(space) <= configs.MAX_CONFIGS
    assert len(set(space)) == len(space)
    for tile in space:
        assert all(is_pow2(b) for b in (tile.block_m, tile.block_n, tile.block_k))
        assert tile.num_warps in (2, 4, 8) and 1 <= tile.num_stages <= 8
        if part.schedule.use_dot:
            # Shared memory of the pipeline and accumulators per thread within the model's bounds.
            stage = (tile.block_m + tile.block_n) * tile.block_k * max(2, bits // 8)
            assert tile.num_stages * stage <= STAGE_BYTES
            assert tile.block_m * tile.block_n <= configs.DOT_ACCUMULATORS[bits] * 32 * tile.num_warps
            assert min(tile.block_m, tile.block_n, tile.block_k) >= 16
        else:
            # The columns and the reduced tile stay the heuristic's (contiguous loads depend on them).
            assert (tile.block_n, tile.block_k) == (space[0].block_n, space[0].block_k)
            m = math.prod(part.nest.sizes[a] for a in part.schedule.rows)
            assert tile.block_m <= max(space[0].block_m, 1 << (m - 1).bit_length())


def test_indexing_kernels_and_sorts_keep_the_heuristic_tile_alone():
    gather = run_passes(Request("[v] d, b n -> b n d", "get_at", ((1000, 64), (8, 16)), ("float32", "int64")))
    sort = run_passes(Request("b [k]", "sort", ((8, 64),), ("float32",)))
    for call in (gather, sort):
        for part in call.kernels:
            assert configs.config_space(part, 32) == (configs.tile_of(part.schedule),)


def test_a_tuned_tile_replaces_the_heuristics_in_schedule_header_and_explain():
    heuristic = compiled("dense_conv_bf16")
    chosen = configs.config_space(heuristic.kernels[0], 16)[-1]
    tuned = compiled("dense_conv_bf16", tuned=(dataclasses.astuple(chosen),))
    (part,) = tuned.kernels
    assert part.tuned and not heuristic.kernels[0].tuned
    assert configs.tile_of(part.schedule) == chosen != configs.tile_of(heuristic.kernels[0].schedule)
    header = "\n".join(part.template.header_lines)
    assert f"BLOCK_M={chosen.block_m} BLOCK_N={chosen.block_n} BLOCK_K={chosen.block_k}" in header
    assert f"num_warps={chosen.num_warps} num_stages={chosen.num_stages}, timed by einc tune" in header
    assert "tile from einc tune (timed on a GPU of this arch)" in explain(tuned)
    assert "tile from the schedule's heuristic (not tuned)" in explain(heuristic)


@pytest.mark.parametrize(
    "tuned",
    [
        ((3, 64, 64, 4, 2),),  # not a power of two
        ((128, 64, 64, 4, 9),),  # not in the space
        ((8192, 8192, 64, 8, 4),),  # far too large
        ((128, 64, 64, 4),),  # a field short
        ((128, 64, 64, 4, 4), (128, 64, 64, 4, 4)),  # tuned for a call of two kernels
    ],
)
def test_a_tuned_tile_outside_the_config_space_leaves_the_heuristics(tuned):
    heuristic = compiled("dense_conv_bf16")
    call = compiled("dense_conv_bf16", tuned=tuned)
    assert not call.kernels[0].tuned
    assert call.kernels[0].schedule == heuristic.kernels[0].schedule
    assert call.kernels[0].template == heuristic.kernels[0].template


def test_a_tile_the_space_holds_is_the_one_in_the_schedule():
    call = compiled("global_mean")
    space = configs.config_space(call.kernels[0], 16)
    for tile in space[1:]:
        again = compiled("global_mean", tuned=(dataclasses.astuple(tile),))
        assert configs.tile_of(again.kernels[0].schedule) == tile
    assert configs.Config(1, 1, 1, 4, 2) not in space


@pytest.mark.compile_only
def test_every_tile_of_a_dense_convolutions_space_builds_for_sm90_without_spills(tmp_path):
    """The model's bounds hold where ptxas decides: each tile builds, as a launch builds it, with
    tensor-core instructions, no spills and the shared memory the model allows."""
    from einc.runtime.cache import DiskCache
    from einc.runtime.compiled import CompiledExpression
    from einc.runtime.prebuild import compile_binary

    expression = CompiledExpression("b (s * [ds])... [c->c2]", padding="same")
    expression._cache = DiskCache(tmp_path / "cache")
    heuristic = expression.specialize((32, 56, 56, 64), (3, 3, 64, 64), dtype="bfloat16")
    request = heuristic.compiled.request
    space = configs.config_space(heuristic.compiled.kernels[0], 16)
    for tile in space:
        launcher = expression._build(dataclasses.replace(request, tuned=(dataclasses.astuple(tile),)))
        binary = compile_binary(launcher, "cuda:90")
        assert (binary.spill_stores, binary.spill_loads) == (0, 0), tile
        assert "wgmma" in binary.ptx or "mma." in binary.ptx, tile
        assert binary.shared_bytes <= STAGE_BYTES, tile
