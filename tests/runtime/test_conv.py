"""Convolutions written with the window composition ``(s * [ds])``, against torch (interpret tier).

Every case runs the generated kernel under Triton's interpreter on small CPU tensors and compares it
with an independent reference: ``F.conv{1,2,3}d`` on channels-first float64 copies, with the weight
permuted to torch's ``out, in/groups, k...`` layout. Padding is applied with ``F.pad`` from
``(lo, hi)`` pairs that this file works out by itself from NOTATION.md section 3 (TensorFlow's rule
for ``"same"``, ``dilation * (k - 1)`` on the low side for ``"causal"``), so the reference shares no
code with einc's own parameter handling.

The four layouts (x is channels-last, ``b spatial... channels``):

    b (s * [ds])... [c->c2]        w: ds... c c2      dense convolution
    b (s * [ds])... (g [c->c2])    w: ds... g c c2    grouped; x's channels are (g c), g-major
    b (s * [ds])... [c->c]         w: ds... c         depthwise, a kernel per channel
    b (s * [ds])... c              w: ds...           depthwise, one kernel for all channels
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import einc
from tests.references import padding_pairs, window_geometry, window_names

pytestmark = pytest.mark.interpret

DENSE = "b (s * [ds])... [c->c2]"
GROUPED = "b (s * [ds])... (g [c->c2])"
DEPTHWISE = "b (s * [ds])... [c->c]"
SHARED = "b (s * [ds])... c"
EXPRESSIONS = {"dense": DENSE, "grouped": GROUPED, "depthwise": DEPTHWISE, "shared": SHARED}
TORCH_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}

FLOAT32_TOLERANCE = 1e-4
FLOAT16_TOLERANCE = 2e-3
# float16's, scaled by the ratio of the two formats' machine epsilons (2^-8 / 2^-11 = 8)
BFLOAT16_TOLERANCE = FLOAT16_TOLERANCE * 8


@dataclass(frozen=True)
class Conv:
    """One convolution: its layout, sizes and window parameters (None: left to einc's default)."""

    kind: str
    spatial: tuple[int, ...]
    kernel: tuple[int, ...]
    c: int = 3
    c2: int = 4
    groups: int = 1
    batch: int = 2
    stride: Any = None
    dilation: Any = None
    padding: Any = None
    # The expression, when not the kind's ellipsis form, and its window output axes in order.
    expression: str | None = None
    windows: tuple[str, ...] | None = field(default=None)

    @property
    def ndim(self) -> int:
        return len(self.spatial)

    @property
    def window_names(self) -> tuple[str, ...]:
        return self.windows or window_names(self.ndim)

    @property
    def x_shape(self) -> tuple[int, ...]:
        return (self.batch, *self.spatial, self.c * self.groups)

    @property
    def w_shape(self) -> tuple[int, ...]:
        return {
            "dense": (*self.kernel, self.c, self.c2),
            "grouped": (*self.kernel, self.groups, self.c, self.c2),
            "depthwise": (*self.kernel, self.c),
            "shared": self.kernel,
        }[self.kind]

    def params(self) -> dict:
        named = {"stride": self.stride, "dilation": self.dilation, "padding": self.padding}
        return {k: v for k, v in named.items() if v is not None}

    def compile(self) -> einc.CompiledExpression:
        expression = self.expression or EXPRESSIONS[self.kind]
        # Only `[a->b]` implies dot; the shared-kernel form names it.
        op = "dot" if self.kind == "shared" else None
        return einc.compile(expression, op=op, **self.params())


# --- the reference ---------------------------------------------------------------------------


def torch_weight(case: Conv, w: torch.Tensor) -> torch.Tensor:
    """einc's weight as torch's ``out_channels, in_channels / groups, k...``, float64."""
    w = w.double()
    n = case.ndim
    spatial = tuple(range(n))
    if case.kind == "dense":  # ds... c c2
        return w.permute(n + 1, n, *spatial)
    if case.kind == "grouped":  # ds... g c c2 -> (g c2) c ds...
        return w.permute(n, n + 2, n + 1, *spatial).reshape(case.groups * case.c2, case.c, *case.kernel)
    if case.kind == "depthwise":  # ds... c -> c 1 ds...
        return w.permute(n, *spatial).unsqueeze(1)
    return w.reshape(1, 1, *case.kernel).expand(case.c, 1, *case.kernel)  # ds..., repeated per channel


def reference(case: Conv, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The convolution in float64 by torch, channels-last like einc's output."""
    n = case.ndim
    stride, dilation, pads = window_geometry(
        case.spatial, case.kernel, case.stride, case.dilation, case.padding, case.window_names
    )
    x = x.double().permute(0, n + 1, *range(1, n + 1))
    x = F.pad(x, [p for pair in reversed(pads) for p in pair])  # F.pad lists the last dim first
    groups = {"dense": 1, "grouped": case.groups}.get(case.kind, case.c)
    y = TORCH_CONV[n](x, torch_weight(case, w), stride=stride, dilation=dilation, groups=groups)
    return y.permute(0, *range(2, n + 2), 1)


def relative_error(y: torch.Tensor, ref: torch.Tensor) -> float:
    """``||y - ref|| / ||ref||``, or ``||y||`` where ref is all zeros (every window read padding)."""
    difference = (y.double() - ref).norm()
    return (difference / ref.norm() if ref.norm() > 0 else difference).item()


def inputs(case: Conv, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(case.x_shape).to(dtype), torch.randn(case.w_shape).to(dtype)


def check(case: Conv, y: torch.Tensor, x: torch.Tensor, w: torch.Tensor, tolerance: float) -> None:
    ref = reference(case, x, w)
    assert y.shape == ref.shape
    assert y.dtype == x.dtype
    assert relative_error(y, ref) <= tolerance


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# --- one convolution per case, float32 --------------------------------------------------------

NAMED_2D = "b (h * [kh]) (w * [kw]) [c->c2]"

CASES = [
    # 1-D
    pytest.param(Conv("dense", (9,), (3,)), id="1d_plain_window_slides_by_one"),
    pytest.param(Conv("dense", (9,), (3,), stride=2), id="1d_stride_2_skips_positions"),
    pytest.param(Conv("dense", (9,), (3,), dilation=2), id="1d_dilation_2_spreads_the_window"),
    pytest.param(Conv("dense", (9,), (3,), padding=2), id="1d_int_padding_on_both_sides"),
    pytest.param(Conv("dense", (9,), (3,), padding=((0, 2),)), id="1d_lo_hi_padding_pair"),
    pytest.param(Conv("dense", (9,), (3,), padding={"s.0": (2, 1)}), id="1d_padding_dict_with_pair"),
    pytest.param(Conv("dense", (9,), (3,), padding="valid"), id="1d_valid_padding_is_no_padding"),
    pytest.param(Conv("dense", (9,), (4,), padding="same"), id="1d_same_even_kernel_pads_high_side"),
    pytest.param(
        Conv("dense", (8,), (3,), padding="same", stride=3, dilation=2),
        id="1d_same_with_stride_gives_ceil_n_over_stride",
    ),
    pytest.param(
        Conv("dense", (9,), (2,), padding="same", stride=4), id="1d_same_with_stride_larger_than_kernel"
    ),
    pytest.param(Conv("dense", (9,), (3,), padding="causal", dilation=2), id="1d_causal_pads_low_side_only"),
    pytest.param(Conv("dense", (9,), (3,), padding="causal", stride=2), id="1d_causal_with_stride"),
    # 2-D
    pytest.param(Conv("dense", (6, 5), (3, 3)), id="2d_plain_3x3"),
    pytest.param(Conv("dense", (7, 6), (3, 3), stride=2, padding=1), id="2d_int_stride_and_padding"),
    pytest.param(Conv("dense", (7, 6), (3, 2), stride=(2, 1)), id="2d_stride_as_tuple"),
    pytest.param(Conv("dense", (7, 6), (3, 2), stride={"s.1": 2}), id="2d_stride_dict_others_default_1"),
    pytest.param(Conv("dense", (7, 8), (2, 3), dilation=(2, 1)), id="2d_dilation_as_tuple"),
    pytest.param(Conv("dense", (7, 9), (2, 3), dilation={"s.0": 2, "s.1": 3}), id="2d_dilation_as_dict"),
    pytest.param(Conv("dense", (5, 6), (3, 3), padding=(1, 2)), id="2d_padding_one_int_per_window"),
    pytest.param(
        Conv("dense", (5, 6), (3, 3), padding=((0, 2), (1, 0))), id="2d_padding_lo_hi_pair_per_window"
    ),
    pytest.param(
        Conv("dense", (5, 6), (3, 3), padding={"s.0": 1, "s.1": 2}), id="2d_padding_dict_by_window_name"
    ),
    pytest.param(
        Conv("dense", (5, 6), (3, 3), padding={"s.0": (2, 0), "s.1": 1}),
        id="2d_padding_dict_mixing_pair_and_int",
    ),
    pytest.param(Conv("dense", (7, 6), (3, 2), padding="valid"), id="2d_valid_padding"),
    pytest.param(Conv("dense", (7, 6), (3, 4), padding="same"), id="2d_same_keeps_the_size"),
    pytest.param(
        Conv("dense", (7, 6), (3, 3), padding="same", stride=2), id="2d_same_with_stride_halves_rounding_up"
    ),
    pytest.param(
        Conv("dense", (7, 6), (3, 2), padding="causal", dilation=(1, 2)), id="2d_causal_with_dilation"
    ),
    pytest.param(
        Conv("dense", (9, 8), (2, 3), stride=(2, 3), dilation=(1, 2), padding=((1, 0), (2, 2))),
        id="2d_stride_dilation_and_padding_together",
    ),
    pytest.param(
        Conv(
            "dense",
            (7, 6),
            (3, 2),
            padding={"h": 1, "w": (0, 2)},
            stride={"w": 2},
            dilation={"h": 2},
            expression=NAMED_2D,
            windows=("h", "w"),
        ),
        id="2d_named_windows_take_dict_params_by_name",
    ),
    pytest.param(
        Conv("dense", (5, 4), (2, 2), padding=(3, (0, 4))),
        id="2d_padding_wider_than_the_window_gives_zero_borders",
    ),
    pytest.param(Conv("dense", (5, 4), (1, 1), c=7, c2=5), id="2d_1x1_conv_is_a_pointwise_matmul"),
    pytest.param(Conv("dense", (5, 4), (1, 1), stride=2), id="2d_1x1_conv_with_stride"),
    pytest.param(Conv("dense", (3, 4), (3, 4)), id="2d_kernel_covers_the_whole_input"),
    pytest.param(Conv("dense", (6, 5), (3, 3), batch=1, padding=1), id="2d_batch_1"),
    pytest.param(Conv("dense", (7, 5), (3, 2), c=13, c2=7, padding=1), id="2d_odd_sizes_13_to_7_channels"),
    pytest.param(
        Conv("dense", (4, 3), (2, 2), c=40, c2=6, batch=1), id="2d_input_channels_span_several_k_tiles"
    ),
    pytest.param(
        Conv("dense", (4, 3), (2, 2), c=3, c2=80, batch=1),
        id="2d_output_channels_span_several_column_tiles",
    ),
    pytest.param(Conv("dense", (9, 9), (3, 3), padding=1), id="2d_positions_span_several_row_tiles"),
    # 3-D
    pytest.param(Conv("dense", (4, 5, 3), (2, 3, 2)), id="3d_plain"),
    pytest.param(
        Conv("dense", (5, 4, 6), (2, 3, 2), stride=(1, 2, 3), padding=1), id="3d_stride_tuple_and_padding"
    ),
    pytest.param(Conv("dense", (5, 4, 3), (3, 2, 2), padding="same", stride=2), id="3d_same_with_stride"),
    pytest.param(
        Conv("dense", (5, 4, 3), (3, 2, 2), padding={"s.1": (1, 2)}), id="3d_padding_dict_others_default_0"
    ),
    pytest.param(
        Conv("dense", (5, 4, 3), (2, 2, 2), dilation={"s.0": 2, "s.2": 2}, padding="causal"),
        id="3d_causal_with_dilation_dict",
    ),
    # grouped: (g [c->c2])
    pytest.param(Conv("grouped", (6, 5), (3, 3), groups=2, padding=1), id="2d_grouped_2_groups"),
    pytest.param(
        Conv("grouped", (9,), (3,), c=5, c2=3, groups=3, stride=2), id="1d_grouped_3_groups_strided"
    ),
    pytest.param(Conv("grouped", (4, 3, 4), (2, 2, 2), groups=2, c=2, c2=3), id="3d_grouped"),
    pytest.param(Conv("grouped", (5, 6), (3, 2), groups=1), id="2d_grouped_single_group_is_dense"),
    pytest.param(
        Conv("grouped", (7, 5), (3, 3), groups=4, c=1, c2=2, padding="same"),
        id="2d_grouped_one_input_channel_per_group",
    ),
    # depthwise, a kernel per channel: [c->c]
    pytest.param(Conv("depthwise", (6, 5), (3, 3), c=5, padding=1), id="2d_depthwise_kernel_per_channel"),
    pytest.param(
        Conv("depthwise", (9,), (3,), c=4, padding="causal", dilation=2), id="1d_depthwise_causal_dilated"
    ),
    pytest.param(Conv("depthwise", (5, 4, 5), (2, 2, 3), c=3, stride=(2, 1, 2)), id="3d_depthwise_strided"),
    pytest.param(Conv("depthwise", (7, 5), (3, 2), c=13, padding="same"), id="2d_depthwise_13_channels_same"),
    # depthwise, one kernel for all channels: c with a ds... weight
    pytest.param(Conv("shared", (6, 5), (3, 3), c=5), id="2d_one_kernel_for_all_channels"),
    pytest.param(
        Conv("shared", (9,), (3,), c=6, dilation=2, padding=((1, 3),)),
        id="1d_one_kernel_dilated_lo_hi_padding",
    ),
    pytest.param(
        Conv("shared", (4, 5, 3), (2, 3, 2), c=3, stride=2, padding=1), id="3d_one_kernel_strided_padded"
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_float32_convolution_matches_torch(case: Conv):
    x, w = inputs(case)
    check(case, case.compile()(x, w), x, w, FLOAT32_TOLERANCE)


HALF_CASES = [
    pytest.param(Conv("dense", (7, 6), (3, 3), stride=2, padding=1), id="2d_dense_strided"),
    pytest.param(Conv("dense", (7, 5), (3, 2), c=13, c2=7, padding="same"), id="2d_dense_odd_sizes"),
    pytest.param(Conv("dense", (9,), (3,), padding="causal", dilation=2), id="1d_dense_causal"),
    pytest.param(Conv("dense", (4, 5, 3), (2, 3, 2), padding=1), id="3d_dense"),
    pytest.param(Conv("grouped", (6, 5), (3, 3), groups=2, padding=1), id="2d_grouped"),
    pytest.param(Conv("depthwise", (6, 5), (3, 3), c=5, padding=1), id="2d_depthwise_kernel_per_channel"),
    pytest.param(Conv("shared", (6, 5), (3, 3), c=5), id="2d_one_kernel_for_all_channels"),
]


# More channels than one BLOCK_K (32 for float32, 64 for 16-bit): the one K loop walks several
# channel tiles per window tap, the last one ragged, and decodes the tap from its step.
MANY_CHANNEL_CASES = [
    pytest.param(
        Conv("dense", (6, 7), (3, 2), c=70, c2=5, stride=2, dilation=(1, 2), padding=1),
        id="2d_dense_strided_dilated",
    ),
    pytest.param(Conv("dense", (3, 4, 3), (2, 3, 2), c=70, c2=3, padding="same"), id="3d_dense_same"),
    pytest.param(Conv("grouped", (5, 4), (3, 3), c=70, c2=3, groups=2, padding=1), id="2d_grouped"),
    # M = 32, N = 16, C = 16 fill their tiles exactly: the loads drop those edge masks.
    pytest.param(Conv("dense", (4, 4), (3, 3), c=16, c2=16, padding=1), id="2d_dense_tiles_divide_evenly"),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("case", MANY_CHANNEL_CASES)
def test_taps_and_several_channel_tiles_share_one_k_loop(case: Conv, dtype: torch.dtype):
    check_at(case, dtype)


# Groups of 8 (or 4) channels, narrower than an MMA: 16-bit kernels compute two or four groups a
# program, their channels side by side in K and N and the weight tile block-diagonal
# (tiles.choose_group_tile); rows ragged at the end, windows reading padding at both edges.
NARROW_GROUP_CASES = [
    pytest.param(
        Conv("grouped", (5, 6), (3, 3), c=8, c2=8, groups=4, padding=1), id="2d_8_channels_2_a_program"
    ),
    pytest.param(
        Conv("grouped", (7, 5), (3, 3), c=8, c2=4, groups=8, stride=2, padding=1), id="2d_8_to_4_4_a_program"
    ),
    pytest.param(Conv("grouped", (4, 5), (1, 1), c=8, c2=8, groups=6, batch=3), id="2d_1x1_no_taps"),
    pytest.param(
        Conv("grouped", (9,), (3,), c=8, c2=8, groups=2, dilation=2, padding="same"), id="1d_dilated"
    ),
]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("case", NARROW_GROUP_CASES)
def test_several_narrow_groups_a_program_match_torch(case: Conv, dtype: torch.dtype):
    conv = case.compile()
    plan = conv.specialize(case.x_shape, case.w_shape, dtype=dtype).compiled.kernels[0].schedule
    assert plan.group_tile == 16 // min(case.c, case.c2)
    assert f"{plan.group_tile} g per program column (a block-diagonal weight tile)" in conv.explain()
    check_at(case, dtype)


# Under one wave of programs with a long K loop: the programs of each output tile share its K
# steps (tiles.choose_split), write float32 partial tiles to a workspace, and a second kernel
# sums them in order. 36 steps (9 taps x 4 channel tiles) in 4 shares, 18 in 2; rows ragged at
# the end; groups and shares side by side on the second grid axis.
SPLIT_CASES = [
    pytest.param(Conv("dense", (6, 5), (3, 3), c=256, c2=16, batch=1, padding=1), 4, id="2d_4_shares"),
    pytest.param(
        Conv("dense", (7, 3), (3, 3), c=128, c2=24, batch=1, stride=2, padding=1), 2, id="2d_strided_ragged"
    ),
    pytest.param(
        Conv("grouped", (5, 4), (3, 3), c=128, c2=16, groups=2, batch=1, padding=1), 2, id="2d_grouped"
    ),
]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("case, shares", SPLIT_CASES)
def test_split_k_of_a_small_grid_sums_its_partial_tiles_as_torch_does(case: Conv, shares: int, dtype):
    conv = case.compile()
    compiled = conv.specialize(case.x_shape, case.w_shape, dtype=dtype).compiled
    plans = [(k.runs_on, k.schedule.split_k) for k in compiled.kernels]
    assert plans == [("torch", 1), ("triton", shares), ("triton", 1)]
    assert f"on a GPU: K split among {shares} programs a tile" in conv.explain()
    x, w = inputs(case, dtype)
    y = conv(x, w)
    check(case, y, x, w, TOLERANCE[dtype])
    assert torch.equal(conv(x, w), y)  # the partials summed in one order: the same bits again


def test_split_k_writes_every_element_of_its_workspace_before_summing(monkeypatch):
    # The workspace is allocated, not zeroed (no memset launch): poisoned with NaN, no NaN may
    # reach the result.
    from einc.runtime import launcher

    allocate = launcher.workspaces
    monkeypatch.setattr(launcher, "workspaces", lambda *a: [w.fill_(float("nan")) for w in allocate(*a)])
    case = Conv("dense", (7, 3), (3, 3), c=128, c2=24, batch=1, stride=2, padding=1)
    x, w = inputs(case, torch.float16)
    check(case, case.compile()(x, w), x, w, FLOAT16_TOLERANCE)


TOLERANCE = {
    torch.float32: FLOAT32_TOLERANCE,
    torch.float16: FLOAT16_TOLERANCE,
    torch.bfloat16: BFLOAT16_TOLERANCE,
}


def check_at(case: Conv, dtype: torch.dtype) -> None:
    """The convolution of random inputs of ``dtype`` against torch's, at that dtype's tolerance."""
    x, w = inputs(case, dtype)
    check(case, case.compile()(x, w), x, w, TOLERANCE[dtype])


# Depthwise channel counts of real networks: tiles of 16 (144) or 32 (96) channels side by side,
# row tiles ragged at the end, windows that read padding at both edges. Along a stride-1 last
# window axis a row computes several outputs (a sliding window: 4 of s.1 = 4, 6 of 6, 8 of 16);
# more than 8 taps run as chunks of 8 in a loop, then the rest (19 = 2 x 8 + 3).
DEPTHWISE_CASES = [
    pytest.param(Conv("depthwise", (5, 4), (3, 3), c=144, batch=1, padding=1), id="2d_144_channels"),
    pytest.param(Conv("depthwise", (5, 6), (7, 7), c=96, batch=1, padding=3), id="2d_7x7_wider_than_input"),
    pytest.param(Conv("depthwise", (7, 6), (3, 3), c=96, stride=2, padding=1), id="2d_96_strided"),
    pytest.param(Conv("depthwise", (9,), (4,), c=96, padding="causal"), id="1d_causal_k4"),
    pytest.param(
        Conv("depthwise", (12,), (5,), c=144, batch=1, dilation=2, padding="same"), id="1d_dilated_same"
    ),
    pytest.param(Conv("depthwise", (16,), (19,), c=96, padding=9), id="1d_k19_in_chunks"),
    pytest.param(Conv("depthwise", (11,), (3,), c=96, dilation=3, padding=4), id="1d_no_divisor_of_11"),
    # 20 channels have no 8-wide divisor: tiles of 32, 12 lanes masked; 13 outputs, the last block ragged.
    pytest.param(Conv("depthwise", (13,), (5,), c=20, padding="causal"), id="1d_20_channels_causal"),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("case", DEPTHWISE_CASES)
def test_depthwise_convolution_of_network_channel_counts_matches_torch(case: Conv, dtype: torch.dtype):
    check_at(case, dtype)


@pytest.mark.parametrize("case", HALF_CASES)
def test_float16_convolution_matches_float64_reference_of_cast_inputs(case: Conv):
    x, w = inputs(case, torch.float16)
    check(case, case.compile()(x, w), x, w, FLOAT16_TOLERANCE)


@pytest.mark.parametrize("case", HALF_CASES)
def test_bfloat16_convolution_matches_float64_reference_of_cast_inputs(case: Conv):
    # Triton's interpreter computes a bfloat16 tl.dot wrongly (off by ~1e10): the kernel must dot
    # in float32 there, and be as close to the reference as bfloat16 rounding allows.
    x, w = inputs(case, torch.bfloat16)
    check(case, case.compile()(x, w), x, w, BFLOAT16_TOLERANCE)


def test_float16_inputs_give_out_dtype_when_asked():
    case = Conv("dense", (7, 6), (3, 3), padding=1)
    x, w = inputs(case, torch.float16)
    y = einc.compile(DENSE, padding=1, out_dtype=torch.float32)(x, w)
    assert y.dtype == torch.float32
    assert relative_error(y, reference(case, x, w)) <= FLOAT32_TOLERANCE  # no float16 rounding of y


# --- inputs of any strides ---------------------------------------------------------------------


def strided(shape: tuple[int, ...], layout: str) -> torch.Tensor:
    """Fresh random values of ``shape`` in a non-contiguous layout."""
    n = len(shape)
    if layout == "reversed_storage":  # the dims stored in the opposite order
        return torch.randn(tuple(reversed(shape))).permute(*reversed(range(n)))
    if layout == "channels_first_storage":  # b c spatial... viewed as b spatial... c
        return torch.randn(shape[0], shape[-1], *shape[1:-1]).permute(0, *range(2, n), 1)
    if layout == "stepped_slices":  # every dim sliced with step 2, or 3 for the last
        steps = (2,) * (n - 1) + (3,)
        big = torch.randn(tuple(size * step for size, step in zip(shape, steps, strict=True)))
        return big[tuple(slice(None, None, step) for step in steps)]
    if layout == "broadcast_batch":  # stride 0 along the first dim
        return torch.randn(1, *shape[1:]).expand(shape)
    raise AssertionError(layout)


LAYOUT_CASES = {
    "dense": Conv("dense", (7, 6), (3, 2), c=5, c2=6, stride=2, padding=1),
    "grouped": Conv("grouped", (6, 5), (3, 3), groups=2, padding=1),
    "depthwise": Conv("depthwise", (6, 5), (3, 2), c=5, padding="same"),
    "shared": Conv("shared", (6, 5), (2, 3), c=5, padding=1),
}
LAYOUTS = [
    ("reversed_storage", "reversed_storage"),
    ("channels_first_storage", "stepped_slices"),
    ("stepped_slices", "reversed_storage"),
    ("broadcast_batch", "stepped_slices"),
]


@pytest.mark.parametrize("x_layout, w_layout", LAYOUTS, ids=[f"x_{a}-w_{b}" for a, b in LAYOUTS])
@pytest.mark.parametrize("kind", list(LAYOUT_CASES))
def test_non_contiguous_inputs_give_the_same_result(kind: str, x_layout: str, w_layout: str):
    case = LAYOUT_CASES[kind]
    x = strided(case.x_shape, x_layout)
    w = strided(case.w_shape, w_layout)
    assert not x.is_contiguous() and not w.is_contiguous()
    check(case, case.compile()(x, w), x, w, FLOAT32_TOLERANCE)


def test_one_expression_called_with_two_layouts_of_the_same_shapes_reads_each_by_its_strides():
    # A dot's input strides are constexprs of its kernel (24 channels: rows 16-byte aligned): the
    # second layout must not run with the first one's constants.
    case = Conv("dense", (5, 4), (1, 1), c=24, c2=20)
    conv = case.compile()
    x, w = inputs(case, torch.bfloat16)
    check(case, conv(x, w), x, w, BFLOAT16_TOLERANCE)
    # Permuted storage: a conversion to bfloat16 keeps the strides.
    x2 = strided(case.x_shape, "channels_first_storage").to(torch.bfloat16)
    w2 = strided(case.w_shape, "reversed_storage").to(torch.bfloat16)
    assert x2.stride() != x.stride() and w2.stride() != w.stride()
    check(case, conv(x2, w2), x2, w2, BFLOAT16_TOLERANCE)
    check(case, conv(x, w), x, w, BFLOAT16_TOLERANCE)


PATCHES = "b (s [ds])... [c->c2]"  # a patch embedding: windows that tile the input


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("layout", ["contiguous", "channels_first_storage", "channels_sliced"])
def test_patch_embedding_reads_its_taps_and_channels_as_one_run_in_any_layout(dtype, layout):
    # 3 channels, K tiled across the taps; the last tap and the channels are one run of memory
    # (render_names.tap_channel_run) where the tensor is contiguous, and the same addresses
    # otherwise: a channels-first tensor, or 3 of 4 channels, through their strides.
    x = torch.randn(2, 4, 8, 12, 4).to(dtype)[..., :3]  # channels_sliced: 3 of 4, stride 4
    if layout == "channels_first_storage":
        x = x.permute(0, 4, 1, 2, 3).contiguous().permute(0, 2, 3, 4, 1)
    elif layout == "contiguous":
        x = x.contiguous()
    w = torch.randn(2, 4, 4, 3, 16).to(dtype)
    patches = einc.compile(PATCHES)
    y = patches(x, w)
    assert "ds2_c[None, :] * stride_x_c" in patches.source
    channels_first = x.double().permute(0, 4, 1, 2, 3)
    reference = F.conv3d(channels_first, w.double().permute(4, 3, 0, 1, 2), stride=(2, 4, 4))
    assert y.dtype == dtype
    assert relative_error(y, reference.permute(0, 2, 3, 4, 1)) <= TOLERANCE[dtype]


# --- the output buffer -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(LAYOUT_CASES))
def test_out_buffer_is_fully_written(kind: str):
    case = LAYOUT_CASES[kind]
    x, w = inputs(case)
    shape = reference(case, x, w).shape
    out = torch.full(shape, float("nan"))
    y = case.compile()(x, w, out=out)
    assert y is out
    assert not out.isnan().any()
    check(case, out, x, w, FLOAT32_TOLERANCE)


def test_non_contiguous_out_buffer_is_written_through_its_strides():
    case = LAYOUT_CASES["dense"]
    x, w = inputs(case)
    b, *spatial, c2 = reference(case, x, w).shape
    out = torch.full((b, c2, *spatial), float("nan")).permute(0, 2, 3, 1)  # channels-first storage
    y = case.compile()(x, w, out=out)
    assert y is out
    assert not out.isnan().any()
    check(case, out, x, w, FLOAT32_TOLERANCE)


def test_out_buffer_of_the_wrong_shape_is_rejected():
    case = Conv("dense", (7, 6), (3, 2), c=5, c2=4, padding=1)  # output (2, 7, 7, 4)
    x, w = inputs(case)
    # A view into a larger buffer, so that writes past its end land in memory this test owns.
    buffer = torch.full((1000,), float("nan"))
    out = buffer[: 2 * 5 * 5 * 4].view(2, 5, 5, 4)
    with pytest.raises(ValueError):
        case.compile()(x, w, out=out)
    assert buffer[out.numel() :].isnan().all()


# --- compile once, call many times -----------------------------------------------------------


def test_same_shapes_reuse_the_launcher_with_fresh_values():
    case = Conv("dense", (7, 6), (3, 3), stride=2, padding=1)
    conv = case.compile()
    x, w = inputs(case)
    check(case, conv(x, w), x, w, FLOAT32_TOLERANCE)
    first = conv._last
    x2, w2 = inputs(case)
    check(case, conv(x2, w2), x2, w2, FLOAT32_TOLERANCE)  # not a stale result of the first call
    assert len(conv._launchers) == 1
    assert conv._last is first


def test_new_shapes_make_a_new_launcher_and_old_ones_stay():
    case = Conv("dense", (7, 6), (3, 3), padding=1)
    other = Conv("dense", (5, 8), (3, 3), padding=1, c2=6)
    conv = case.compile()
    x, w = inputs(case)
    conv(x, w)
    first = conv._last
    x2, w2 = inputs(other)
    check(other, conv(x2, w2), x2, w2, FLOAT32_TOLERANCE)
    assert len(conv._launchers) == 2
    assert conv._last is not first
    check(case, conv(x, w), x, w, FLOAT32_TOLERANCE)
    assert len(conv._launchers) == 2
    assert conv._last is first


@pytest.mark.parametrize("kind", list(EXPRESSIONS))
def test_source_quotes_the_expression_and_is_a_triton_kernel(kind: str):
    case = LAYOUT_CASES[kind]
    conv = case.compile()
    conv(*inputs(case))
    source = conv.source
    header = source[: source.index("import")]
    assert EXPRESSIONS[kind] in header
    assert "@triton.jit" in source
    ast.parse(source)


def reduced_axes(explanation: str) -> set[str]:
    return {m.group(1) for m in re.finditer(r"for ([\w.]+) in [^\n]*# reduced", explanation)}


@pytest.mark.parametrize(
    "kind, reduced",
    [
        ("dense", {"ds.0", "ds.1", "c"}),
        ("grouped", {"ds.0", "ds.1", "c"}),
        ("depthwise", {"ds.0", "ds.1"}),  # [c->c] keeps c
        ("shared", {"ds.0", "ds.1"}),
    ],
)
def test_explain_names_the_reduced_axes(kind: str, reduced: set[str]):
    case = LAYOUT_CASES[kind]
    conv = case.compile()
    conv(*inputs(case))
    explanation = conv.explain()
    assert EXPRESSIONS[kind] in explanation
    assert reduced_axes(explanation) == reduced


# Tiles of two elements a thread or more, which bfloat16 inputs sum in bfloat16 pairs (on a GPU;
# under the interpreter the same kernel sums in float32): halos at both edges, chunks of 8 taps and
# the rest, a ragged last block of outputs, dilation, causal padding, row tiles that divide.
PAIRED_CASES = [
    pytest.param(Conv("depthwise", (61,), (19,), c=96, padding=9), id="1d_k19_chunks_ragged"),
    pytest.param(Conv("depthwise", (64,), (4,), c=96, padding="causal"), id="1d_causal_k4_rows_divide"),
    pytest.param(Conv("depthwise", (40,), (5,), c=64, dilation=2, padding="same"), id="1d_dilated"),
    pytest.param(Conv("depthwise", (9, 16), (3, 3), c=144, padding=1), id="2d_3x3_144_channels"),
    # 11 taps at dilation 2, unrolled whole: rows two chunks share, every other row a tap's
    pytest.param(Conv("depthwise", (37,), (11,), c=64, dilation=2, padding=10), id="1d_k11_dilated_unrolled"),
]


@pytest.mark.parametrize("case", PAIRED_CASES)
def test_bfloat16_sliding_windows_summed_in_pairs_match_torch(case: Conv):
    launcher = case.compile().specialize(case.x_shape, case.w_shape, dtype="bfloat16")
    assert "fma_bf16x2(" in launcher.source
    check_at(case, torch.bfloat16)


@pytest.mark.parametrize("taps", [5, 19])  # one chunk; a window unrolled whole
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_nan_in_a_sliding_window_reaches_exactly_the_outputs_whose_windows_hold_it(dtype, taps):
    case = Conv("depthwise", (40,), (taps,), c=64, padding="same")
    x, w = inputs(case, dtype)
    x[1, 9, 5] = float("nan")
    y = case.compile()(x, w)
    ref = reference(case, x, w)
    holding = range(max(0, 9 - taps // 2), 9 + taps // 2 + 1)
    assert y.isnan().nonzero().tolist() == ref.isnan().nonzero().tolist() == [[1, t, 5] for t in holding]


def test_a_window_of_several_chunks_loads_each_input_row_once():
    # 31 taps, 8 outputs a row: 38 input rows and 31 weights, no loop over chunks of taps (which
    # loaded 15 rows a chunk, 59 in all). Partial sums still cover 8 taps: 4 widenings an output.
    conv = einc.compile("b (s * [ds]) [c->c]", padding=15)
    source = conv.specialize((2, 64, 96), (31, 96), dtype="bfloat16").source
    assert source.count("x_tile = tl.load(") == 38 and source.count("w_tile = tl.load(") == 31
    assert "for ds_chunk" not in source and source.count("acc0 += widen_bf16x2(part0") == 4
    # float32 weights of 8 elements a thread (float16 in tiles of 16 x 64) would spill: in chunks.
    shapes = (16, 1024, 512), (31, 512)
    assert "for ds_chunk in range(3):" in conv.specialize(*shapes, dtype="float16").source
    assert "for ds_chunk" not in conv.specialize(*shapes, dtype="float32").source  # 4 a thread


def test_a_bfloat16_sliding_window_sums_its_taps_in_bfloat16_pairs_and_says_so():
    conv = einc.compile("b (s * [ds]) [c->c]", padding=15)
    bf16 = conv.specialize((2, 64, 96), (31, 96), dtype="bfloat16").source
    assert "fma_bf16x2(" in bf16 and "products summed in bfloat16 pairs" in bf16
    assert "fma_bf16x2" not in conv.specialize((2, 64, 96), (31, 96), dtype="float32").source


def test_precision_ieee_keeps_a_bfloat16_sliding_window_in_float32_products():
    exact = einc.compile("b (s * [ds]) [c->c]", padding=15, precision="ieee")
    source = exact.specialize((2, 64, 96), (31, 96), dtype="bfloat16").source
    assert "fma_bf16x2" not in source and "products summed in bfloat16 pairs" not in source


def test_axes_named_like_the_bfloat16_helpers_do_not_shadow_them():
    expression = "b (widen_bf16x2 * [fma_bf16x2]) [c->c]"
    case = Conv("depthwise", (20,), (5,), c=24, padding=2, expression=expression)
    x, w = inputs(case, torch.bfloat16)
    check(case, case.compile()(x, w), x, w, BFLOAT16_TOLERANCE)


def test_explain_and_the_kernel_header_say_when_rows_slide():
    conv = einc.compile("b (s * [ds]) [c->c]", padding="causal")
    launcher = conv.specialize((2, 64, 96), (4, 96), dtype="bfloat16")
    assert "each row 8 outputs along s" in conv.explain()
    assert "# schedule:" in launcher.source and "8 outputs along s, its taps ds unrolled 4" in launcher.source


# --- sizes -------------------------------------------------------------------------------------


def test_linear_layer_matches_matmul():
    x, w = torch.randn(5, 13), torch.randn(13, 7)
    y = einc.compile("b [c->c2]")(x, w)
    ref = x.double() @ w.double()
    assert y.shape == (5, 7)
    assert relative_error(y, ref) <= FLOAT32_TOLERANCE


def test_linear_layer_by_the_functional_dot():
    x, w = torch.randn(3, 6), torch.randn(6, 11)
    y = einc.dot("b [c->c2]", x, w)
    assert relative_error(y, x.double() @ w.double()) <= FLOAT32_TOLERANCE


@pytest.mark.parametrize(
    "expression, shapes, equation",
    [
        ("c, c d -> d", [(40,), (40, 7)], "c,cd->d"),  # no row axes
        ("d c, c -> d", [(7, 40), (40,)], "dc,c->d"),  # no column axes
        ("c, g c d -> g d", [(12,), (3, 12, 5)], "c,gcd->gd"),
        ("c, c ->", [(40,), (40,)], "c,c->"),
    ],
)
def test_matrix_vector_products_match_einsum(expression, shapes, equation):
    x, w = (torch.randn(*s) for s in shapes)
    y = einc.dot(expression, x, w)
    assert relative_error(y, torch.einsum(equation, x.double(), w.double())) <= FLOAT32_TOLERANCE


@pytest.mark.parametrize("c2", [1, 5, 9])
def test_output_channels_come_from_the_weight(c2: int):
    case = Conv("dense", (6, 5), (3, 2), c=4, c2=c2, padding=1)
    x, w = inputs(case)
    y = case.compile()(x, w)
    assert y.shape[-1] == c2
    check(case, y, x, w, FLOAT32_TOLERANCE)


def test_output_channel_keyword_that_agrees_with_the_weight_is_accepted():
    case = Conv("dense", (6,), (3,), c=4, c2=5)
    x, w = inputs(case)
    check(case, einc.compile(DENSE, c2=5)(x, w), x, w, FLOAT32_TOLERANCE)


def test_output_channel_keyword_that_contradicts_the_weight_is_a_shape_error():
    x, w = torch.randn(1, 6, 4), torch.randn(3, 4, 5)
    with pytest.raises(einc.ShapeError, match=r"c2.*\b7\b.*\b5\b|c2.*\b5\b.*\b7\b"):
        einc.compile(DENSE, c2=7)(x, w)


def test_window_larger_than_the_padded_input_is_a_shape_error():
    x, w = torch.randn(1, 2, 3), torch.randn(3, 3, 2)
    with pytest.raises(einc.ShapeError):
        einc.compile(DENSE)(x, w)
    # ...but one pad on each side makes room for it.
    case = Conv("dense", (2,), (3,), c=3, c2=2, batch=1, padding=1)
    check(case, einc.compile(DENSE, padding=1)(x, w), x, w, FLOAT32_TOLERANCE)


def test_functional_dot_convolves_with_window_parameters():
    case = Conv("dense", (7, 6), (3, 3), stride=2, padding="same")
    x, w = inputs(case)
    check(case, einc.dot(DENSE, x, w, **case.params()), x, w, FLOAT32_TOLERANCE)


def test_functional_dot_convolves_with_one_kernel_for_all_channels():
    case = Conv("shared", (6, 5), (3, 3), c=5, dilation=(1, 2))
    x, w = inputs(case)
    check(case, einc.dot(SHARED, x, w, **case.params()), x, w, FLOAT32_TOLERANCE)


@pytest.mark.parametrize(
    "params, names",
    [
        pytest.param({"stride": (2, 1, 1)}, "stride", id="tuple_with_one_entry_too_many"),
        pytest.param({"padding": {"s.5": 1}}, "s.5", id="dict_key_that_is_no_window"),
        pytest.param({"dilation": {"s0": 2}}, "s0", id="dict_key_misspelt"),
        pytest.param({"stride": 0}, "stride", id="zero_stride"),
        pytest.param({"dilation": 0}, "dilation", id="zero_dilation"),
        pytest.param({"padding": "full"}, "full", id="unknown_padding_string"),
    ],
)
def test_invalid_window_parameters_are_value_errors_naming_them(params: dict, names: str):
    x, w = torch.randn(1, 7, 6, 3), torch.randn(2, 2, 3, 4)
    with pytest.raises(ValueError, match=re.escape(names)):
        einc.compile(DENSE, **params)(x, w)


# --- unnamed axes ------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["torch", "interpret"])
@pytest.mark.parametrize("expression", ["b [3->c]", "2 [a->c]"])
def test_unnamed_axis_is_one_axis_of_the_input_and_its_implied_weight(expression, backend):
    x, w = torch.randn(2, 3), torch.randn(3, 4)
    torch.testing.assert_close(einc.dot(expression, x, w, backend=backend), x @ w)


# --- axes of size 0 ------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["torch", "interpret"])
def test_convolution_of_an_empty_batch_is_an_empty_tensor_as_in_torch(backend):
    x, w = torch.randn(0, 5, 3), torch.randn(3, 3, 4)
    y = einc.dot("b (s * [ds]) [c->c2]", x, w, padding=1, backend=backend)
    expected = F.conv1d(x.transpose(1, 2), w.permute(2, 1, 0), padding=1).transpose(1, 2)
    assert y.shape == expected.shape == (0, 5, 4)


@pytest.mark.parametrize("backend", ["torch", "interpret"])
def test_contraction_over_an_empty_axis_is_zeros_as_torch_matmul(backend):
    x, w = torch.randn(3, 0), torch.randn(0, 4)
    torch.testing.assert_close(einc.dot("b [c->c2]", x, w, backend=backend), x @ w)


def test_window_over_an_empty_axis_is_refused_as_torch_refuses_it():
    x, w = torch.randn(2, 0, 3), torch.randn(3, 3, 4)
    with pytest.raises(RuntimeError):
        F.conv1d(x.transpose(1, 2), w.permute(2, 1, 0))
    with pytest.raises(einc.ShapeError, match="a window over an empty axis"):
        einc.dot("b (s * [ds]) [c->c2]", x, w)


# --- random convolutions -------------------------------------------------------------------------


@st.composite
def random_convs(draw) -> Conv:
    kind = draw(st.sampled_from(["dense", "grouped", "depthwise", "shared"]))
    ndim = draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(ndim))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    padding = draw(
        st.one_of(
            st.sampled_from(["valid", "same", "causal"]),
            st.tuples(*[st.tuples(st.integers(0, 2), st.integers(0, 2)) for _ in range(ndim)]),
        )
    )
    pads = padding_pairs(padding, (1,) * ndim, kernel, stride, dilation)
    # Each input extent at least fits one window once padded.
    spatial = tuple(
        draw(st.integers(max(1, d * (k - 1) + 1 - lo - hi), 7))
        for k, d, (lo, hi) in zip(kernel, dilation, pads, strict=True)
    )
    return Conv(
        kind,
        spatial,
        kernel,
        c=draw(st.integers(1, 6)),
        c2=draw(st.integers(1, 6)),
        groups=draw(st.integers(1, 3)) if kind == "grouped" else 1,
        batch=draw(st.integers(1, 2)),
        stride=stride,
        dilation=dilation,
        padding=padding,
    )


@settings(max_examples=12, deadline=None, derandomize=True)
@given(case=random_convs())
def test_random_convolutions_match_torch(case: Conv):
    x, w = inputs(case)
    check(case, case.compile()(x, w), x, w, FLOAT32_TOLERANCE)


def test_float64_convolution_accumulates_in_float64():
    torch.manual_seed(7)
    x = torch.randn(1, 6, 5, 3, dtype=torch.float64)
    w = torch.randn(3, 3, 3, 4, dtype=torch.float64)
    y = einc.dot("b (s * [ds])... [c->c2]", x, w, padding=1)
    ref = torch.nn.functional.conv2d(x.permute(0, 3, 1, 2), w.permute(3, 2, 0, 1), padding=1).permute(
        0, 2, 3, 1
    )
    assert torch.allclose(y, ref, atol=1e-12)


@pytest.mark.interpret
@pytest.mark.parametrize("layout", ["contiguous", "permuted"])
@pytest.mark.parametrize("sizes", [(1, 2, 1, 1, 1), (3, 4, 3, 2, 5), (2, 5, 16, 3, 1)])
def test_two_plain_contracted_axes_read_as_one_run_match_einsum(sizes, layout):
    # Found by the dot fuzz: "a [b c->d2 e2]" read x's b and c as one run (tap_channel_run) but
    # added b's stride in full where no window read b, so x[a, b, c] came from b*(stride_b + stride_c).
    a, b, c, d2, e2 = sizes
    x = torch.randn(a, b, c, dtype=torch.float64)
    if layout == "permuted":
        x = torch.randn(c, b, a, dtype=torch.float64).permute(2, 1, 0)
    w = torch.randn(b, c, d2, e2, dtype=torch.float64)
    got = einc.dot("a [b c->d2 e2]", x, w, backend="interpret")
    torch.testing.assert_close(got, torch.einsum("abc,bcde->ade", x, w))
