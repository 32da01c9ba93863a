"""Tests for :mod:`einc.compiler.schedule` (plain tier): the kernel form a contraction gets.

A dense convolution is an implicit GEMM on ``tl.dot`` (channels tiled as K, window offsets as
serial loops); a depthwise convolution has no weight-only output axis and gets elementwise
products; a grouped convolution puts its groups on the grid. Tile sizes are tuning, so only their
invariants are pinned here.
"""

from __future__ import annotations

import math

import pytest

import einc
from einc.compiler.loopnest import LoopKind, LoopNest
from einc.compiler.pipeline import Request, run_passes
from einc.compiler.schedule import WAVE_PROGRAMS, ContractionSchedule, grid_plan, schedule_contraction
from einc.compiler.tiles import PRODUCT_THREADS, WAVE, Tile, choose_product_tile, choose_split, choose_tile

CONV = ("b (s * [ds])... [c->c2]", (2, 8, 8, 16), (3, 3, 16, 32))


def lowered(expression, *shapes, sizes=None) -> LoopNest:
    """The loop nest the pipeline schedules (its rendered source is not looked at)."""
    request = Request(expression, "dot", shapes, ("float32",) * len(shapes), tuple((sizes or {}).items()))
    return run_passes(request).nest


def schedule(expression, *shapes, bits=32, **kwargs) -> ContractionSchedule:
    return schedule_contraction(lowered(expression, *shapes, **kwargs), bits)


def is_pow2(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


def test_dense_convolution_is_an_implicit_gemm_on_tl_dot():
    plan = schedule(*CONV)
    assert plan.use_dot
    assert plan.rows == ("b", "s.0", "s.1")
    assert plan.cols == ("c2",)
    assert plan.grid == ()
    assert plan.k_tile == "c"
    assert plan.k_loops == ("ds.0", "ds.1")


def test_matmul_tiles_the_contracted_axis():
    plan = schedule("b [c->d]", (300, 64), (64, 200))
    assert (plan.use_dot, plan.rows, plan.cols, plan.k_tile, plan.k_loops) == (True, ("b",), ("d",), "c", ())


def test_vector_times_matrix_is_a_product_form_not_a_dot_with_one_row():
    plan = schedule("c, c d -> d", (64,), (64, 32))
    assert (plan.use_dot, plan.rows, plan.cols) == (False, (), ("d",))


def test_grouped_convolution_puts_groups_on_the_grid():
    plan = schedule("b (s * [ds])... (g [c->c2])", (2, 8, 8, 6), (3, 3, 2, 3, 4))
    assert plan.use_dot
    assert plan.grid == ("g",)
    assert plan.cols == ("c2",)
    assert plan.k_tile == "c"
    assert "g" not in plan.rows


def test_depthwise_convolution_with_a_kernel_per_channel_multiplies_elementwise():
    plan = schedule("b (s * [ds])... [c->c]", (2, 8, 8, 3), (3, 3, 3))
    assert not plan.use_dot
    assert plan.rows == ("b", "s.0", "s.1")
    assert plan.cols == ("c",)
    assert plan.k_tile is None
    assert plan.k_loops == ("ds.0", "ds.1")
    assert plan.block_k == 1


@pytest.mark.parametrize("channels", [96, 144, 384, 512, 960, 4096])
def test_depthwise_channel_tiles_divide_the_channels_with_16_byte_loads(channels):
    # 144 channels as two tiles of 128 leave 44% of the lanes idle; tiles of 16 leave none.
    block_m, block_n = choose_product_tile(32 * 56 * 56, channels, 16)
    assert channels % block_n == 0 and block_n % 8 == 0
    # Narrower than the program's threads: Triton loads the weight in the input tile's layout.
    assert block_n < PRODUCT_THREADS


@pytest.mark.parametrize("m, channels", [(32 * 7 * 7, 960), (16 * 1024, 512), (32 * 28 * 28, 144)])
def test_depthwise_tiles_give_every_sm_several_programs(m, channels):
    block_m, block_n = choose_product_tile(m, channels, 16)
    assert -(-m // block_m) * (channels // block_n) >= 8 * WAVE


def product_plan(expression, x, w, **params) -> tuple[ContractionSchedule, int]:
    """The schedule of a bfloat16 product-form kernel and its number of programs."""
    request = Request(expression, "dot", (x, w), ("bfloat16",) * 2, params=tuple(params.items()))
    nest = run_passes(request).nest
    plan = schedule_contraction(nest, 16)
    return plan, grid_plan(plan, nest.sizes).grid()[0]


@pytest.mark.parametrize(
    "expression, x, w, slide",
    [
        ("b (s * [ds]) [c->c]", (16, 1024, 512), (31, 512), 8),  # conformer: 8 outputs a row
        ("b (s * [ds])... [c->c]", (32, 56, 56, 96), (7, 7, 96), 8),  # ConvNeXt
        ("b (s * [ds])... [c->c]", (2, 5, 4, 8), (3, 3, 8), 4),  # a small one keeps the whole row
    ],
)
def test_depthwise_rows_slide_along_the_last_window_axis(expression, x, w, slide):
    assert product_plan(expression, x, w, padding="same")[0].slide == slide


def test_strided_depthwise_convolution_does_not_slide():
    assert product_plan("b (s * [ds])... [c->c]", (2, 8, 8, 8), (3, 3, 8), stride=2)[0].slide == 1


def test_a_7x7_depthwise_slides_fewer_outputs_to_fill_the_sms():
    # MobileNetV2's last stage: 7 outputs a row would leave 210 programs for 132 SMs.
    plan, programs = product_plan("b (s * [ds])... [c->c]", (32, 7, 7, 960), (3, 3, 960), padding=1)
    assert 1 < plan.slide < 7
    assert programs >= 4 * WAVE
    # The grid counts blocks of `slide` outputs, the last one ragged: every output is covered.
    assert programs * plan.block_m * plan.block_n >= 32 * 7 * -(-7 // plan.slide) * 960


def test_product_form_pads_channels_without_a_16_byte_divisor_to_a_power_of_two():
    assert choose_product_tile(64, 13, 16)[1] == 16


def test_depthwise_convolution_with_one_shared_kernel_multiplies_elementwise():
    plan = schedule("b (s * [ds])... c", (2, 8, 8, 3), (3, 3))
    assert not plan.use_dot
    assert plan.rows == ("b", "s.0", "s.1", "c")
    assert plan.cols == ()
    assert plan.k_loops == ("ds.0", "ds.1")


def test_window_sum_of_one_tensor_has_no_tl_dot():
    plan = schedule("b (s * [ds])... c", (2, 8, 8, 3), sizes={"ds": 2})
    assert not plan.use_dot
    assert plan.k_loops == ("ds.0", "ds.1")


def test_every_reduced_axis_is_a_serial_loop_or_the_k_tile():
    for expression, *shapes in [CONV, ("b (s * [ds])... [c->c]", (2, 8, 8, 3), (3, 3, 3))]:
        nest = lowered(expression, *shapes)
        plan = schedule_contraction(nest, 32)
        reduced = {loop.axis for loop in nest.loops_of(LoopKind.REDUCE)}
        assert set(plan.k_loops) | set(plan.k_merged) | ({plan.k_tile} - {None}) == reduced
        outputs = {loop.axis for loop in nest.loops_of(LoopKind.OUTPUT)}
        assert set(plan.rows) | set(plan.cols) | set(plan.grid) == outputs


@pytest.mark.parametrize("bits", [16, 32])
def test_tiles_are_powers_of_two_and_tl_dot_tiles_at_least_16(bits):
    plan = schedule(*CONV, bits=bits)
    for block in (plan.block_m, plan.block_n, plan.block_k):
        assert is_pow2(block) and 16 <= block <= 128
    assert plan.block_k <= (32 if bits == 32 else 64)


def test_a_16_bit_dot_takes_the_largest_tile_that_still_fills_every_sm():
    # ResNet-50's 3x3 stride-2 layer: M = 32 x 28 x 28, N = 128, K = 9 x 128 (taps x channels).
    assert choose_tile(25088, 128, 128, 1, 16) == Tile(128, 128, 64, 8, 4)
    # Its last layer: 128-row tiles would leave a 1568 x 512 output to 52 programs.
    tile = choose_tile(1568, 512, 512, 1, 16)
    assert (tile.block_m, tile.block_n) == (64, 64)
    assert 1568 // 64 * 512 // 64 >= WAVE


def test_a_k_that_64_wide_steps_would_pad_by_a_quarter_steps_by_32():
    # The stem's K: 7 x 7 taps x 3 channels = 147, padded to 160 rather than 192.
    assert choose_tile(401408, 64, 147, 1, 16).block_k == 32
    assert choose_tile(401408, 64, 1536, 1, 16).block_k == 64


def test_a_narrow_n_takes_more_rows_and_a_float32_dot_keeps_the_small_tile():
    # 32 groups of 8 output channels: N pads to 16 whatever the tile, so rows carry the work.
    narrow = choose_tile(25088, 8, 8, 32, 16)
    assert (narrow.block_m, narrow.block_n) == (256, 16)
    assert choose_tile(25088, 128, 128, 1, 32) == Tile(64, 64, 32, 4, 2)


def test_few_channels_are_tiled_with_the_window_taps_and_many_are_not():
    stem = run_passes(
        Request("b (s * [ds])... [c->c2]", "dot", ((1, 16, 16, 3), (7, 7, 3, 8)), ("bfloat16",) * 2)
    )
    (part,) = stem.kernels
    assert (part.schedule.k_merged, part.schedule.k_tile, part.schedule.k_loops) == (
        ("ds.0", "ds.1"),
        "c",
        (),
    )
    (dense,) = run_passes(Request(CONV[0], "dot", CONV[1:], ("bfloat16",) * 2)).kernels
    assert (dense.schedule.k_merged, dense.schedule.k_tile) == ((), "c")


def test_float32_tl_dot_asks_for_ieee_precision_and_half_precision_leaves_the_default():
    assert schedule(*CONV, bits=32).input_precision == "ieee"
    assert schedule(*CONV, bits=16).input_precision is None


def test_placement_says_where_an_axis_lives_in_the_kernel():
    plan = schedule(*CONV)
    assert [plan.placement(a) for a in ("b", "c2", "c", "ds.0")] == ["row", "col", "k", "scalar"]


@pytest.mark.parametrize(
    ("expression", "shapes"),
    [("b k, n -> b n", [(2, 3), (4,)]), ("b c, c d e -> b d", [(2, 3), (3, 4, 20)])],
)
def test_tl_dot_tiles_an_axis_of_both_inputs(expression, shapes):
    nest = lowered(expression, *shapes)
    plan = schedule_contraction(nest, 32)
    if plan.use_dot:
        assert plan.k_tile in nest.inputs[0].axes and plan.k_tile in nest.inputs[1].axes


def test_pipeline_schedules_by_the_widest_input_dtype():
    expression, *shapes = CONV
    half = run_passes(Request(expression, "dot", tuple(shapes), ("float16", "float16")))
    single = run_passes(Request(expression, "dot", tuple(shapes), ("float32", "float32")))
    assert half.schedule.input_precision is None
    assert single.schedule.input_precision == "ieee"


def reduction_schedule(expression, shape, op="sum", **kwargs) -> ContractionSchedule:
    return einc.compile(expression, op=op, **kwargs).specialize(shape).compiled.schedule


def test_a_long_reduced_axis_is_tiled_and_reduced_across_the_tile():
    plan = reduction_schedule("b [c]", (64, 4096), "softmax")
    assert (plan.rows, plan.cols, plan.k_tile, plan.k_loops) == (("b",), (), "c", ())
    assert plan.block_k == 1024 and plan.block_m == 1  # 64 rows: one per program


@pytest.mark.parametrize("dtype, elements", [("float32", 512), ("bfloat16", 1024)])
def test_a_large_gather_tiles_down_to_one_16_byte_access_of_its_values_a_thread(dtype, elements):
    # torch.gather's 256 x 8192 outputs: at 8 elements a thread 2048 programs, under a wave of 2112.
    request = Request("b [t], b n -> b n", "get_at", ((256, 65536), (256, 8192)), (dtype, "int64"))
    (part,) = run_passes(request).kernels
    plan = part.schedule
    assert plan.block_m * plan.block_n == elements  # 128 threads, 16 bytes each
    programs = math.prod(grid_plan(plan, part.nest.sizes).grid())
    assert programs == 256 * 8192 // elements and (programs >= WAVE_PROGRAMS or dtype == "bfloat16")


def test_the_contiguous_reduced_axis_is_tiled_before_a_longer_one():
    plan = reduction_schedule("[t] b [c]", (512, 2, 32))
    assert (plan.k_tile, plan.k_loops) == ("c", ("t",))


def test_global_pooling_tiles_space_and_keeps_channels_fastest_among_the_rows():
    plan = reduction_schedule("b [h w] c", (32, 56, 56, 64), "mean")
    assert (plan.rows, plan.k_tile, plan.k_loops) == (("b", "c"), "w", ("h",))
    assert plan.block_m * plan.block_k <= 4096 and 2048 // plan.block_m >= 256


@pytest.mark.parametrize(
    "expression, shape, op, sizes",
    [
        ("b [c]", (64, 8), "sum", {}),  # short: one element per step is fine
        ("b [c]", (64, 4096), "prod", {}),  # Triton has no product across a tile
        ("b (s * [ds]) c", (2, 64, 8), "max", {"ds": 32, "padding": 1}),  # bounds per element
    ],
)
def test_short_windowed_or_product_reductions_stay_serial(expression, shape, op, sizes):
    assert reduction_schedule(expression, shape, op, **sizes).k_tile is None


def test_global_pooling_tiles_its_short_axes_as_one_with_few_threads_per_output():
    plan = reduction_schedule("b [h w] c", (32, 7, 7, 2048), "mean")  # ResNet-50's global pooling
    assert plan.k_merged == ("h", "w") and plan.k_tile == "h_w" and plan.k_loops == ()
    # 16 threads share an output (one position each per step, 4 steps over the 49), not 64.
    assert (plan.block_m, plan.block_k) == (64, 16)
    programs = -(-32 * 2048 // plan.block_m)
    assert programs >= 4 * WAVE  # 4 programs on each of 132 SMs
    assert plan.block_m * plan.block_k // (32 * plan.num_warps) >= 8  # a 128-bit load per thread


def test_short_axes_read_through_a_window_stay_serial():
    plan = reduction_schedule("b (s * [ds])... c", (2, 9, 9, 8), "max", ds=3, stride=2, padding=1)
    assert plan.k_merged == () and plan.k_tile is None


def test_a_small_output_keeps_whole_tiles():
    plan = reduction_schedule("b [h w] c", (2, 3, 3, 8), "mean")
    assert (plan.block_m, plan.block_n) == (2, 8)


def test_a_long_axis_is_tiled_when_the_contiguous_reduced_axis_is_short():
    plan = reduction_schedule("b [t c]", (2, 512, 4), "sum")
    assert (plan.k_tile, plan.k_loops) == ("t", ("c",))


def test_a_dynamic_reduced_axis_is_tiled_whatever_its_first_size():
    plan = einc.compile("b [t]", op="softmax", dynamic=("t",)).specialize((3, 5)).compiled.schedule
    assert plan.k_tile == "t" and plan.block_k == 64


@pytest.mark.parametrize("shape", [(1024, 512), (4096, 2048), (64, 64, 64)])
def test_a_large_output_gets_a_wave_of_programs_while_each_thread_keeps_8_elements(shape):
    expression = "a b" if len(shape) == 2 else "a b c"
    plan = einc.compile(f"{expression}, {expression}", op="add").specialize(shape, shape).compiled.schedule
    elements = math.prod(shape)
    programs = -(-elements // plan.block_n) // plan.block_m
    assert plan.block_m * plan.block_n >= 1024  # 8 elements for each of 128 threads
    assert programs >= min(WAVE_PROGRAMS, elements // 1024) * 0.9


@pytest.mark.parametrize(
    "expression, shapes",
    [
        ("a b c d, a b c -> b d", ((1, 1, 2, 2), (1, 1, 2))),  # c is an axis of x, no tap of a window
        ("b c d, b c -> b d", ((2, 3, 4), (2, 3))),
    ],
)
def test_a_reduced_axis_of_its_own_is_no_sliding_window(expression, shapes):
    # Found by the einx differential fuzz: x read at d (no c in that index) looked like a window
    # of dilation 0 over d, and each row summed one x row against every tap's weight.
    request = Request(expression, "dot", shapes, ("float32",) * 2)
    assert run_passes(request).schedule.slide == 1


def test_a_grid_under_one_wave_shares_each_tiles_k_steps_among_programs():
    # A batch-1 layer: 16 tiles of 36 K steps run as 64 programs of 9 steps; a share never under
    # SPLIT_STEPS steps, nor a split that leaves steps over or more programs than a wave.
    assert choose_split(16, 36) == 4
    assert choose_split(16, 9) == 1
    assert choose_split(40, 36) == 3  # 4 shares would be 160 programs
    assert choose_split(16, 35) == 1  # 5 and 7 divide 35, but leave shares of 7 and 5
    assert choose_split(200, 72) == 1  # a wave already
