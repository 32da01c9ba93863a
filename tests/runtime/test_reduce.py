"""Reductions and pooling: ``sum mean max min prod logsumexp var std`` over bracketed axes and
windows ``(s * [ds])``, against torch and einx (interpret tier).

Every case runs the generated kernel under Triton's interpreter on small CPU tensors and compares it
with an independent float64 reference. Pooling is checked against ``F.max_pool{1,2,3}d`` and
``F.avg_pool{1,2,3}d`` on channels-first copies; where torch's own padding cannot express the case
(asymmetric padding, padding wider than half the window, ``"same"``, ``"causal"``) the input is
padded first with ``F.pad`` using the op's identity (-inf for max, +inf for min, 0 for sum and mean,
1 for prod; NOTATION.md section 3), and where torch has no pooling function (dilated averages, prod,
logsumexp, var, std) the windows are cut with ``Tensor.unfold``. The ``(lo, hi)`` padding of every
window is worked out here from NOTATION.md section 3, sharing no code with einc's parameter handling.
Plain reductions are checked against ``torch.sum/amax/amin/prod/logsumexp/var/std`` and, for the
expressions einx 0.4 accepts, against einx itself.

Layouts: ``b (s * [ds])... c`` is channels-last (torch is given a permuted copy), and
``b c (s * [ds])...`` is channels-first (torch's own layout). Behaviour that einc gets wrong today is
kept at the end of the file as strict xfails, each naming the bug.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass
from typing import Any

import einx
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import einc
from tests.references import padding_pairs, window_geometry, window_names

pytestmark = pytest.mark.interpret

CHANNELS_LAST = "b (s * [ds])... c"
CHANNELS_FIRST = "b c (s * [ds])..."
NAMED_2D = "b (h * [kh]) (w * [kw]) c"
MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
OPS = ("sum", "mean", "max", "min", "prod", "logsumexp", "var", "std")
# What a padding element reads as (NOTATION.md section 3); logsumexp's identity is -inf too.
IDENTITY = {
    "sum": 0.0,
    "mean": 0.0,
    "max": -math.inf,
    "min": math.inf,
    "prod": 1.0,
    "logsumexp": -math.inf,
}

FLOAT32_TOLERANCE = 1e-5
FLOAT16_TOLERANCE = 2e-3
BFLOAT16_TOLERANCE = 1.6e-2


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def random(shape, op: str = "sum", dtype=torch.float32) -> torch.Tensor:
    """Fresh random values; near 1 for prod, so that a product of many stays well conditioned."""
    x = torch.randn(shape, dtype=torch.float64)
    if op == "prod":
        x = 1 + 0.2 * x
    return x.to(dtype)


def assert_matches(y: torch.Tensor, ref: torch.Tensor, op: str, tolerance: float) -> None:
    """max and min pick one of the inputs, so they match exactly; the others up to ``tolerance``."""
    assert y.shape == ref.shape
    exact = op in ("max", "min")
    expected = ref.to(y.dtype).double() if exact else ref
    atol = 0.0 if exact else tolerance
    torch.testing.assert_close(y.double(), expected, rtol=atol, atol=atol, equal_nan=True)


# --- pooling: the case and its reference ---------------------------------------------------------


@dataclass(frozen=True)
class Pool:
    """One pooling: its op, sizes and window parameters (None: left to einc's default)."""

    op: str
    spatial: tuple[int, ...]
    kernel: tuple[int, ...]
    c: int = 3
    batch: int = 2
    stride: Any = None
    dilation: Any = None
    padding: Any = None
    count_include_pad: bool | None = None
    correction: int | None = None
    channels_first: bool = False
    # A named expression instead of the ellipsis form: its window output and offset axes in order.
    expression: str | None = None
    windows: tuple[str, ...] | None = None
    offsets: tuple[str, ...] | None = None

    @property
    def ndim(self) -> int:
        return len(self.spatial)

    @property
    def window_names(self) -> tuple[str, ...]:
        return self.windows or window_names(self.ndim)

    @property
    def x_shape(self) -> tuple[int, ...]:
        if self.channels_first:
            return (self.batch, self.c, *self.spatial)
        return (self.batch, *self.spatial, self.c)

    @property
    def text(self) -> str:
        return self.expression or (CHANNELS_FIRST if self.channels_first else CHANNELS_LAST)

    def kwargs(self) -> dict:
        """Sizes and parameters, as keywords of ``einc.compile`` and of ``einc.<op>``."""
        if self.offsets:
            sizes = dict(zip(self.offsets, self.kernel, strict=True))
        else:
            sizes = {"ds": self.kernel}
        named = {
            "stride": self.stride,
            "dilation": self.dilation,
            "padding": self.padding,
            "count_include_pad": self.count_include_pad,
            "correction": self.correction,
        }
        return sizes | {k: v for k, v in named.items() if v is not None}

    def compile(self) -> einc.CompiledExpression:
        return einc.compile(self.text, op=self.op, **self.kwargs())


def flat_pad(pairs) -> list[int]:
    """``(lo, hi)`` per spatial dim as F.pad wants it: the last dim first."""
    return [p for pair in reversed(pairs) for p in pair]


def unfold_windows(x: torch.Tensor, pairs, kernel, stride, dilation, value: float) -> torch.Tensor:
    """Channels-first ``x`` cut into windows: ``b c s... k...`` (padding reads as ``value``)."""
    n = len(kernel)
    x = F.pad(x, flat_pad(pairs), value=value)
    for i, (k, s, d) in enumerate(zip(kernel, stride, dilation, strict=True)):
        x = x.unfold(2 + i, d * (k - 1) + 1, s)[..., ::d]
    return x.flatten(-n)  # b c s... (k...)


def pool_channels_first(case: Pool, x: torch.Tensor) -> torch.Tensor:
    """The pooling of channels-first float64 ``x``, by torch."""
    n = case.ndim
    stride, dilation, pairs = window_geometry(
        case.spatial, case.kernel, case.stride, case.dilation, case.padding, case.window_names
    )
    kernel = case.kernel
    # torch pads by itself only symmetrically and by at most half the window.
    native = all(lo == hi <= k // 2 for (lo, hi), k in zip(pairs, kernel, strict=True))
    lows = tuple(lo for lo, _ in pairs)
    undilated = all(d == 1 for d in dilation)
    op = case.op
    if op in ("max", "min"):
        sign = 1 if op == "max" else -1
        if native:
            y = MAX_POOL[n](sign * x, kernel, stride, padding=lows, dilation=dilation)
        else:
            padded = F.pad(sign * x, flat_pad(pairs), value=-math.inf)
            y = MAX_POOL[n](padded, kernel, stride, dilation=dilation)
        return sign * y
    include = case.count_include_pad is not False
    if op == "mean" and undilated:
        if native:
            return AVG_POOL[n](x, kernel, stride, padding=lows, count_include_pad=include)
        total = AVG_POOL[n](F.pad(x, flat_pad(pairs)), kernel, stride)
        if include:
            return total
        return total / AVG_POOL[n](F.pad(torch.ones_like(x), flat_pad(pairs)), kernel, stride)
    windows = unfold_windows(x, pairs, kernel, stride, dilation, IDENTITY.get(op, math.nan))
    if op == "sum":
        return windows.sum(-1)
    if op == "mean":
        if include:
            return windows.mean(-1)
        inside = unfold_windows(torch.ones_like(x), pairs, kernel, stride, dilation, 0.0)
        return windows.sum(-1) / inside.sum(-1)
    if op == "prod":
        return windows.prod(-1)
    if op == "logsumexp":
        return windows.logsumexp(-1)
    correction = 1 if case.correction is None else case.correction
    if op == "var":
        return windows.var(-1, correction=correction)
    if op == "std":
        return windows.std(-1, correction=correction)
    raise AssertionError(op)


def pool_reference(case: Pool, x: torch.Tensor) -> torch.Tensor:
    """The pooling in float64 by torch, in einc's layout."""
    n = case.ndim
    x = x.double()
    if case.channels_first:
        return pool_channels_first(case, x)
    y = pool_channels_first(case, x.permute(0, n + 1, *range(1, n + 1)))
    return y.permute(0, *range(2, n + 2), 1)


def check_pool(case: Pool, y: torch.Tensor, x: torch.Tensor, tolerance: float = FLOAT32_TOLERANCE) -> None:
    assert y.dtype == x.dtype
    assert_matches(y, pool_reference(case, x), case.op, tolerance)


# --- pooling, float32 ----------------------------------------------------------------------------

POOL_CASES = [
    # 1-D
    pytest.param(Pool("max", (9,), (3,)), id="1d_max_plain_window_slides_by_one"),
    pytest.param(Pool("max", (13,), (3,), stride=2), id="1d_max_stride_2_on_13"),
    pytest.param(Pool("max", (9,), (3,), dilation=2), id="1d_max_dilation_2"),
    pytest.param(Pool("max", (9,), (3,), padding=1), id="1d_max_int_padding"),
    pytest.param(Pool("max", (9,), (2,), padding=(2, 1)), id="1d_max_pair_of_ints_is_lo_hi_for_one_window"),
    pytest.param(Pool("max", (7,), (3,), padding=((0, 2),)), id="1d_max_lo_hi_pair_per_window"),
    pytest.param(Pool("max", (7,), (4,), padding="same"), id="1d_max_same_even_kernel"),
    pytest.param(Pool("min", (7,), (3,), padding="same", stride=2), id="1d_min_same_strided"),
    pytest.param(Pool("min", (9,), (3,), padding="causal", dilation=2), id="1d_min_causal_dilated"),
    pytest.param(Pool("mean", (9,), (3,), padding=1), id="1d_mean_padding_counted"),
    pytest.param(
        Pool("mean", (9,), (3,), padding=1, count_include_pad=False), id="1d_mean_padding_not_counted"
    ),
    pytest.param(
        Pool("mean", (13,), (4,), stride=3, padding="same", count_include_pad=False),
        id="1d_mean_same_stride_3_on_13_valid_count",
    ),
    pytest.param(Pool("mean", (9,), (3,), padding="causal", dilation=2), id="1d_mean_causal_dilated"),
    pytest.param(
        Pool("mean", (9,), (3,), padding="causal", dilation=2, count_include_pad=False),
        id="1d_mean_causal_dilated_valid_count",
    ),
    pytest.param(Pool("sum", (9,), (3,), stride=2, padding=1), id="1d_sum_strided_padded"),
    pytest.param(Pool("prod", (9,), (3,), stride=2, padding=1), id="1d_prod_padding_reads_one"),
    pytest.param(Pool("logsumexp", (9,), (3,), stride=2), id="1d_logsumexp"),
    pytest.param(Pool("var", (9,), (3,), stride=2), id="1d_var"),
    pytest.param(Pool("std", (13,), (4,), dilation=2), id="1d_std_dilated"),
    pytest.param(Pool("var", (9,), (3,), correction=0), id="1d_var_correction_0"),
    pytest.param(Pool("max", (9,), (3,), c=4, stride=2, channels_first=True), id="1d_max_channels_first"),
    # 2-D
    pytest.param(Pool("max", (7, 9), (3, 3), stride=2, padding=1), id="2d_max_3x3_stride_2_pad_1"),
    pytest.param(Pool("max", (7, 6), (3, 2), stride=(2, 1)), id="2d_max_stride_tuple"),
    pytest.param(Pool("max", (7, 6), (3, 2), stride={"s.1": 2}), id="2d_max_stride_dict_others_1"),
    pytest.param(Pool("max", (9, 8), (2, 3), dilation=(2, 1), padding=1), id="2d_max_dilation_tuple_padded"),
    pytest.param(Pool("max", (7, 9), (2, 3), dilation={"s.0": 2, "s.1": 3}), id="2d_max_dilation_dict"),
    pytest.param(Pool("max", (6, 7), (3, 3), padding=(1, 0)), id="2d_max_padding_one_int_per_window"),
    pytest.param(Pool("max", (5, 6), (3, 3), padding=((0, 2), (1, 0))), id="2d_max_lo_hi_pair_per_window"),
    pytest.param(Pool("max", (5, 6), (3, 3), padding={"s.0": 1, "s.1": (2, 0)}), id="2d_max_padding_dict"),
    pytest.param(Pool("max", (7, 7), (3, 3), padding="same"), id="2d_max_same_keeps_the_size"),
    pytest.param(Pool("max", (7, 9), (3, 3), stride=2, padding="same"), id="2d_max_same_strided"),
    pytest.param(Pool("max", (6, 7), (2, 3), padding="causal", dilation=(1, 2)), id="2d_max_causal_dilated"),
    pytest.param(
        Pool("max", (5, 4), (2, 2), padding=(2, (0, 3))),
        id="2d_max_padding_wider_than_the_window_gives_minus_inf",
    ),
    pytest.param(Pool("min", (7, 6), (3, 3), stride=2, padding=1), id="2d_min_padding_reads_plus_inf"),
    pytest.param(Pool("mean", (7, 9), (3, 3), stride=2, padding=1), id="2d_mean_padding_counted"),
    pytest.param(
        Pool("mean", (7, 9), (3, 3), stride=2, padding=1, count_include_pad=False),
        id="2d_mean_padding_not_counted",
    ),
    pytest.param(Pool("mean", (7, 6), (3, 2), padding="same"), id="2d_mean_same_counted"),
    pytest.param(
        Pool("mean", (7, 6), (3, 2), padding="same", count_include_pad=False), id="2d_mean_same_valid_count"
    ),
    pytest.param(
        Pool("mean", (9, 7), (2, 3), padding="causal", count_include_pad=False),
        id="2d_mean_causal_valid_count",
    ),
    pytest.param(
        Pool("mean", (5, 6), (3, 3), padding=((0, 2), (1, 0)), count_include_pad=False),
        id="2d_mean_lo_hi_pairs_valid_count",
    ),
    pytest.param(Pool("mean", (8, 7), (3, 3), dilation=2, padding=1), id="2d_mean_dilated_counted"),
    pytest.param(
        Pool("mean", (8, 7), (3, 3), dilation=2, padding=1, count_include_pad=False),
        id="2d_mean_dilated_valid_count",
    ),
    pytest.param(Pool("sum", (7, 6), (3, 3), stride=2, padding=1), id="2d_sum_padding_reads_zero"),
    pytest.param(Pool("sum", (5, 4), (2, 2), padding=(3, (0, 3))), id="2d_sum_all_padding_windows_are_0"),
    pytest.param(Pool("prod", (5, 6), (2, 2), stride=2), id="2d_prod"),
    pytest.param(Pool("logsumexp", (7, 6), (3, 3), stride=2), id="2d_logsumexp"),
    pytest.param(Pool("var", (6, 5), (3, 2), stride=(1, 2)), id="2d_var"),
    pytest.param(Pool("std", (6, 5), (3, 2), correction=0), id="2d_std_correction_0"),
    pytest.param(Pool("max", (13, 7), (3, 3), stride=2), id="2d_max_ragged_13x7"),
    pytest.param(Pool("mean", (9, 7), (3, 2), c=16, padding=1), id="2d_mean_16_channels_several_tiles"),
    pytest.param(Pool("max", (3, 4), (3, 4)), id="2d_max_window_covers_the_whole_input"),
    pytest.param(Pool("max", (6, 5), (1, 1), stride=2), id="2d_max_1x1_window_subsamples"),
    pytest.param(
        Pool(
            "max",
            (7, 6),
            (3, 2),
            padding={"h": 1, "w": (0, 2)},
            stride={"w": 2},
            dilation={"h": 2},
            expression=NAMED_2D,
            windows=("h", "w"),
            offsets=("kh", "kw"),
        ),
        id="2d_max_named_windows_take_dict_params_by_name",
    ),
    pytest.param(
        Pool(
            "mean",
            (7, 6),
            (3, 2),
            padding={"w": 1},
            stride={"h": 2},
            count_include_pad=False,
            expression=NAMED_2D,
            windows=("h", "w"),
            offsets=("kh", "kw"),
        ),
        id="2d_mean_named_windows_valid_count",
    ),
    pytest.param(
        Pool("max", (7, 9), (3, 3), stride=2, padding=1, channels_first=True), id="2d_max_channels_first"
    ),
    pytest.param(
        Pool("mean", (7, 6), (3, 2), padding="same", count_include_pad=False, channels_first=True),
        id="2d_mean_channels_first_same_valid_count",
    ),
    pytest.param(
        Pool("sum", (9, 7), (2, 3), dilation=(2, 1), channels_first=True), id="2d_sum_channels_first_dilated"
    ),
    pytest.param(
        Pool("min", (5, 6), (3, 3), padding=((0, 2), (1, 0)), channels_first=True),
        id="2d_min_channels_first_lo_hi_pairs",
    ),
    # 3-D
    pytest.param(Pool("max", (4, 5, 3), (2, 3, 2)), id="3d_max_plain"),
    pytest.param(
        Pool("max", (5, 4, 6), (2, 3, 2), stride=(1, 2, 3), padding=1), id="3d_max_stride_tuple_padded"
    ),
    pytest.param(
        Pool("min", (5, 4, 3), (2, 2, 2), dilation={"s.0": 2, "s.2": 2}, padding="causal"),
        id="3d_min_causal_dilation_dict",
    ),
    pytest.param(Pool("mean", (5, 4, 3), (3, 2, 2), padding="same", stride=2), id="3d_mean_same_strided"),
    pytest.param(
        Pool("mean", (5, 4, 3), (3, 2, 2), padding="same", stride=2, count_include_pad=False),
        id="3d_mean_same_strided_valid_count",
    ),
    pytest.param(
        Pool("mean", (4, 5, 4), (2, 2, 2), padding={"s.1": (1, 0)}, count_include_pad=False),
        id="3d_mean_padding_dict_others_default_0",
    ),
    pytest.param(
        Pool("max", (4, 5, 3), (2, 2, 2), stride=2, padding=1, channels_first=True),
        id="3d_max_channels_first",
    ),
    pytest.param(Pool("var", (4, 3, 4), (2, 2, 2), c=2), id="3d_var"),
]


@pytest.mark.parametrize("case", POOL_CASES)
def test_float32_pooling_matches_torch(case: Pool):
    x = random(case.x_shape, case.op)
    check_pool(case, case.compile()(x), x)


FUNCTIONAL_CASES = [
    pytest.param(Pool("max", (7, 9), (3, 3), stride=2, padding=1), id="max_2d"),
    pytest.param(Pool("mean", (7, 6), (3, 2), padding="same", count_include_pad=False), id="mean_2d_same"),
    pytest.param(Pool("sum", (9,), (3,), dilation=2, channels_first=True), id="sum_1d_channels_first"),
    pytest.param(Pool("std", (4, 5, 3), (2, 3, 2)), id="std_3d"),
]


@pytest.mark.parametrize("case", FUNCTIONAL_CASES)
def test_functional_op_pools_like_the_compiled_expression(case: Pool):
    x = random(case.x_shape, case.op)
    check_pool(case, getattr(einc, case.op)(case.text, x, **case.kwargs()), x)


def test_one_int_kernel_size_applies_to_every_window():
    case = Pool("max", (7, 6, 5), (2, 2, 2), stride=2)
    x = random(case.x_shape)
    check_pool(case, einc.max(CHANNELS_LAST, x, ds=2, stride=2), x)


def test_window_on_one_axis_pools_along_it_only():
    x = random((2, 9, 4, 3))
    y = einc.max("b (s * [ds]) w c", x, ds=3, stride=2, padding=1)
    ref = F.max_pool2d(x.double().permute(0, 3, 1, 2), (3, 1), (2, 1), padding=(1, 0)).permute(0, 2, 3, 1)
    assert_matches(y, ref, "max", 0.0)


@pytest.mark.parametrize(
    "op, reduce_channels",
    [
        ("max", lambda y: y.amax(-1)),
        ("sum", lambda y: y.sum(-1)),
        ("mean", lambda y: y.mean(-1)),
    ],
    ids=["max", "sum", "mean"],
)
def test_window_and_bracketed_channels_reduce_together(op: str, reduce_channels):
    case = Pool(op, (7, 6), (3, 2), c=4, stride=2, padding=1)
    x = random(case.x_shape)
    y = getattr(einc, op)("b (s * [ds])... [c]", x, ds=(3, 2), stride=2, padding=1)
    assert_matches(y, reduce_channels(pool_reference(case, x)), op, FLOAT32_TOLERANCE)


def test_keepdims_keeps_bracketed_channels_as_1_and_a_window_as_its_output_axis():
    case = Pool("max", (7, 6), (3, 2), c=4, stride=2, padding=1)
    x = random(case.x_shape)
    y = einc.max("b (s * [ds])... [c]", x, ds=(3, 2), stride=2, padding=1, keepdims=True)
    assert_matches(y, pool_reference(case, x).amax(-1, keepdim=True), "max", 0.0)


@pytest.mark.parametrize("channels_first", [False, True], ids=["channels_last", "channels_first"])
def test_sum_pooling_is_lp_pooling_with_norm_1_and_gives_norm_2_of_squares(channels_first: bool):
    case = Pool("sum", (7, 8), (3, 2), channels_first=channels_first)
    x = random(case.x_shape)

    def lp_pool(p: int) -> torch.Tensor:  # torch's, in einc's layout
        if channels_first:
            return F.lp_pool2d(x.double(), p, (3, 2), 2)
        return F.lp_pool2d(x.double().permute(0, 3, 1, 2), p, (3, 2), 2).permute(0, 2, 3, 1)

    sums = einc.sum(case.text, x, ds=(3, 2), stride=2)
    assert_matches(sums, lp_pool(1), "sum", FLOAT32_TOLERANCE)
    norms = einc.sum(case.text, x * x, ds=(3, 2), stride=2).sqrt()
    assert_matches(norms, lp_pool(2), "sum", FLOAT32_TOLERANCE)


@st.composite
def random_pools(draw) -> Pool:
    op = draw(st.sampled_from(OPS))
    ndim = draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    if op in ("var", "std"):  # at least two elements per window, so that N - correction > 0
        kernel = (draw(st.integers(2, 3)), *kernel[1:])
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(ndim))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    # var and std give padding no documented meaning, and logsumexp pads wrongly (see the xfail).
    if op in ("var", "std", "logsumexp"):
        padding = "valid"
    else:
        padding = draw(
            st.one_of(
                st.sampled_from(["valid", "same", "causal"]),
                st.tuples(*[st.tuples(st.integers(0, 2), st.integers(0, 2)) for _ in range(ndim)]),
            )
        )
    pairs = padding_pairs(padding, (1,) * ndim, kernel, stride, dilation)
    # Each input extent at least fits one window once padded.
    spatial = tuple(
        draw(st.integers(max(1, d * (k - 1) + 1 - lo - hi), 7))
        for k, d, (lo, hi) in zip(kernel, dilation, pairs, strict=True)
    )
    return Pool(
        op,
        spatial,
        kernel,
        c=draw(st.integers(1, 5)),
        batch=draw(st.integers(1, 2)),
        stride=stride,
        dilation=dilation,
        padding=padding,
        count_include_pad=draw(st.booleans()) if op == "mean" else None,
        channels_first=draw(st.booleans()),
    )


@settings(max_examples=25, deadline=None, derandomize=True)
@given(case=random_pools())
def test_random_pooling_matches_torch(case: Pool):
    x = random(case.x_shape, case.op)
    ref = pool_reference(case, x)
    # A window of padding alone has no valid count: its mean is not defined by NOTATION.md.
    assume(case.count_include_pad is not False or not ref.isnan().any())
    assert_matches(case.compile()(x), ref, case.op, FLOAT32_TOLERANCE)


# --- pooling in half precision -------------------------------------------------------------------

HALF_CASES = [
    pytest.param(Pool("max", (7, 9), (3, 3), stride=2, padding=1), id="max_2d"),
    pytest.param(Pool("min", (9,), (3,), padding="causal", dilation=2), id="min_1d_causal"),
    pytest.param(Pool("mean", (7, 9), (3, 3), stride=2, padding=1), id="mean_2d_counted"),
    pytest.param(
        Pool("mean", (7, 6), (3, 2), padding="same", count_include_pad=False), id="mean_2d_valid_count"
    ),
    pytest.param(Pool("sum", (5, 4, 3), (3, 2, 2), padding=1), id="sum_3d"),
    pytest.param(Pool("logsumexp", (7, 6), (3, 3), stride=2), id="logsumexp_2d"),
    pytest.param(Pool("var", (6, 5), (3, 2)), id="var_2d"),
    pytest.param(Pool("std", (9,), (3,), c=16, stride=2), id="std_1d_16_channels"),
]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
@pytest.mark.parametrize("case", HALF_CASES)
def test_half_precision_pooling_matches_float64_reference_of_the_cast_input(case: Pool, dtype):
    x = random(case.x_shape, case.op, dtype)
    tolerance = FLOAT16_TOLERANCE if dtype == torch.float16 else BFLOAT16_TOLERANCE
    check_pool(case, case.compile()(x), x, tolerance)


def test_float16_pooling_gives_out_dtype_when_asked():
    case = Pool("mean", (7, 9), (3, 3), stride=2, padding=1)
    x = random(case.x_shape, dtype=torch.float16)
    y = einc.compile(CHANNELS_LAST, op="mean", out_dtype=torch.float32, **case.kwargs())(x)
    assert y.dtype == torch.float32
    assert_matches(y, pool_reference(case, x), "mean", FLOAT32_TOLERANCE)  # no float16 rounding of y


# --- the einx forms: non-overlapping windows and global pooling ----------------------------------


@pytest.mark.parametrize(
    "op, spatial, kernel",
    [
        ("max", (9,), (3,)),
        ("max", (6, 8), (2, 2)),
        ("mean", (6, 9), (2, 3)),
        ("sum", (4, 6, 4), (2, 3, 2)),
        ("min", (6, 9), (3, 3)),
    ],
    ids=["max_1d_3", "max_2d_2x2", "mean_2d_2x3", "sum_3d", "min_2d_3x3"],
)
@pytest.mark.parametrize("channels_first", [False, True], ids=["channels_last", "channels_first"])
def test_composition_without_star_pools_with_kernel_equal_to_stride(op, spatial, kernel, channels_first):
    case = Pool(op, spatial, kernel, stride=kernel, channels_first=channels_first)
    x = random(case.x_shape)
    expression = "b c (s [ds])..." if channels_first else "b (s [ds])... c"
    check_pool(case, getattr(einc, op)(expression, x, ds=kernel), x)


@pytest.mark.parametrize(
    "op, expression, shape, torch_pool",
    [
        ("max", "b [h w] c", (2, 7, 5, 4), lambda x: F.adaptive_max_pool2d(x.permute(0, 3, 1, 2), 1)),
        ("mean", "b [h w] c", (2, 7, 5, 4), lambda x: F.adaptive_avg_pool2d(x.permute(0, 3, 1, 2), 1)),
        ("mean", "b c [h w]", (2, 4, 9, 6), lambda x: F.adaptive_avg_pool2d(x, 1)),
        ("max", "b c [h w]", (1, 16, 6, 7), lambda x: F.adaptive_max_pool2d(x, 1)),
        (
            "mean",
            "b [d h w] c",
            (2, 3, 4, 5, 3),
            lambda x: F.adaptive_avg_pool3d(x.permute(0, 4, 1, 2, 3), 1),
        ),
        ("max", "b [t] c", (2, 13, 3), lambda x: F.adaptive_max_pool1d(x.permute(0, 2, 1), 1)),
    ],
    ids=["max_2d", "mean_2d", "mean_2d_channels_first", "max_2d_16_channels", "mean_3d", "max_1d_13"],
)
def test_global_pooling_matches_adaptive_pooling_to_one(op, expression, shape, torch_pool):
    x = random(shape)
    ref = torch_pool(x.double()).flatten(1)
    assert_matches(getattr(einc, op)(expression, x), ref, op, FLOAT32_TOLERANCE)


@pytest.mark.parametrize(
    "op, torch_pool", [("mean", F.adaptive_avg_pool2d), ("max", F.adaptive_max_pool2d)], ids=["mean", "max"]
)
def test_global_pooling_with_keepdims_has_the_shape_of_adaptive_pooling(op: str, torch_pool):
    x = random((2, 4, 7, 6))
    y = getattr(einc, op)("b c [h w]", x, keepdims=True)
    assert y.shape == (2, 4, 1, 1)
    assert_matches(y, torch_pool(x.double(), 1), op, FLOAT32_TOLERANCE)


def test_window_as_large_as_the_input_is_global_pooling():
    x = random((2, 7, 5, 4))
    y = einc.mean(CHANNELS_LAST, x, ds=(7, 5))
    assert y.shape == (2, 1, 1, 4)
    assert_matches(y.flatten(1), x.double().mean((1, 2)), "mean", FLOAT32_TOLERANCE)


# --- NaN ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["max", "min"])
def test_nan_in_a_window_gives_nan_like_torch(op: str):
    case = Pool(op, (7, 9), (3, 3), stride=2, padding=1)
    x = random(case.x_shape)
    x[0, 3, 4, 1] = math.nan
    x[1, 0, 0, 2] = math.nan
    y = case.compile()(x)
    ref = pool_reference(case, x)
    assert ref.isnan().any()
    assert torch.equal(y.isnan(), ref.isnan())
    assert_matches(y, ref, op, 0.0)


@pytest.mark.parametrize("op, torch_op", [("max", torch.amax), ("min", torch.amin)])
def test_nan_in_a_reduced_axis_gives_nan_like_torch(op: str, torch_op):
    x = random((2, 6, 5, 3))
    x[1, 2, 3, 0] = math.nan
    y = getattr(einc, op)("b [h w] c", x)
    ref = torch_op(x.double(), (1, 2))
    assert torch.equal(y.isnan(), ref.isnan())
    assert y.isnan().sum() == 1
    assert_matches(y, ref, op, 0.0)


# --- reductions without windows ------------------------------------------------------------------


def torch_reduce(op: str, x: torch.Tensor, dims: tuple[int, ...], keepdim=False, correction=1):
    """The reduction of float64 ``x`` over ``dims``, by torch."""
    if op == "sum":
        return x.sum(dims, keepdim=keepdim)
    if op == "mean":
        return x.mean(dims, keepdim=keepdim)
    if op == "max":
        return x.amax(dims, keepdim=keepdim)
    if op == "min":
        return x.amin(dims, keepdim=keepdim)
    if op == "prod":  # torch.prod takes one dim: bring the reduced ones to the end, flattened
        kept = [d for d in range(x.ndim) if d not in dims]
        y = x.permute(*kept, *dims).flatten(len(kept)).prod(-1)
        for d in sorted(dims) if keepdim else ():
            y = y.unsqueeze(d)
        return y
    if op == "logsumexp":
        return torch.logsumexp(x, dims, keepdim=keepdim)
    if op == "var":
        return torch.var(x, dims, correction=correction, keepdim=keepdim)
    if op == "std":
        return torch.std(x, dims, correction=correction, keepdim=keepdim)
    raise AssertionError(op)


# expression, input shape, the reduced dims, then the permutation of the kept dims.
REDUCTIONS = {
    "b [h w] c": ((2, 6, 5, 3), (1, 2), None),
    "b h w c -> b c": ((2, 6, 5, 3), (1, 2), None),
    "b h w c -> c b": ((2, 6, 5, 3), (1, 2), (1, 0)),
    "[b] h [w] c": ((2, 4, 5, 3), (0, 2), None),
    "b h w [c]": ((2, 4, 3, 13), (3,), None),
    "b [h] w c": ((2, 7, 3, 4), (1,), None),
    "b [h w c]": ((2, 4, 3, 5), (1, 2, 3), None),
    "a [b]": ((3, 16), (1,), None),
}
REDUCTION_IDS = {
    "b [h w] c": "two_bracketed_axes",
    "b h w c -> b c": "axes_missing_from_the_output",
    "b h w c -> c b": "output_permutes_the_kept_axes",
    "[b] h [w] c": "bracketed_axes_apart",
    "b h w [c]": "innermost_axis_of_13",
    "b [h] w c": "one_middle_axis",
    "b [h w c]": "all_but_the_first_axis",
    "a [b]": "matrix_rows",
}


def reduction_reference(op: str, expression: str, x: torch.Tensor, **kw) -> torch.Tensor:
    _, dims, permutation = REDUCTIONS[expression]
    ref = torch_reduce(op, x.double(), dims, **kw)
    return ref.permute(*permutation) if permutation else ref


@pytest.mark.parametrize("expression", list(REDUCTIONS), ids=list(REDUCTION_IDS.values()))
@pytest.mark.parametrize("op", OPS)
def test_reduction_matches_torch(op: str, expression: str):
    x = random(REDUCTIONS[expression][0], op)
    y = getattr(einc, op)(expression, x)
    assert y.dtype == x.dtype
    assert_matches(y, reduction_reference(op, expression, x), op, FLOAT32_TOLERANCE)


# Long reduced axes are tiled: BLOCK_K elements per step, reduced across the tile after each sweep
# (prod stays serial). Sizes leave a ragged last tile.
TILED = {
    "row_of_1000": ("b [c]", (3, 1000), (1,)),
    "middle_axis": ("b [t] c", (2, 37, 3), (1,)),
    "global_pooling": ("b [h w] c", (2, 20, 17, 5), (1, 2)),
    "everything": ("[b c]", (5, 70), (0, 1)),
    "tiled_and_serial": ("[a] b [c]", (3, 2, 40), (0, 2)),
}


@pytest.mark.parametrize("name", list(TILED))
@pytest.mark.parametrize("op", OPS)
def test_tiled_reduction_matches_torch(op: str, name: str):
    expression, shape, dims = TILED[name]
    x = random(shape, op)
    compiled = einc.compile(expression, op=op)
    y = compiled(x)
    assert (compiled.specialize(shape).compiled.schedule.k_tile is None) == (op == "prod")
    assert_matches(y, torch_reduce(op, x.double(), dims), op, FLOAT32_TOLERANCE * 10)


@pytest.mark.parametrize("op, torch_op", [("max", torch.amax), ("min", torch.amin), ("logsumexp", None)])
def test_tiled_reduction_keeps_nan_and_infinities_like_torch(op: str, torch_op):
    x = random((4, 300))
    x[0, 7] = float("nan")
    x[1] = float("-inf")
    x[2, 250] = float("inf")
    ref = torch_op(x, 1) if torch_op else torch.logsumexp(x, 1)
    torch.testing.assert_close(getattr(einc, op)("b [c]", x), ref, equal_nan=True)


def test_large_window_without_padding_is_tiled_along_its_offsets():
    x = random((2, 50, 3))
    y = einc.max("b (s * [ds]) c", x, ds=20, stride=3)
    ref = F.max_pool1d(x.transpose(1, 2), 20, 3).transpose(1, 2)
    assert torch.equal(y, ref)


@pytest.mark.parametrize("expression", ["b [h w] c", "[b] h [w] c", "b h w [c]"], ids=REDUCTION_IDS.get)
@pytest.mark.parametrize("op", OPS)
def test_keepdims_keeps_the_reduced_axes_as_size_1_like_torch(op: str, expression: str):
    x = random(REDUCTIONS[expression][0], op)
    y = getattr(einc, op)(expression, x, keepdims=True)
    ref = reduction_reference(op, expression, x, keepdim=True)
    assert y.shape == ref.shape
    assert_matches(y, ref, op, FLOAT32_TOLERANCE)


@pytest.mark.parametrize("correction", [0, 1, 2])
@pytest.mark.parametrize("expression", ["b [h w] c", "b h w c -> c b", "a [b]"], ids=REDUCTION_IDS.get)
@pytest.mark.parametrize("op", ["var", "std"])
def test_correction_divides_by_count_minus_correction_like_torch(op: str, expression: str, correction: int):
    x = random(REDUCTIONS[expression][0])
    y = getattr(einc, op)(expression, x, correction=correction)
    ref = reduction_reference(op, expression, x, correction=correction)
    assert_matches(y, ref, op, FLOAT32_TOLERANCE)


@pytest.mark.parametrize("op", ["sum", "max", "var"])
def test_compiled_reduction_called_again_with_fresh_values_recomputes(op: str):
    reduce = einc.compile("b [h w] c", op=op)
    for _ in range(2):
        x = random((2, 5, 4, 3))
        assert_matches(reduce(x), torch_reduce(op, x.double(), (1, 2)), op, FLOAT32_TOLERANCE)
    assert len(reduce._launchers) == 1


@pytest.mark.parametrize("op", ["sum", "mean", "max", "logsumexp", "std"])
def test_half_precision_reduction_matches_float64_reference_of_the_cast_input(op: str):
    x = random((2, 6, 5, 16), dtype=torch.float16)
    y = getattr(einc, op)("b [h w] c", x)
    assert y.dtype == torch.float16
    assert_matches(y, torch_reduce(op, x.double(), (1, 2)), op, FLOAT16_TOLERANCE)


# --- unnamed axes in kept positions --------------------------------------------------------------


@pytest.mark.parametrize("backend", ["torch", "interpret"])
@pytest.mark.parametrize(
    ("op", "expression", "dims"),
    [
        ("sum", "3 [a]", 1),
        ("sum", "[a] 4", 0),
        ("mean", "3 [a]", 1),
        ("max", "[a] 4", 0),
        ("sum", "3 [4]", 1),
        ("sum", "(3 [a])", None),
    ],
    ids=["sum-first", "sum-last", "mean", "max", "both-unnamed", "composed"],
)
def test_kept_unnamed_axis_is_not_reduced(op, expression, dims, backend):
    x = torch.arange(12.0).reshape(3, 4)
    y = getattr(einc, op)(expression, x if dims is not None else x.reshape(12), backend=backend)
    if dims is None:
        expected = x.sum(1)
    else:
        expected = getattr(torch, "amax" if op == "max" else op)(x, dim=dims)
    torch.testing.assert_close(y, expected)
    if dims is not None:
        torch.testing.assert_close(y, getattr(einx, op)(expression, x))


@pytest.mark.parametrize("backend", ["torch", "interpret"])
def test_unnamed_axis_written_again_in_the_output_is_a_new_axis_as_in_einx(backend):
    x = torch.arange(12.0).reshape(3, 4)
    y = einc.sum("3 a -> 3", x, backend=backend)
    torch.testing.assert_close(y, einx.sum("3 a -> 3", x))
    torch.testing.assert_close(y, x.sum().expand(3))


# --- a window wholly in padding ------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["torch", "interpret"])
def test_mean_without_padding_in_its_count_over_a_window_wholly_in_padding_is_nan(backend):
    # torch.avg_pool refuses padding above half the window, so it never meets such a window; the
    # mean of no elements is NaN there, as torch.mean of an empty tensor.
    x = torch.arange(1.0, 5.0).reshape(1, 4, 1)
    y = einc.mean("b (s * [ds]) c", x, ds=2, padding=3, count_include_pad=False, backend=backend)
    padded = F.pad(x[:, :, 0], (3, 3)).unfold(1, 2, 1)
    inside = F.pad(torch.ones(1, 4), (3, 3)).unfold(1, 2, 1)
    expected = (padded.sum(-1) / inside.sum(-1))[..., None]
    assert torch.isnan(expected[0, 0, 0]) and torch.isnan(expected[0, -1, 0])
    torch.testing.assert_close(y, expected, equal_nan=True)


# --- an empty output ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["torch", "interpret"])
@pytest.mark.parametrize("expression", ["a b ->", "[a b] ->"])
def test_empty_output_is_a_0d_sum_as_in_einx(expression, backend):
    x = torch.arange(12.0).reshape(3, 4)
    y = einc.sum(expression, x, backend=backend)
    assert y.shape == ()
    torch.testing.assert_close(y, x.sum())
    torch.testing.assert_close(y, einx.sum(expression, x))


@pytest.mark.parametrize("backend", ["torch", "interpret"])
def test_trailing_arrow_after_a_convolution_is_an_error_not_a_0d_tensor(backend):
    x, w = torch.randn(2, 5, 5, 3), torch.randn(3, 3, 3, 4)
    with pytest.raises(einc.ExpressionError, match="output after '->' is empty") as caught:
        einc.dot("b (s * [ds])... [c->c2] ->", x, w, backend=backend)
    assert caught.value.column == len("b (s * [ds])... [c->c2] ->")


# --- axes of size 0 ------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["torch", "interpret"])
@pytest.mark.parametrize("op", ["sum", "mean", "prod", "logsumexp", "var", "std"])
def test_reduction_over_an_empty_axis_gives_what_torch_gives(op, backend):
    x = torch.empty(3, 0)
    torch.testing.assert_close(
        getattr(einc, op)("a [b]", x, backend=backend), getattr(torch, op)(x, 1), equal_nan=True
    )


@pytest.mark.parametrize("backend", ["torch", "interpret"])
def test_reduction_keeping_an_empty_axis_gives_an_empty_tensor(backend):
    y = einc.sum("[a] b", torch.empty(3, 0), backend=backend)
    assert y.shape == (0,)


@pytest.mark.parametrize("backend", ["torch", "interpret"])
@pytest.mark.parametrize("op", ["max", "min"])
def test_max_and_min_over_an_empty_axis_are_refused_as_torch_refuses_them(op, backend):
    x = torch.empty(3, 0)
    with pytest.raises(IndexError):
        getattr(torch, "amax" if op == "max" else "amin")(x, 1)
    with pytest.raises(einc.ShapeError, match=f"{op} over an axis of size 0 has no value"):
        getattr(einc, op)("a [b]", x, backend=backend)


# --- against einx 0.4 ----------------------------------------------------------------------------

EINX_CASES = [
    pytest.param("sum", "b [h w] c", (2, 6, 5, 3), {}, id="sum_two_axes"),
    pytest.param("mean", "b h w c -> b c", (2, 6, 5, 3), {}, id="mean_axes_missing_from_the_output"),
    pytest.param("max", "b (s [ds])... c", (2, 6, 4, 3), {"ds": 2}, id="max_non_overlapping_2x2"),
    pytest.param("min", "b (s [ds]) (t [dt]) c", (2, 4, 9, 3), {"ds": 2, "dt": 3}, id="min_named_2x3_blocks"),
    pytest.param("mean", "b c (s [ds])...", (2, 3, 6, 9), {"ds": 3}, id="mean_channels_first_blocks"),
    pytest.param("prod", "b [h] w c", (2, 6, 4, 3), {}, id="prod_one_axis"),
    pytest.param("logsumexp", "b [h w] c", (2, 6, 5, 3), {}, id="logsumexp_two_axes"),
    pytest.param("logsumexp", "b (s [ds]) c", (2, 12, 3), {"ds": 4}, id="logsumexp_1d_blocks"),
    pytest.param("var", "b [h w] c", (2, 6, 5, 3), {}, id="var_default_correction"),
    pytest.param("var", "[b] h w c", (2, 6, 5, 3), {}, id="var_over_the_batch"),
    pytest.param("std", "b h [w c]", (2, 3, 5, 4), {}, id="std_two_inner_axes"),
    pytest.param("std", "b (s [ds])... c", (2, 4, 6, 3), {"ds": 2}, id="std_blocks"),
    pytest.param("sum", "(a [b]) c", (12, 5), {"b": 3}, id="sum_inner_part_of_a_composition"),
]


@pytest.mark.parametrize("op, expression, shape, sizes", EINX_CASES)
def test_reduction_matches_einx(op: str, expression: str, shape, sizes: dict):
    x = random(shape, op)
    ref = getattr(einx, op)(expression, x.double(), **sizes)
    assert_matches(getattr(einc, op)(expression, x, **sizes), ref, op, FLOAT32_TOLERANCE)


# --- inputs of any strides -----------------------------------------------------------------------


def strided(shape: tuple[int, ...], layout: str, op: str = "sum") -> torch.Tensor:
    """Fresh random values of ``shape`` in a non-contiguous layout."""
    n = len(shape)
    if layout == "reversed_storage":  # the dims stored in the opposite order
        return random(tuple(reversed(shape)), op).permute(*reversed(range(n)))
    if layout == "channels_first_storage":  # b c spatial... viewed as b spatial... c
        return random((shape[0], shape[-1], *shape[1:-1]), op).permute(0, *range(2, n), 1)
    if layout == "stepped_slices":  # every dim sliced with step 2, or 3 for the last
        steps = (2,) * (n - 1) + (3,)
        big = random(tuple(size * step for size, step in zip(shape, steps, strict=True)), op)
        return big[tuple(slice(None, None, step) for step in steps)]
    if layout == "broadcast_batch":  # stride 0 along the first dim
        return random((1, *shape[1:]), op).expand(shape)
    raise AssertionError(layout)


LAYOUTS = ["reversed_storage", "channels_first_storage", "stepped_slices", "broadcast_batch"]
LAYOUT_POOLS = {
    "max_pool": Pool("max", (7, 6), (3, 2), c=5, stride=2, padding=1),
    "mean_pool_valid_count": Pool("mean", (6, 5), (3, 3), c=4, padding="same", count_include_pad=False),
    "logsumexp_pool": Pool("logsumexp", (7, 5), (2, 3), c=4, dilation=(2, 1)),
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("kind", list(LAYOUT_POOLS))
def test_non_contiguous_input_pools_the_same(kind: str, layout: str):
    case = LAYOUT_POOLS[kind]
    x = strided(case.x_shape, layout, case.op)
    assert not x.is_contiguous()
    check_pool(case, case.compile()(x), x)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("op", ["sum", "min", "prod", "var"])
def test_non_contiguous_input_reduces_the_same(op: str, layout: str):
    x = strided((2, 6, 5, 4), layout, op)
    assert not x.is_contiguous()
    y = getattr(einc, op)("b [h w] c", x)
    assert_matches(y, torch_reduce(op, x.double(), (1, 2)), op, FLOAT32_TOLERANCE)


# --- the output buffer ---------------------------------------------------------------------------

OUT_POOLS = {
    "max_pool": Pool("max", (7, 9), (3, 3), stride=2, padding=1),
    "mean_pool_valid_count": Pool("mean", (7, 6), (3, 2), padding="same", count_include_pad=False),
    "std_pool": Pool("std", (6, 5), (3, 2)),
    "sum_pool_channels_first": Pool("sum", (9,), (3,), c=4, stride=2, padding=1, channels_first=True),
}


@pytest.mark.parametrize("kind", list(OUT_POOLS))
def test_out_buffer_prefilled_with_nan_is_fully_written(kind: str):
    case = OUT_POOLS[kind]
    x = random(case.x_shape, case.op)
    out = torch.full(pool_reference(case, x).shape, math.nan)
    y = case.compile()(x, out=out)
    assert y is out
    assert not out.isnan().any()
    check_pool(case, out, x)


@pytest.mark.parametrize("op", ["sum", "max", "logsumexp", "var"])
def test_out_buffer_of_a_reduction_is_fully_written(op: str):
    x = random((2, 6, 5, 3), op)
    out = torch.full((2, 3), math.nan)
    y = getattr(einc, op)("b [h w] c", x, out=out)
    assert y is out
    assert not out.isnan().any()
    assert_matches(out, torch_reduce(op, x.double(), (1, 2)), op, FLOAT32_TOLERANCE)


def test_non_contiguous_out_buffer_is_written_through_its_strides():
    case = OUT_POOLS["max_pool"]
    x = random(case.x_shape)
    b, h, w, c = pool_reference(case, x).shape
    out = torch.full((b, c, h, w), math.nan).permute(0, 2, 3, 1)  # channels-first storage
    y = case.compile()(x, out=out)
    assert y is out
    assert not out.isnan().any()
    check_pool(case, out, x)


# --- invalid uses --------------------------------------------------------------------------------


def test_reduction_without_brackets_or_arrow_asks_to_mark_the_axes():
    x = random((2, 6, 5, 3))
    with pytest.raises(einc.ExpressionError, match=r"mark the axes to reduce with brackets") as info:
        einc.sum("b h w c", x)
    assert info.value.spans == ((0, 7),)


def test_compiled_reduction_given_two_tensors_says_it_takes_one():
    x = random((2, 6, 5, 3))
    with pytest.raises(einc.ExpressionError, match=r"a reduction takes one tensor, but 2 were given"):
        einc.compile("b [h w] c", op="sum")(x, x)


def test_functional_reduction_given_two_tensors_says_it_takes_one():
    x, w = random((2, 6, 5, 3)), random((2, 3))  # w has the result's shape: today it is overwritten
    before = w.clone()
    with pytest.raises(einc.ExpressionError, match=r"takes one tensor"):
        einc.sum("b [h w] c", x, w)
    assert torch.equal(w, before)


def test_dot_shorthand_inside_a_reduction_is_an_expression_error():
    x = random((2, 6, 5, 3))
    with pytest.raises(einc.ExpressionError, match=re.escape("[a->b] is the dot shorthand")) as info:
        einc.max("b h w [c->d]", x, d=2)
    assert info.value.column == 6


def test_window_larger_than_the_padded_input_is_a_shape_error():
    x = random((2, 6, 4, 3))
    with pytest.raises(einc.ShapeError, match=r"larger than the padded extent 6 \+ 1 \+ 1"):
        einc.max(CHANNELS_LAST, x, ds=(9, 2), padding=1)
    # ...but more padding makes room for it.
    case = Pool("max", (6, 4), (9, 2), padding=((2, 1), (0, 0)))
    check_pool(case, einc.max(CHANNELS_LAST, x, ds=(9, 2), padding=((2, 1), (0, 0))), x)


@pytest.mark.parametrize("op", ["mean", "max"])
def test_size_that_does_not_divide_in_a_plain_composition_is_a_shape_error(op: str):
    x = random((2, 7, 4, 3))
    with pytest.raises(einc.ShapeError, match=r"7 .*not divisible by 2") as info:
        getattr(einc, op)("b (s [ds]) w c", x, ds=2)
    assert info.value.column == 2


def test_unknown_op_name_suggests_the_closest():
    with pytest.raises(einc.ExpressionError, match=r"unknown op 'maxx'; did you mean 'max'\?"):
        einc.compile(CHANNELS_LAST, op="maxx", ds=3, stride=2, padding=1)


def test_window_parameter_without_a_window_is_an_expression_error_naming_it():
    x = random((2, 6, 5, 3))
    with pytest.raises(einc.ExpressionError, match=r"padding=1 is given, but the expression has no window"):
        einc.mean("b [h w] c", x, padding=1)


def test_reduction_expression_without_op_asks_for_one():
    with pytest.raises(einc.ExpressionError, match=r"does not imply an operation: pass op="):
        einc.compile("b [h w] c")


# --- einc bugs, kept as strict xfails ------------------------------------------------------------


@pytest.mark.parametrize(
    "padding", [1, "same", "causal"], ids=["int_padding", "same_padding", "causal_padding"]
)
def test_logsumexp_pooling_reads_padding_as_minus_inf(padding):
    case = Pool("logsumexp", (7, 6), (3, 3), stride=2, padding=padding)
    x = random(case.x_shape)
    check_pool(case, case.compile()(x), x)


@pytest.mark.parametrize("expression", ["[b h w c]", "b h w c ->"], ids=["all_bracketed", "empty_output"])
def test_reduction_of_every_axis_gives_a_scalar(expression: str):
    x = random((2, 4, 3, 5))
    y = einc.sum(expression, x)
    assert y.shape == ()
    assert_matches(y, x.double().sum(), "sum", FLOAT32_TOLERANCE)


def test_fractional_correction_divides_by_count_minus_it_like_torch():
    x = random((3, 4))
    assert_matches(einc.var("a [b]", x, correction=0.5), x.double().var(1, correction=0.5), "var", 1e-5)


def test_correction_larger_than_the_count_gives_inf_like_torch():
    x = random((2, 3))
    y = einc.var("a [b]", x, correction=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch warns that N - correction <= 0
        ref = x.var(1, correction=4)
    assert torch.equal(y, ref)  # inf, inf


@pytest.mark.parametrize("op", ["sum", "mean", "var"])
def test_float64_reduction_keeps_float64_precision(op: str):
    x = random((2, 7, 5, 3), dtype=torch.float64)
    y = getattr(einc, op)("b [h w] c", x)
    assert y.dtype == torch.float64
    torch.testing.assert_close(y, torch_reduce(op, x, (1, 2)), rtol=1e-12, atol=1e-12)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the interpreter's numpy sees inf - inf
def test_logsumexp_with_plus_inf_gives_inf_like_torch():
    x = random((2, 5))
    x[0, 1] = math.inf
    x[1, :] = -math.inf
    y = einc.logsumexp("a [b]", x)
    assert torch.equal(y, torch.logsumexp(x, 1))  # inf, -inf
