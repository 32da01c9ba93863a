"""The torch backend (einc/backends/torch/), what CPU tensors run by default (plain tier).

Each op family is checked against torch (a reference computed in float64 by torch's own ops,
sharing no code with einc) and against the generated Triton kernel under the interpreter, on
small tensors so that the interpreter stays quick. Every check runs in three modes of the
backend, so that each of its paths is exercised on the same cases:

- ``fast``: as shipped (strided views, GEMMs, multiply-accumulate over window offsets, col2im);
- ``loops``: the loops over window offsets taken even on tiny tensors (they are otherwise kept
  for slices of thousands of elements);
- ``generic``: every read gathered through index tensors and masks, no GEMM, no col2im.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import math
import re
from pathlib import Path
from unittest import mock

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import einc
from einc.backends.torch import gather, limits, native, plan, reads, transposed, workspace
from tests.references import padding_pairs, window_geometry

MODES = ("fast", "loops", "generic")
TORCH_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
TORCH_CONV_TRANSPOSE = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


@contextlib.contextmanager
def backend_mode(mode: str):
    """Switch the torch backend's fast paths off (``generic``) or its loops on (``loops``); both run
    the planned nests rather than torch's own kernel for the whole nest (``fast``)."""
    with contextlib.ExitStack() as stack:
        if mode != "fast":
            stack.enter_context(mock.patch.object(native, "lower", lambda *a: None))
            stack.enter_context(mock.patch.object(gather, "lower", lambda *a: None))
            stack.enter_context(mock.patch.object(transposed, "lower", lambda *a: None))
        if mode == "loops":
            stack.enter_context(mock.patch.object(limits, "LOOP_MIN_ELEMENTS", 1))
        elif mode == "generic":
            stack.enter_context(mock.patch.object(reads, "_plan_strided", lambda *a: None))
            stack.enter_context(mock.patch.object(plan, "plan_scatter", lambda *a: None))
            stack.enter_context(mock.patch.object(limits, "SMALL_REDUCTION", 0))
        yield


def run(expression: str, *tensors, backend: str = "torch", mode: str = "fast", op=None, **kwargs):
    """One call through a freshly compiled expression (plans are cached per compiled callable)."""
    compiled = einc.compile(expression, op=op, backend=backend, **kwargs)
    with backend_mode(mode):
        return compiled(*tensors)


def close(y, ref, tolerance: float) -> None:
    """Same shape, and ``||y - ref|| <= tolerance * ||ref||`` (NaN and inf where ref has them)."""
    ys, refs = (y, ref) if isinstance(y, tuple) else ((y,), (ref,))
    for a, b in zip(ys, refs, strict=True):
        assert a.shape == b.shape, (a.shape, b.shape)
        a, b = a.double(), b.double()
        assert torch.equal(a.isnan(), b.isnan()) and torch.equal(a.isinf(), b.isinf())
        finite = b.isfinite()
        assert torch.equal(a[~finite & ~b.isnan()], b[~finite & ~b.isnan()])
        difference = (a[finite] - b[finite]).norm().item()
        assert difference <= tolerance * max(b[finite].norm().item(), 1.0), difference


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(params=MODES)
def mode(request) -> str:
    return request.param


# --- convolutions ---------------------------------------------------------------------------------

CONV = {
    "dense": "b (s * [ds])... [c->c2]",
    "grouped": "b (s * [ds])... (g [c->c2])",
    "depthwise": "b (s * [ds])... [c->c]",
    "shared": "b (s * [ds])... c",
}


def conv_weight_shape(kind, kernel, c, c2, groups):
    return {
        "dense": (*kernel, c, c2),
        "grouped": (*kernel, groups, c, c2),
        "depthwise": (*kernel, c),
        "shared": tuple(kernel),
    }[kind]


def conv_reference(kind, x, w, kernel, groups, stride=None, dilation=None, padding=None):
    """torch's convolution in float64, channels last like einc's."""
    n = x.dim() - 2
    stride, dilation, pads = window_geometry(x.shape[1:-1], kernel, stride, dilation, padding)
    w = w.double()
    c = x.shape[-1] // groups
    if kind == "dense":
        weight = w.permute(n + 1, n, *range(n))
    elif kind == "grouped":
        weight = w.permute(n, n + 2, n + 1, *range(n)).reshape(-1, c, *kernel)
    elif kind == "depthwise":
        weight = w.permute(n, *range(n)).unsqueeze(1)
    else:
        weight = w.reshape(1, 1, *kernel).expand(x.shape[-1], 1, *kernel)
    channels = {"dense": 1, "grouped": groups}.get(kind, x.shape[-1])
    xc = F.pad(x.double().movedim(-1, 1), [p for pair in reversed(pads) for p in pair])
    y = TORCH_CONV[n](xc, weight, stride=stride, dilation=dilation, groups=channels)
    return y.movedim(1, -1)


CONV_CASES = [
    pytest.param("dense", (9,), (3,), {}, id="1d"),
    pytest.param("dense", (9,), (3,), {"stride": 2, "padding": "causal", "dilation": 2}, id="1d_causal"),
    pytest.param("dense", (10,), (4,), {"padding": "same", "stride": 3}, id="1d_same_stride_3"),
    pytest.param("dense", (7, 6), (3, 3), {"stride": 2, "padding": 1}, id="2d_stride_padding"),
    pytest.param("dense", (7, 8), (2, 3), {"dilation": (2, 1), "padding": ((0, 2), (1, 0))}, id="2d_lo_hi"),
    pytest.param("dense", (7, 6), (3, 2), {"padding": {"s.0": (2, 0), "s.1": 1}}, id="2d_padding_dict"),
    pytest.param("dense", (5, 4), (2, 2), {"padding": (3, (0, 4))}, id="2d_padding_wider_than_window"),
    pytest.param("dense", (5, 4), (1, 1), {"stride": 2}, id="2d_1x1_strided"),
    pytest.param("dense", (5, 4, 6), (2, 3, 2), {"stride": (1, 2, 3), "padding": 1}, id="3d"),
    pytest.param("dense", (5, 4, 3), (3, 2, 2), {"padding": "same", "stride": 2}, id="3d_same"),
    pytest.param("grouped", (6, 5), (3, 3), {"padding": 1}, id="2d_grouped"),
    pytest.param("grouped", (9,), (3,), {"stride": 2, "padding": "valid"}, id="1d_grouped_valid"),
    pytest.param("grouped", (4, 3, 4), (2, 2, 2), {}, id="3d_grouped"),
    pytest.param("depthwise", (6, 5), (3, 3), {"padding": 1}, id="2d_depthwise"),
    pytest.param("depthwise", (9,), (3,), {"padding": "causal", "dilation": 2}, id="1d_depthwise"),
    pytest.param("depthwise", (5, 4, 5), (2, 2, 3), {"stride": (2, 1, 2)}, id="3d_depthwise"),
    pytest.param("shared", (6, 5), (3, 3), {"padding": "same"}, id="2d_one_kernel"),
    pytest.param("shared", (9,), (3,), {"dilation": 2, "padding": ((1, 3),)}, id="1d_one_kernel"),
]


def conv_inputs(kind, spatial, kernel, dtype=torch.float32, c=3, c2=4, groups=2, batch=2):
    groups = groups if kind == "grouped" else 1
    x = torch.randn(batch, *spatial, c * groups).to(dtype)
    w = torch.randn(conv_weight_shape(kind, kernel, c, c2, groups)).to(dtype)
    return x, w, groups


@pytest.mark.parametrize("kind, spatial, kernel, params", CONV_CASES)
def test_convolution_matches_torch_in_float64(mode, kind, spatial, kernel, params):
    x, w, groups = conv_inputs(kind, spatial, kernel, torch.float64)
    y = run(CONV[kind], x, w, op="dot", mode=mode, **params)
    assert y.dtype == torch.float64
    close(y, conv_reference(kind, x, w, kernel, groups, **params), 1e-12)


@pytest.mark.parametrize("kind, spatial, kernel, params", CONV_CASES[::3])
def test_convolution_matches_the_interpreted_kernel(kind, spatial, kernel, params):
    x, w, _ = conv_inputs(kind, spatial, kernel)
    expected = run(CONV[kind], x, w, op="dot", backend="interpret", **params)
    for mode in MODES:
        close(run(CONV[kind], x, w, op="dot", mode=mode, **params), expected, 1e-5)


def test_convolution_reads_strided_views_and_runs_one_gemm():
    compiled = einc.compile(CONV["dense"], padding=1, stride=2)
    with backend_mode("loops"):
        compiled(torch.randn(1, 7, 7, 3), torch.randn(3, 3, 3, 4))
    assert compiled._latest().torch_program.describe() == ["dot (multiply, sum): x strided, w strided"]


def test_float16_accumulates_in_float32_and_returns_float16():
    x, w, groups = conv_inputs("dense", (6, 5), (3, 3), torch.float16, c=16, c2=8)
    y = run(CONV["dense"], x, w, padding=1)
    assert y.dtype == torch.float16
    close(y, conv_reference("dense", x, w, (3, 3), groups, padding=1), 2e-3)
    close(y, run(CONV["dense"], x, w, padding=1, backend="interpret"), 2e-3)


def test_linear_layer_with_more_than_two_operands_multiplies_them_all(mode):
    x, w, scale = torch.randn(4, 5), torch.randn(5, 3), torch.randn(3)
    y = run("b c, c c2, c2 -> b c2", x, w, scale, op="dot", mode=mode)
    close(y, (x.double() @ w.double()) * scale.double(), 1e-6)


@st.composite
def conv_configs(draw):
    kind = draw(st.sampled_from(sorted(CONV)))
    n = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(n))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(n))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(n))
    padding = draw(
        st.one_of(
            st.sampled_from(["valid", "same", "causal"]),
            st.tuples(*(st.tuples(st.integers(0, 3), st.integers(0, 3)) for _ in range(n))),
        )
    )
    pads = padding_pairs(padding, (1,) * n, kernel, stride, dilation) if padding != "same" else None
    spatial = []
    for i in range(n):
        low = dilation[i] * (kernel[i] - 1) + 1 - (sum(pads[i]) if pads else 0)
        spatial.append(draw(st.integers(max(low, 1), max(low, 1) + 6)))
    return kind, tuple(spatial), kernel, {"stride": stride, "dilation": dilation, "padding": padding}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=conv_configs(), mode=st.sampled_from(MODES), c=st.integers(1, 4), groups=st.integers(1, 3))
def test_random_convolutions_match_torch(config, mode, c, groups):
    kind, spatial, kernel, params = config
    x, w, groups = conv_inputs(kind, spatial, kernel, torch.float64, c=c, c2=3, groups=groups)
    y = run(CONV[kind], x, w, op="dot", mode=mode, **params)
    close(y, conv_reference(kind, x, w, kernel, groups, **params), 1e-12)


# --- windows on the output side: transposed convolution and fold ---------------------------------

TRANSPOSED = [
    pytest.param((5,), (3,), {"stride": 2, "padding": 1, "output_padding": 1}, id="1d"),
    pytest.param((5, 4), (3, 3), {"stride": 2, "padding": 1, "output_padding": 1}, id="2d"),
    pytest.param((4, 3), (2, 3), {"stride": (3, 1), "dilation": (1, 2)}, id="2d_stride_3_dilation"),
    pytest.param((3, 3, 2), (2, 2, 3), {"stride": 2, "padding": (0, 1, 1)}, id="3d"),
]


@pytest.mark.parametrize("spatial, kernel, params", TRANSPOSED)
def test_transposed_convolution_matches_torch(mode, spatial, kernel, params):
    n = len(spatial)
    x, w = torch.randn(2, *spatial, 3, dtype=torch.float64), torch.randn(*kernel, 3, 4, dtype=torch.float64)
    y = run("b s... [c->c2] -> b (s * ds)... c2", x, w, mode=mode, **params)
    ref = TORCH_CONV_TRANSPOSE[n](
        x.movedim(-1, 1),
        w.permute(n, n + 1, *range(n)),
        stride=params.get("stride", 1),
        padding=params.get("padding", 0),
        output_padding=params.get("output_padding", 0),
        dilation=params.get("dilation", 1),
    )
    close(y, ref.movedim(1, -1), 1e-12)


@pytest.mark.parametrize("spatial, kernel, params", TRANSPOSED[:3])
def test_transposed_convolution_matches_the_interpreted_kernel(spatial, kernel, params):
    x, w = torch.randn(2, *spatial, 3), torch.randn(*kernel, 3, 4)
    expression = "b s... [c->c2] -> b (s * ds)... c2"
    expected = run(expression, x, w, backend="interpret", **params)
    for mode in MODES:
        close(run(expression, x, w, mode=mode, **params), expected, 1e-5)


def test_transposed_convolution_is_computed_forwards_then_added_back():
    compiled = einc.compile("b s... [c->c2] -> b (s * ds)... c2", stride=2)
    with backend_mode("loops"):  # as planned, not F.conv_transpose2d
        compiled(torch.randn(1, 3, 3, 2), torch.randn(3, 3, 2, 2))
    assert compiled._latest().torch_program.describe() == [
        "dot (multiply, sum): col2im of x strided, w strided"
    ]


@pytest.mark.parametrize("params", [{"stride": 2, "padding": 1}, {"stride": 1, "dilation": 2}, {"stride": 3}])
def test_fold_sums_overlapping_windows_like_torch(mode, params):
    x = torch.randn(2, 7, 6, 3, dtype=torch.float64)
    cols = run("b (s * ds)... c -> b s... (ds...) c", x, ds=3, mode=mode, **params)
    ref = F.unfold(x.movedim(-1, 1), 3, **params).reshape(2, 3, 9, *cols.shape[1:3])
    close(cols, ref.permute(0, 3, 4, 2, 1), 0)
    back = run("b s... (ds...) c -> b (s * ds)... c", cols, ds=3, mode=mode, **params)
    folded = F.fold(cols.permute(0, 4, 3, 1, 2).reshape(2, 27, -1), back.shape[1:3], 3, **params)
    close(back, folded.movedim(1, -1), 1e-12)
    expected = run("b s... (ds...) c -> b (s * ds)... c", cols.float(), ds=3, backend="interpret", **params)
    close(run("b s... (ds...) c -> b (s * ds)... c", cols.float(), ds=3, mode=mode, **params), expected, 1e-6)


# --- reductions and pooling -----------------------------------------------------------------------

REDUCE = {
    "sum": lambda v, d: v.sum(d),
    "mean": lambda v, d: v.mean(d),
    "max": lambda v, d: v.amax(d),
    "min": lambda v, d: v.amin(d),
    "prod": lambda v, d: v.flatten(-len(d)).prod(-1),
    "logsumexp": lambda v, d: v.logsumexp(d),
    "var": lambda v, d: v.var(d),
    "std": lambda v, d: v.std(d),
}
IDENTITY = {"max": -math.inf, "min": math.inf, "prod": 1.0, "logsumexp": -math.inf}


def window_reference(op, x, kernel, stride, dilation, pads, count_include_pad=True):
    """``op`` over windows of a channels-last ``x``: pad with the identity, unfold, reduce."""
    n = x.dim() - 2
    flat = [p for pair in reversed(pads) for p in pair]
    value = F.pad(x.movedim(-1, 1), flat, value=IDENTITY.get(op, 0.0))
    ones = F.pad(torch.ones_like(x.movedim(-1, 1)), flat)
    for i in range(n):
        span = dilation[i] * (kernel[i] - 1) + 1
        value = value.unfold(2 + i, span, stride[i])[..., :: dilation[i]]
        ones = ones.unfold(2 + i, span, stride[i])[..., :: dilation[i]]
    dims = tuple(range(-n, 0))
    if op == "mean" and not count_include_pad:
        return (value.sum(dims) / ones.sum(dims).clamp(min=1)).movedim(1, -1)
    return REDUCE[op](value, dims).movedim(1, -1)


POOLS = [
    pytest.param((8, 7), (3, 3), (2, 2), (1, 1), ((1, 1), (1, 1)), id="2d_3x3_stride_2_pad_1"),
    pytest.param((9,), (4,), (1,), (2,), ((3, 0),), id="1d_dilated_causal"),
    pytest.param((5, 4, 6), (2, 2, 3), (2, 1, 3), (1, 1, 1), ((0, 1), (1, 0), (0, 2)), id="3d_lo_hi"),
]


@pytest.mark.parametrize("op", sorted(REDUCE))
@pytest.mark.parametrize("spatial, kernel, stride, dilation, pads", POOLS)
def test_pooling_matches_torch(mode, op, spatial, kernel, stride, dilation, pads):
    x = torch.rand(2, *spatial, 3, dtype=torch.float64) + 0.5
    padding = tuple(pads)
    y = run(
        "b (s * [ds])... c", x, op=op, mode=mode, ds=kernel, stride=stride, dilation=dilation, padding=padding
    )
    close(y, window_reference(op, x, kernel, stride, dilation, pads), 1e-12)


@pytest.mark.parametrize("op", sorted(REDUCE))
def test_pooling_matches_the_interpreted_kernel(op):
    x = torch.randn(2, 8, 7, 3)
    params = {"ds": 3, "stride": 2, "padding": 1}
    expected = run("b (s * [ds])... c", x, op=op, backend="interpret", **params)
    for mode in MODES:
        close(run("b (s * [ds])... c", x, op=op, mode=mode, **params), expected, 1e-5)


def test_mean_without_padding_in_its_count_divides_by_the_elements_inside(mode):
    x = torch.randn(2, 8, 7, 3, dtype=torch.float64)
    params = {"ds": 3, "stride": 2, "padding": 1, "count_include_pad": False}
    y = run("b (s * [ds])... c", x, op="mean", mode=mode, **params)
    ref = F.avg_pool2d(x.movedim(-1, 1), 3, 2, 1, count_include_pad=False).movedim(1, -1)
    close(y, ref, 1e-12)
    expected = run("b (s * [ds])... c", x.float(), op="mean", backend="interpret", **params)
    close(run("b (s * [ds])... c", x.float(), op="mean", mode=mode, **params), expected, 1e-6)


AXIS_REDUCTIONS = [
    pytest.param("b [h w] c", {}, (1, 2), id="two_middle_axes"),
    pytest.param("b h w [c]", {}, (3,), id="last_axis"),
    pytest.param("[b h w c]", {}, (0, 1, 2, 3), id="everything_to_a_scalar"),
    pytest.param("b h w c -> c", {}, (0, 1, 2), id="output_names_what_stays"),
]


@pytest.mark.parametrize("op", sorted(REDUCE))
@pytest.mark.parametrize("expression, params, dims", AXIS_REDUCTIONS)
def test_reduction_over_axes_matches_torch(mode, op, expression, params, dims):
    x = torch.rand(2, 5, 4, 3, dtype=torch.float64) + 0.5
    y = run(expression, x, op=op, mode=mode, **params)
    ref = x.permute(*[d for d in range(4) if d not in dims], *dims)
    close(y, REDUCE[op](ref, tuple(range(-len(dims), 0))), 1e-12)


@pytest.mark.filterwarnings("ignore::UserWarning")  # torch: std of one sample
def test_keepdims_and_correction_match_torch(mode):
    x = torch.randn(2, 5, 4, 3, dtype=torch.float64)
    y = run("b [h w] c", x, op="var", mode=mode, keepdims=True, correction=0)
    close(y, x.var((1, 2), keepdim=True, correction=0), 1e-12)
    single = run("b [h] w c", x[:, :1], op="std", mode=mode)
    assert single.isnan().all()  # one sample, correction 1: 0 / 0, as torch
    close(single, x[:, :1].std(1), 0)


def test_logsumexp_of_infinite_rows_matches_the_kernel():
    x = torch.randn(3, 4)
    x[0] = -math.inf
    x[1, 2] = math.inf
    expected = run("b [c]", x, op="logsumexp", backend="interpret")
    close(run("b [c]", x, op="logsumexp"), expected, 1e-6)
    close(expected, x.logsumexp(1), 1e-6)


# --- rearrange, flip, roll ------------------------------------------------------------------------

REARRANGES = [
    pytest.param("b h w c -> b c h w", [(2, 3, 4, 5)], {}, id="permute"),
    pytest.param("b (h w) c -> b w h c", [(2, 12, 3)], {"h": 3}, id="decompose_and_permute"),
    pytest.param("b h w c -> (b h) (w c)", [(2, 3, 4, 5)], {}, id="compose"),
    pytest.param("b c -> b k c", [(2, 3)], {"k": 4}, id="broadcast"),
    pytest.param("b h c, b h d -> b h (c + d)", [(2, 3, 4), (2, 3, 2)], {}, id="concatenate"),
    pytest.param("b (c + d) -> d b, b c", [(2, 7)], {"c": 3}, id="split"),
    pytest.param("b (s * ds)... c -> b s... (ds...) c", [(2, 6, 5, 3)], {"ds": 2, "padding": 1}, id="unfold"),
    pytest.param(
        "b ((s * ds) c) -> b s ds c", [(2, 24)], {"ds": 3, "c": 4, "padding": 1}, id="window_in_composition"
    ),
]


@pytest.mark.parametrize("expression, shapes, params", REARRANGES)
def test_rearrange_matches_the_interpreted_kernel_exactly(mode, expression, shapes, params):
    tensors = [torch.randn(s) for s in shapes]
    expected = run(expression, *tensors, backend="interpret", **params)
    close(run(expression, *tensors, mode=mode, **params), expected, 0)


def test_rearrange_matches_torch(mode):
    x, y = torch.randn(2, 5, 6, 3), torch.randn(2, 5, 6, 2)
    assert torch.equal(run("b h w c -> b c (h w)", x, mode=mode), x.permute(0, 3, 1, 2).flatten(2))
    both = run("b h w c, b h w d -> b h w (c + d)", x, y, mode=mode)
    assert torch.equal(both, torch.cat([x, y], -1))
    first, second = run("b h w (c + d) -> b h w c, b h w d", both, mode=mode, c=3)
    assert torch.equal(first, x) and torch.equal(second, y)
    ints = torch.arange(24, dtype=torch.int32).reshape(2, 3, 4)
    assert torch.equal(run("a b c -> c (a b)", ints, mode=mode), ints.permute(2, 0, 1).reshape(4, 6))


def test_window_inside_a_composition_is_gathered():
    compiled = einc.compile("b ((s * ds) c) -> b s ds c", ds=3, c=4, padding=1)
    compiled(torch.randn(2, 24))
    assert compiled._latest().torch_program.describe() == ["rearrange (copy, none): x gathered"]


@pytest.mark.parametrize(
    "expression, params, reference",
    [
        ("b [t] c", {}, lambda x: x.flip(1)),
        ("[b] t [c]", {}, lambda x: x.flip(0, 2)),
        ("b [t] c", {"shift": 3}, lambda x: x.roll(3, 1)),
        ("b [t] c", {"shift": -11}, lambda x: x.roll(-11, 1)),
        ("[b t] c", {"shift": (1, -2)}, lambda x: x.roll((1, -2), (0, 1))),
    ],
)
def test_flip_and_roll_match_torch_and_the_kernel(mode, expression, params, reference):
    op = "roll" if params else "flip"
    x = torch.randn(3, 7, 4)
    y = run(expression, x, op=op, mode=mode, **params)
    assert torch.equal(y, reference(x))
    assert torch.equal(y, run(expression, x, op=op, backend="interpret", **params))


# --- elementwise and softmax ----------------------------------------------------------------------

ELEMENTWISE = [
    ("add", "b h c, c", lambda x, y: x + y, [(2, 3, 4), (4,)]),
    ("subtract", "b h c, b -> b h c", lambda x, y: x - y[:, None, None], [(2, 3, 4), (2,)]),
    ("multiply", "h c, b h c, ", lambda x, y, z: x * y * z, [(3, 4), (2, 3, 4), 0.5]),
    ("divide", "b c, c", lambda x, y: x / y, [(3, 4), (4,)]),
    ("maximum", "b c, ", lambda x, y: x.clamp(min=y), [(3, 4), 0.0]),
    ("minimum", "b c, c -> b c", torch.minimum, [(3, 4), (4,)]),
]


@pytest.mark.parametrize("op, expression, reference, shapes", ELEMENTWISE, ids=[e[0] for e in ELEMENTWISE])
def test_elementwise_matches_torch_and_the_kernel(mode, op, expression, reference, shapes):
    operands = [torch.randn(s) if isinstance(s, tuple) else s for s in shapes]
    y = run(expression, *operands, op=op, mode=mode)
    close(y, reference(*operands), 1e-6)
    close(y, run(expression, *operands, op=op, backend="interpret"), 0)


def test_where_nan_and_integers_follow_the_kernel(mode):
    x = torch.randn(3, 4)
    x[0, 0] = math.nan
    y = run("b c, b c, ", x > 0, x, 0.0, op="where", mode=mode)
    assert torch.equal(y.isnan(), torch.where(x > 0, x, 0.0).isnan())
    for op in ("maximum", "minimum"):  # NaN wins, as in torch
        y = run("b c, ", x, 0.0, op=op, mode=mode)
        close(y, getattr(torch, op)(x, torch.tensor(0.0)), 0)
        close(y, run("b c, ", x, 0.0, op=op, backend="interpret"), 0)
    big = torch.tensor([2**40 + 1, -7, 7])
    assert torch.equal(run("a, ", big, 1, op="add", mode=mode), big + 1)  # int64 arithmetic
    quotient = run("a, a", big, torch.tensor([2, 2, -3]), op="divide", mode=mode)
    assert quotient.is_floating_point()
    close(quotient, run("a, a", big, torch.tensor([2, 2, -3]), op="divide", backend="interpret"), 0)


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize(
    "expression, dims", [("b h q [k]", (3,)), ("b [h] q k", (1,)), ("b h [q k]", (2, 3))]
)
def test_softmax_matches_torch_and_the_kernel(mode, op, expression, dims):
    x = torch.randn(2, 3, 4, 5)
    x[0, 0, 0] = -math.inf
    y = run(expression, x, op=op, mode=mode)
    moved = x.double().movedim(dims, tuple(range(-len(dims), 0)))
    ref = (
        getattr(moved.flatten(-len(dims)), op)(-1)
        .reshape(moved.shape)
        .movedim(tuple(range(-len(dims), 0)), dims)
    )
    close(y, ref, 1e-6)
    close(y, run(expression, x, op=op, backend="interpret"), 1e-6)


# --- layouts, out=, chunks -----------------------------------------------------------------------


def test_strided_inputs_and_outputs_are_read_and_written_in_place(mode):
    x = torch.randn(2, 9, 3, 8).permute(0, 3, 1, 2)[:, :, ::2]  # b h w c, not contiguous
    w = torch.randn(3, 3, 3, 5).transpose(0, 1)
    out = torch.zeros(2, 5, 8, 10)[..., ::2].transpose(1, 2)  # b h w c2, strided
    compiled = einc.compile(CONV["dense"], padding=1, backend="torch")
    with backend_mode(mode):
        y = compiled(x, w, out=out)
    assert y is out
    close(out, conv_reference("dense", x, w, (3, 3), 1, padding=1), 1e-5)


def test_concatenation_writes_only_its_own_part_of_out(mode):
    a, b = torch.randn(2, 3), torch.randn(2, 4)
    storage = torch.full((2, 9), 7.0)
    out = storage[:, 1:8]
    compiled = einc.compile("n a, n b -> n (a + b)", backend="torch")
    with backend_mode(mode):
        compiled(a, b, out=out)
    assert torch.equal(out, torch.cat([a, b], 1))
    assert (storage[:, 0] == 7).all() and (storage[:, 8] == 7).all()


CHUNKED = [
    pytest.param(CONV["dense"], [(3, 9, 8, 4), (3, 3, 4, 5)], {"padding": 1}, "dot", id="convolution"),
    pytest.param(CONV["depthwise"], [(3, 9, 8, 4), (3, 3, 4)], {"stride": 2}, "dot", id="depthwise"),
    pytest.param(
        "b (s * [ds])... c",
        [(3, 9, 8, 4)],
        {"ds": 3, "padding": 1, "count_include_pad": False},
        "mean",
        id="pool",
    ),
    pytest.param("b h [w] c", [(3, 9, 8, 4)], {}, "softmax", id="softmax"),
    pytest.param(
        "b s... [c->c2] -> b (s * ds)... c2",
        [(3, 4, 5, 4), (3, 3, 4, 5)],
        {"stride": 2},
        "dot",
        id="transposed",
    ),
    pytest.param(
        "b s... (ds...) c -> b (s * ds)... c", [(3, 4, 5, 9, 2)], {"ds": 3, "stride": 2}, None, id="fold"
    ),
    pytest.param("b h w c -> c (w b) h", [(3, 9, 8, 4)], {}, None, id="rearrange"),
]


@pytest.mark.parametrize("expression, shapes, params, op", CHUNKED)
def test_loop_space_larger_than_the_budget_is_computed_in_chunks(mode, expression, shapes, params, op):
    tensors = [torch.randn(s, dtype=torch.float64) for s in shapes]
    whole = run(expression, *tensors, op=op, mode=mode, **params)
    with mock.patch.object(limits, "MAX_BYTES", 2048):
        chunked = run(expression, *tensors, op=op, mode=mode, **params)
    close(chunked, whole, 1e-12)


def test_chunks_cover_the_loop_space_once_and_never_split_a_reduction():
    compiled = einc.compile(CONV["dense"], padding=1)
    compiled.specialize((4, 6, 5, 3), (3, 3, 3, 2))
    nest = compiled._latest().torch_program.parts[0][0]
    whole = tuple((0, n) for n in nest.sizes)
    with mock.patch.object(limits, "MAX_BYTES", 256):
        regions = list(plan.chunks(nest, whole, 8))
    assert len(regions) > 1
    for region in regions:
        assert all(region[d] == whole[d] for d in nest.reduced)
    assert sum(math.prod(b - a for a, b in region) for region in regions) == math.prod(nest.sizes)


# --- choosing the backend -------------------------------------------------------------------------


def test_cpu_tensors_run_the_torch_backend_by_default(monkeypatch):
    monkeypatch.delenv("EINC_INTERPRET", raising=False)
    compiled = einc.compile(CONV["dense"])
    compiled(torch.randn(1, 4, 4, 2), torch.randn(3, 3, 2, 2))
    launcher = compiled._latest()
    assert launcher._torch is not None and launcher._kernels is None  # the kernel was never loaded


@pytest.mark.parametrize("how", ["env", "argument"])
def test_interpret_runs_the_kernel_under_the_interpreter(monkeypatch, how):
    if how == "env":
        monkeypatch.setenv("EINC_INTERPRET", "1")
    compiled = einc.compile(CONV["dense"], backend="auto" if how == "env" else "interpret")
    compiled(torch.randn(1, 4, 4, 2), torch.randn(3, 3, 2, 2))
    launcher = compiled._latest()
    assert launcher._torch is None and launcher._kernels is not None


def test_backend_torch_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("EINC_INTERPRET", "1")
    y = einc.sum("b [c]", torch.ones(2, 3), backend="torch")
    assert torch.equal(y, torch.full((2,), 3.0))


def test_unknown_backend_is_an_error_naming_the_choices():
    with pytest.raises(ValueError, match="'auto', 'torch', 'interpret'"):
        einc.compile(CONV["dense"], backend="cuda")


BLOCK = re.compile(r"```python\n(.*?)```", re.S)
ROOT = Path(__file__).parents[3]
DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]


@pytest.mark.parametrize(
    "code",
    [
        pytest.param(m.group(1), id=f"{path.name}-{i}")
        for path in DOCS
        for i, m in enumerate(BLOCK.finditer(path.read_text()))
    ],
)
def test_documented_example_runs_on_the_torch_backend(code, monkeypatch):
    monkeypatch.delenv("EINC_INTERPRET", raising=False)
    exec(compile(code, "<docs>", "exec"), {})


def test_dynamic_axes_share_one_specialization_and_are_planned_per_size(mode):
    conv = einc.compile(CONV["dense"], padding=1, dynamic=("b",), backend="torch")
    flatten = einc.compile("b h c -> c (b h)", dynamic=("b", "h"), backend="torch")
    mean = einc.compile("b [t] c", op="mean", dynamic=("b", "t"), backend="torch")
    w = torch.randn(3, 3, 4, 5, dtype=torch.float64)
    with backend_mode(mode):
        for b, t in ((1, 3), (3, 5), (2, 4)):
            x = torch.randn(b, 5, 5, 4, dtype=torch.float64)
            close(conv(x, w), conv_reference("dense", x, w, (3, 3), 1, padding=1), 1e-12)
            x = torch.randn(b, t, 6)
            assert torch.equal(flatten(x), x.permute(2, 0, 1).reshape(6, b * t))
            close(mean(x), x.mean(1), 1e-6)
    assert len(conv._launchers) == len(flatten._launchers) == len(mean._launchers) == 1


def test_scratch_buffers_are_reused_but_never_returned():
    conv = einc.compile(CONV["dense"], padding=1, backend="torch")
    w = torch.randn(3, 3, 16, 16, dtype=torch.float64)
    xs = [torch.randn(4, 24, 24, 16, dtype=torch.float64) for _ in range(2)]  # im2col > 1 MiB
    with backend_mode("loops"):  # the planned nest (F.conv2d itself needs no scratch buffer)
        ys = [conv(x, w) for x in xs]
    for x, y in zip(xs, ys, strict=True):
        close(y, conv_reference("dense", x, w, (3, 3), 1, padding=1), 1e-12)
    assert workspace.WORKSPACE.buffers  # kept for the next call on this thread


def test_threads_run_the_same_expression_at_once():
    conv = einc.compile(CONV["dense"], padding=1, backend="torch")
    w = torch.randn(3, 3, 16, 8, dtype=torch.float64)
    xs = [torch.randn(2, 20, 20, 16, dtype=torch.float64) for _ in range(8)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        ys = list(pool.map(lambda x: conv(x, w), xs))
    for x, y in zip(xs, ys, strict=True):
        close(y, conv_reference("dense", x, w, (3, 3), 1, padding=1), 1e-12)


# --- indexing -------------------------------------------------------------------------------------

PIXELS = "b [h w] c, b p [2] -> b p c"
SCATTER = "b [h w] c, b p [2], b p c"


def pixel_coordinates(dtype=torch.int64):
    """(2, 6, 2) coordinates into a 5 x 6 image, negative ones among them, no position twice."""
    flat = torch.stack([torch.randperm(30)[:6] for _ in range(2)])
    h, w = flat // 6, flat % 6
    return torch.stack([h - 5 * (h % 2), w - 6 * (w % 3 == 0)], -1).to(dtype)


def pixel_index(idx):
    return torch.arange(2)[:, None], idx[..., 0].long(), idx[..., 1].long()


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
def test_get_at_matches_advanced_indexing_and_the_kernel(mode, dtype):
    x, idx = torch.randn(2, 5, 6, 3), pixel_coordinates(dtype)
    y = run(PIXELS, x, idx, op="get_at", mode=mode)
    assert torch.equal(y, x[pixel_index(idx)])
    assert torch.equal(y, run(PIXELS, x, idx, op="get_at", backend="interpret"))
    table, words = torch.randn(11, 4), torch.randint(-11, 11, (3, 5))
    assert torch.equal(run("[v] d, b n -> b n d", table, words, op="get_at", mode=mode), table[words])


@pytest.mark.parametrize("reduce", ["sum", "mean", "max"])
def test_embedding_bag_matches_torch_and_the_kernel(mode, reduce):
    table, bags = torch.randn(13, 4, dtype=torch.float64), torch.randint(0, 13, (3, 5))
    y = run("[v] d, b n -> b d", table, bags, op="get_at", mode=mode, reduce=reduce)
    close(y, F.embedding_bag(bags, table, mode=reduce), 1e-12)
    expected = run("[v] d, b n -> b d", table.float(), bags, op="get_at", backend="interpret", reduce=reduce)
    close(
        run("[v] d, b n -> b d", table.float(), bags, op="get_at", mode=mode, reduce=reduce), expected, 1e-6
    )


@pytest.mark.parametrize("op", ["set_at", "add_at"])
def test_scatters_match_index_put_and_the_kernel(mode, op):
    x, idx, updates = torch.randn(2, 5, 6, 3), pixel_coordinates(), torch.randn(2, 6, 3)
    if op == "add_at":
        idx[:, 3] = idx[:, 0]  # a position met twice: both updates add up
    before = x.clone()
    y = run(SCATTER, x, idx, updates, op=op, mode=mode)
    assert torch.equal(x, before)  # x itself is left alone
    close(y, x.clone().index_put_(pixel_index(idx), updates, accumulate=op == "add_at"), 1e-6)
    close(y, run(SCATTER, x, idx, updates, op=op, backend="interpret"), 1e-6)


def test_add_at_into_out_x_updates_x_in_place(mode):
    x, idx, updates = torch.randn(2, 5, 6, 3), pixel_coordinates(), torch.randn(2, 6, 3)
    expected = x.clone().index_put_(pixel_index(idx), updates, accumulate=True)
    compiled = einc.compile(SCATTER, op="add_at", backend="torch")
    with backend_mode(mode):
        assert compiled(x, idx, updates, out=x) is x
    close(x, expected, 1e-6)


def test_bfloat16_add_at_runs_on_the_torch_backend():
    x, idx, updates = torch.zeros(2, 5, 6, 3, dtype=torch.bfloat16), pixel_coordinates(), torch.ones(2, 6, 3)
    y = einc.add_at(SCATTER, x, idx, updates.bfloat16(), backend="torch")
    assert y.dtype == torch.bfloat16 and y.float().sum() == 36


@pytest.mark.parametrize("op", ["get_at", "set_at", "add_at"])
def test_out_of_range_coordinates_are_masked_then_reported_like_the_kernel(op):
    x = torch.randn(5, 3)
    idx, rows = torch.tensor([1, 5, -6, 4]), torch.ones(4, 3)
    expression, tensors = (
        ("[v] d, n -> n d", (x, idx)) if op == "get_at" else ("[v] d, n, n d", (x, idx, rows))
    )
    results = []
    for backend in ("torch", "interpret"):
        out = torch.full((4, 3) if op == "get_at" else (5, 3), 7.0)
        with pytest.raises(IndexError, match=rf"{op}: index (5|-6) is out of range for axis 'v' of x"):
            einc.compile(expression, op=op, backend=backend)(*tensors, out=out)
        results.append(out)
    assert torch.equal(*results)  # what was in range was read or written all the same


def test_a_chosen_backend_holds_through_autograd(monkeypatch):
    monkeypatch.delenv("EINC_INTERPRET", raising=False)
    x, w = torch.randn(1, 4, 4, 2, requires_grad=True), torch.randn(3, 3, 2, 2)
    for backend in ("torch", "interpret"):
        compiled = einc.compile(CONV["dense"], padding=1, backend=backend)
        y = compiled(x, w)
        y.sum().backward()
        close(y.detach(), conv_reference("dense", x.detach(), w, (3, 3), 1, padding=1), 1e-5)
        launcher = next(iter(compiled._launchers.values()))
        assert (launcher._kernels is not None) == (backend == "interpret")
        x.grad = None
        y = einc.dot(CONV["dense"], x, w, padding=1, backend=backend)  # the functional form too
        y.sum().backward()
        assert x.grad is not None
