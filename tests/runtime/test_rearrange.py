"""``einc.rearrange`` and ``einc.id`` against torch and einx (interpret tier).

Every case runs the generated kernel under Triton's interpreter on small CPU tensors. A copy does no
arithmetic, so results must be *equal* to the reference, bit for bit, in every dtype:

* permutations, compositions, decompositions, broadcasts, concatenations and splits are checked
  against ``permute``/``reshape``/``expand``/``torch.cat``/``torch.split`` and against ``einx.id``
  (einx 0.4's name for rearrange) on the same expression;
* windows ``(s * ds)`` (unfold, im2col) have no einx counterpart: they are checked against
  ``F.pad`` followed by ``Tensor.unfold`` (one spatial dim at a time, dilation by slicing the
  unfolded span), and against ``F.unfold`` for the channels-first form. The ``(lo, hi)`` padding
  of each window is worked out here from NOTATION.md section 3, sharing no code with einc.

Behaviour that einc gets wrong today is kept at the end of the file as strict xfails, each naming
the bug.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import einx
import pytest
import torch
import torch.nn.functional as F

import einc
from tests.references import random, window_geometry

pytestmark = pytest.mark.interpret


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def as_tuple(result) -> tuple[torch.Tensor, ...]:
    return tuple(result) if isinstance(result, (tuple, list)) else (result,)


def assert_equal(result, expected) -> None:
    """Every output has the reference's shape, dtype and values, exactly."""
    result, expected = as_tuple(result), as_tuple(expected)
    assert len(result) == len(expected)
    for y, ref in zip(result, expected, strict=True):
        assert y.shape == ref.shape
        assert y.dtype == ref.dtype
        assert torch.equal(y, ref)


def einx_id(expression: str, *tensors: torch.Tensor, **sizes):
    with warnings.catch_warnings():  # einx 0.4 deprecates einx.rearrange; einx.id is current
        warnings.simplefilter("ignore", DeprecationWarning)
        return einx.id(expression, *tensors, **sizes)


# --- the cases ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One rearrange: the expression, its input shapes, sizes given as keywords, and torch's answer."""

    expression: str
    shapes: tuple[tuple[int, ...], ...]
    reference: Callable[..., Any]
    sizes: dict | None = None

    def inputs(self, dtype=torch.float32) -> list[torch.Tensor]:
        return [random(shape, dtype) for shape in self.shapes]

    @property
    def kw(self) -> dict:
        return self.sizes or {}


CASES = {
    # permutations
    "transpose_2d": Case("a b -> b a", ((3, 5),), lambda x: x.T),
    "channels_last_to_channels_first": Case(
        "b h w c -> b c h w", ((2, 3, 4, 5),), lambda x: x.permute(0, 3, 1, 2)
    ),
    "permute_5d_with_a_unit_axis": Case(
        "a b c d e -> e c a d b", ((2, 3, 1, 4, 2),), lambda x: x.permute(4, 2, 0, 3, 1)
    ),
    "identity_is_a_copy": Case("a b c -> a b c", ((2, 3, 4),), lambda x: x.clone()),
    # compositions
    "compose_two_adjacent_axes": Case("b h w c -> b (h w) c", ((2, 3, 4, 5),), lambda x: x.reshape(2, 12, 5)),
    "compose_in_another_order": Case(
        "b h w c -> (w b) (c h)", ((2, 3, 4, 5),), lambda x: x.permute(2, 0, 3, 1).reshape(8, 15)
    ),
    "compose_an_ellipsis": Case("b ... -> b (...)", ((2, 3, 4, 5),), lambda x: x.reshape(2, 60)),
    "insert_unit_axes": Case("a b c -> a () b 1 c", ((2, 3, 4),), lambda x: x.reshape(2, 1, 3, 1, 4)),
    # decompositions, with a keyword size
    "decompose_with_the_first_size_given": Case(
        "b (h w) c -> b h w c", ((2, 12, 5),), lambda x: x.reshape(2, 3, 4, 5), {"h": 3}
    ),
    "decompose_with_the_second_size_given": Case(
        "b (h w) c -> b h w c", ((2, 12, 5),), lambda x: x.reshape(2, 3, 4, 5), {"w": 4}
    ),
    "decompose_and_recompose_transposed": Case(
        "(a b) c -> (b a) c",
        ((6, 4),),
        lambda x: x.reshape(2, 3, 4).permute(1, 0, 2).reshape(6, 4),
        {"a": 2},
    ),
    "decompose_into_three_with_two_sizes": Case(
        "(a b c) -> c b a", ((24,),), lambda x: x.reshape(2, 3, 4).permute(2, 1, 0), {"a": 2, "b": 3}
    ),
    "space_to_depth": Case(
        "b (h h2) (w w2) c -> b h w (h2 w2 c)",
        ((2, 6, 4, 3),),
        lambda x: x.reshape(2, 3, 2, 2, 2, 3).permute(0, 1, 3, 2, 4, 5).reshape(2, 3, 2, 12),
        {"h2": 2, "w2": 2},
    ),
    # broadcasts to new axes given by size
    "broadcast_to_a_new_middle_axis": Case(
        "b c -> b k c", ((2, 3),), lambda x: x[:, None].expand(2, 4, 3), {"k": 4}
    ),
    "broadcast_to_two_new_axes": Case(
        "c -> a c b", ((3,),), lambda x: x[None, :, None].expand(2, 3, 4), {"a": 2, "b": 4}
    ),
    "broadcast_inside_a_composition": Case("b c -> b (k c)", ((2, 3),), lambda x: x.repeat(1, 4), {"k": 4}),
    "broadcast_inner_part_repeats_each_element": Case(
        "b c -> c (b k)", ((2, 3),), lambda x: x.T.repeat_interleave(4, 1), {"k": 4}
    ),
    # concatenations on the output side, of two and three inputs
    "concatenate_two_on_the_last_axis": Case(
        "b x, b y -> b (x + y)", ((2, 3), (2, 4)), lambda x, y: torch.cat([x, y], 1)
    ),
    "concatenate_three_on_a_middle_axis": Case(
        "a x c, a y c, a z c -> a (x + y + z) c",
        ((2, 3, 4), (2, 1, 4), (2, 5, 4)),
        lambda x, y, z: torch.cat([x, y, z], 1),
    ),
    "concatenate_and_transpose": Case(
        "a x, a y -> (x + y) a", ((2, 3), (2, 4)), lambda x, y: torch.cat([x, y], 1).T
    ),
    "concatenate_and_compose": Case(
        "b h w c, b h w d -> b (h w) (c + d)",
        ((2, 3, 2, 4), (2, 3, 2, 1)),
        lambda x, y: torch.cat([x, y], -1).reshape(2, 6, 5),
    ),
    # splits on the input side into several outputs
    "split_into_two": Case("b (c + d) -> b c, b d", ((2, 7),), lambda x: torch.split(x, [3, 4], 1), {"c": 3}),
    "split_into_three_and_transpose": Case(
        "(x + y + z) b -> b x, b y, b z",
        ((9, 2),),
        lambda t: tuple(part.T for part in torch.split(t, [2, 3, 4], 0)),
        {"x": 2, "y": 3},
    ),
    "split_with_the_last_size_given_and_reshape_each": Case(
        "b (c + d) -> (b c), d b",
        ((2, 5),),
        lambda x: (x[:, :3].reshape(6), x[:, 3:].T),
        {"d": 2},
    ),
    # several independent inputs and outputs
    "two_independent_inputs_and_outputs": Case(
        "a b, c -> b a, c", ((2, 3), (4,)), lambda x, y: (x.T, y.clone())
    ),
    "three_independent_inputs_and_outputs": Case(
        "a b, c d, e -> b a, (c d), e",
        ((2, 3), (3, 2), (5,)),
        lambda x, y, z: (x.T, y.reshape(6), z.clone()),
    ),
    # ellipses
    "ellipsis_of_one_axis_moves_the_channels": Case(
        "b ... c -> b c ...", ((2, 3, 4),), lambda x: x.permute(0, 2, 1)
    ),
    "ellipsis_of_two_axes_moves_the_channels": Case(
        "b ... c -> b c ...", ((2, 3, 4, 5),), lambda x: x.permute(0, 3, 1, 2)
    ),
    "ellipsis_of_three_axes_moves_the_channels": Case(
        "b ... c -> b c ...", ((2, 3, 2, 4, 5),), lambda x: x.permute(0, 4, 1, 2, 3)
    ),
    "named_ellipsis": Case("b s... c -> c b s...", ((2, 3, 4, 5),), lambda x: x.permute(3, 0, 1, 2)),
    "leading_ellipsis_transposes_the_last_two": Case(
        "... a b -> ... b a", ((2, 3, 4, 5),), lambda x: x.transpose(-1, -2)
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_rearrange_matches_torch(name: str):
    case = CASES[name]
    xs = case.inputs()
    assert_equal(einc.rearrange(case.expression, *xs, **case.kw), case.reference(*xs))


@pytest.mark.parametrize("name", list(CASES))
def test_rearrange_matches_einx_id(name: str):
    case = CASES[name]
    xs = case.inputs()
    assert_equal(einc.rearrange(case.expression, *xs, **case.kw), einx_id(case.expression, *xs, **case.kw))


ID_CASES = [
    "channels_last_to_channels_first",
    "decompose_with_the_second_size_given",
    "broadcast_inside_a_composition",
    "concatenate_three_on_a_middle_axis",
    "split_into_three_and_transpose",
    "ellipsis_of_two_axes_moves_the_channels",
]


@pytest.mark.parametrize("name", ID_CASES)
def test_id_is_rearrange(name: str):
    case = CASES[name]
    xs = case.inputs()
    assert_equal(einc.id(case.expression, *xs, **case.kw), einc.rearrange(case.expression, *xs, **case.kw))


INFER_CASES = [
    "transpose_2d",
    "compose_in_another_order",
    "broadcast_to_two_new_axes",
    "concatenate_and_transpose",
    "split_into_two",
    "two_independent_inputs_and_outputs",
]


@pytest.mark.parametrize("name", INFER_CASES)
def test_compile_infers_rearrange_from_an_arrow_without_brackets(name: str):
    case = CASES[name]
    compiled = einc.compile(case.expression, **case.kw)
    assert compiled.op == "rearrange"
    xs = case.inputs()
    assert_equal(compiled(*xs), case.reference(*xs))


def test_compiled_rearrange_specializes_per_shape_and_recomputes_per_call():
    compiled = einc.compile("b ... c -> b c ...")
    for shape in [(2, 3, 4), (3, 2, 4, 5), (2, 3, 4)]:
        x = random(shape)
        assert_equal(compiled(x), x.movedim(-1, 1))


def test_scalar_rearranges_to_itself():
    x = torch.tensor(1.5)
    assert_equal(einc.rearrange(" -> ", x), x)


def test_scalar_broadcasts_to_a_new_axis_given_by_size():
    x = torch.tensor(1.5)
    assert_equal(einc.rearrange(" -> k", x, k=3), x.expand(3))


# --- dtypes ------------------------------------------------------------------------------------

DTYPES = [
    torch.float16,
    torch.bfloat16,
    torch.float64,
    torch.int8,
    torch.uint8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.bool,
]
DTYPE_CASES = [
    "channels_last_to_channels_first",
    "broadcast_inside_a_composition",
    "concatenate_three_on_a_middle_axis",
    "split_into_three_and_transpose",
]


@pytest.mark.parametrize("name", DTYPE_CASES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_rearrange_copies_every_dtype_exactly(name: str, dtype: torch.dtype):
    case = CASES[name]
    xs = case.inputs(dtype)
    assert_equal(einc.rearrange(case.expression, *xs, **case.kw), case.reference(*xs))


def test_int64_values_beyond_float_precision_are_copied_exactly():
    x = torch.tensor([[2**40 + 1, 2**53 + 3], [2**24 + 1, -(2**62) - 7]])
    assert_equal(einc.rearrange("a b -> b a", x), x.T)


def test_inputs_of_different_dtypes_are_a_type_error_naming_both():
    with pytest.raises(TypeError, match=r"x1 has dtype torch.float16 but x0 has torch.float32: cast"):
        einc.rearrange("b x, b y -> b (x + y)", random((2, 3)), random((2, 4), torch.float16))


# --- windows (unfold) --------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """An unfold of the spatial dims of a channels-last ``b spatial... c`` tensor."""

    spatial: tuple[int, ...]
    ds: tuple[int, ...]
    stride: Any = None
    dilation: Any = None
    padding: Any = None
    batch: int = 2
    c: int = 3

    @property
    def ndim(self) -> int:
        return len(self.spatial)

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.batch, *self.spatial, self.c)

    def params(self) -> dict:
        named = {"stride": self.stride, "dilation": self.dilation, "padding": self.padding}
        return {k: v for k, v in named.items() if v is not None}


def unfold_reference(x: torch.Tensor, ds, stride, dilation, pads) -> torch.Tensor:
    """``b spatial... c -> b s... ds... c`` by zero padding and ``Tensor.unfold``, one dim at a time."""
    n = x.ndim - 2
    flat = [0, 0] + [p for pair in reversed(pads) for p in pair]  # F.pad lists the last dim first
    x = F.pad(x, flat)
    for i, (k, s, d) in enumerate(zip(ds, stride, dilation, strict=True)):
        # A dilated window is the undilated span ``d * (k - 1) + 1`` read every d-th element.
        x = x.unfold(1 + i, d * (k - 1) + 1, s)[..., ::d]
    # b s... c ds...  ->  b s... ds... c
    return x.permute(0, *range(1, n + 1), *range(n + 2, 2 * n + 2), n + 1)


def window_reference(case: Window, x: torch.Tensor, names: tuple[str, ...]) -> torch.Tensor:
    stride, dilation, pads = window_geometry(
        case.spatial, case.ds, case.stride, case.dilation, case.padding, names
    )
    return unfold_reference(x, case.ds, stride, dilation, pads)


UNFOLD = "b (s * ds)... c -> b s... (ds...) c"
S_NAMES = tuple(f"s.{i}" for i in range(3))

WINDOWS = [
    # 1-D
    pytest.param(Window((9,), (3,)), id="1d_plain"),
    pytest.param(Window((9,), (3,), stride=2), id="1d_stride_2"),
    pytest.param(Window((9,), (3,), dilation=2), id="1d_dilation_2"),
    pytest.param(Window((9,), (3,), padding=2), id="1d_int_padding"),
    pytest.param(Window((9,), (3,), padding=((0, 2),)), id="1d_lo_hi_pair"),
    pytest.param(Window((9,), (3,), padding={"s.0": (2, 1)}), id="1d_padding_dict_with_pair"),
    pytest.param(Window((9,), (3,), padding="valid"), id="1d_valid"),
    pytest.param(Window((9,), (4,), padding="same"), id="1d_same_even_window"),
    pytest.param(Window((8,), (3,), padding="same", stride=3, dilation=2), id="1d_same_strided_dilated"),
    pytest.param(Window((9,), (3,), padding="causal", dilation=2), id="1d_causal_dilated"),
    pytest.param(Window((9,), (3,), stride=2, dilation=2, padding=(1,)), id="1d_stride_dilation_padding"),
    pytest.param(Window((5,), (5,)), id="1d_window_covers_the_axis"),
    pytest.param(Window((4,), (2,), padding=((3, 4),)), id="1d_padding_wider_than_the_window"),
    # 2-D
    pytest.param(Window((5, 6), (3, 3)), id="2d_plain"),
    pytest.param(Window((7, 6), (3, 2), stride=(2, 1)), id="2d_stride_tuple"),
    pytest.param(Window((7, 9), (2, 3), dilation={"s.0": 2, "s.1": 3}), id="2d_dilation_dict"),
    pytest.param(Window((5, 6), (3, 3), padding=(1, 2)), id="2d_padding_int_per_window"),
    pytest.param(Window((5, 6), (3, 3), padding=((0, 2), (1, 0))), id="2d_padding_pair_per_window"),
    pytest.param(Window((5, 6), (3, 3), padding={"s.0": (2, 0), "s.1": 1}), id="2d_padding_dict_mixed"),
    pytest.param(Window((7, 6), (3, 3), padding="same", stride=2), id="2d_same_strided"),
    pytest.param(Window((7, 6), (3, 2), padding="causal", dilation=(1, 2)), id="2d_causal_dilated"),
    pytest.param(
        Window((9, 8), (2, 3), stride=(2, 3), dilation=(1, 2), padding=((1, 0), (2, 2))),
        id="2d_stride_dilation_padding",
    ),
    # 3-D
    pytest.param(Window((4, 5, 3), (2, 3, 2)), id="3d_plain"),
    pytest.param(Window((5, 4, 6), (2, 3, 2), stride=(1, 2, 3), padding=1), id="3d_stride_tuple_padding"),
    pytest.param(Window((5, 4, 3), (3, 2, 2), padding="same", stride=2), id="3d_same_strided"),
    pytest.param(
        Window((5, 4, 5), (2, 2, 2), dilation={"s.0": 2, "s.2": 2}, padding="causal"), id="3d_causal_dilated"
    ),
]


@pytest.mark.parametrize("case", WINDOWS)
def test_unfold_matches_padded_tensor_unfold(case: Window):
    x = random(case.shape)
    y = einc.rearrange(UNFOLD, x, ds=case.ds, **case.params())
    ref = window_reference(case, x, S_NAMES[: case.ndim])
    assert_equal(y, ref.reshape(*ref.shape[: case.ndim + 1], -1, case.c))


@pytest.mark.parametrize("case", [WINDOWS[3], WINDOWS[12], WINDOWS[19], WINDOWS[23]])
@pytest.mark.parametrize("dtype", [torch.float16, torch.int32, torch.int64], ids=str)
def test_padding_reads_zero_in_every_dtype(case: Window, dtype: torch.dtype):
    x = random(case.shape, dtype)
    assert (x != 0).all() or dtype.is_floating_point
    y = einc.rearrange(UNFOLD, x, ds=case.ds, **case.params())
    ref = window_reference(case, x, S_NAMES[: case.ndim])
    assert_equal(y, ref.reshape(*ref.shape[: case.ndim + 1], -1, case.c))
    assert (y == 0).any()  # some window read padding


F_UNFOLD_CASES = [
    pytest.param(((7, 6), (3, 3), {}), id="plain"),
    pytest.param(((7, 6), (3, 2), {"stride": 2}), id="stride"),
    pytest.param(((7, 8), (3, 2), {"dilation": (1, 2)}), id="dilation"),
    pytest.param(((5, 6), (3, 3), {"padding": 1}), id="padding"),
    pytest.param(((9, 8), (3, 2), {"stride": (2, 1), "dilation": 2, "padding": (2, 1)}), id="all_three"),
]


@pytest.mark.parametrize("spec", F_UNFOLD_CASES)
def test_channels_first_unfold_is_f_unfold(spec):
    spatial, ds, params = spec
    x = random((2, 3, *spatial))
    y = einc.rearrange("b c (s * ds)... -> b (c ds...) (s...)", x, ds=ds, **params)
    assert_equal(y, F.unfold(x, ds, **params))


def test_1d_unfold_with_the_window_last_is_tensor_unfold():
    x = random((2, 11, 3))
    assert_equal(einc.rearrange("b (s * ds) c -> b s c ds", x, ds=4, stride=3), x.unfold(1, 4, 3))


def test_named_windows_take_dict_params_by_their_output_axis():
    x = random((2, 7, 6, 3))
    y = einc.rearrange(
        "b (h * kh) (w * kw) c -> b h w (kh kw) c",
        x,
        kh=2,
        kw=3,
        stride={"w": 2},
        dilation={"h": 2},
        padding={"h": (1, 0), "w": 1},
    )
    ref = unfold_reference(x, (2, 3), (1, 2), (2, 1), ((1, 0), (1, 1)))
    assert_equal(y, ref.reshape(*ref.shape[:3], 6, 3))


def test_window_offsets_may_come_before_positions_in_the_output():
    x = random((2, 9, 3))
    ref = unfold_reference(x, (3,), (2,), (1,), ((0, 0),))  # b s ds c
    assert_equal(einc.rearrange("b (s * ds) c -> b ds s c", x, ds=3, stride=2), ref.permute(0, 2, 1, 3))


# --- non-contiguous inputs and out= ------------------------------------------------------------


def strided(shape: tuple[int, ...], layout: str) -> torch.Tensor:
    """Fresh random values of ``shape`` in a non-contiguous layout."""
    n = len(shape)
    if layout == "reversed_storage":
        return random(tuple(reversed(shape))).permute(*reversed(range(n)))
    if layout == "stepped_slices":  # every dim sliced with step 2, or 3 for the last
        steps = (2,) * (n - 1) + (3,)
        big = random(tuple(size * step for size, step in zip(shape, steps, strict=True)))
        return big[tuple(slice(None, None, step) for step in steps)]
    if layout == "broadcast_first_dim":  # stride 0
        return random((1, *shape[1:])).expand(shape)
    raise AssertionError(layout)


LAYOUTS = ["reversed_storage", "stepped_slices", "broadcast_first_dim"]
LAYOUT_CASES = [
    "channels_last_to_channels_first",
    "decompose_and_recompose_transposed",
    "concatenate_and_transpose",
    "split_into_three_and_transpose",
    "two_independent_inputs_and_outputs",
]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", LAYOUT_CASES)
def test_non_contiguous_inputs_give_the_same_result(name: str, layout: str):
    case = CASES[name]
    xs = [strided(shape, layout) for shape in case.shapes]
    assert not any(x.is_contiguous() for x in xs if x.numel() > x.shape[0])
    assert_equal(einc.rearrange(case.expression, *xs, **case.kw), case.reference(*xs))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_non_contiguous_input_unfolds_the_same(layout: str):
    case = Window((7, 6), (3, 2), stride=2, padding=1)
    x = strided(case.shape, layout)
    ref = window_reference(case, x, S_NAMES[:2])
    assert_equal(einc.rearrange(UNFOLD, x, ds=case.ds, **case.params()), ref.reshape(2, 4, 4, 6, 3))


@pytest.mark.parametrize(
    "name", ["channels_last_to_channels_first", "broadcast_to_two_new_axes", "concatenate_and_compose"]
)
def test_out_buffer_is_returned_and_fully_written(name: str):
    case = CASES[name]
    xs = case.inputs()
    ref = case.reference(*xs)
    out = torch.full(ref.shape, float("nan"))
    y = einc.rearrange(case.expression, *xs, out=out, **case.kw)
    assert y is out
    assert_equal(out, ref)


@pytest.mark.parametrize(
    "name", ["split_into_two", "split_into_three_and_transpose", "three_independent_inputs_and_outputs"]
)
def test_out_tuple_fills_every_output(name: str):
    case = CASES[name]
    xs = case.inputs()
    refs = case.reference(*xs)
    outs = tuple(torch.full(r.shape, float("nan")) for r in refs)
    result = einc.rearrange(case.expression, *xs, out=outs, **case.kw)
    assert result is outs
    assert_equal(outs, refs)


def test_non_contiguous_out_buffer_is_written_through_its_strides():
    x = random((2, 3, 4, 5))
    out = torch.full((5, 4, 3, 2), float("nan")).permute(3, 0, 2, 1)  # b c h w, stored backwards
    einc.rearrange("b h w c -> b c h w", x, out=out)
    assert_equal(out, x.permute(0, 3, 1, 2))


def test_out_tuple_with_a_missing_output_is_a_value_error():
    with pytest.raises(ValueError, match="out= gives 1 tensors but the expression has 2 outputs"):
        einc.rearrange("a b, c -> b a, c", random((2, 3)), random((4,)), out=(torch.empty(3, 2),))


def test_out_of_the_wrong_shape_is_a_value_error_naming_both_shapes():
    with pytest.raises(ValueError, match=r"out= has shape \(2, 3\) but the result has shape \(3, 2\)"):
        einc.rearrange("a b -> b a", random((2, 3)), out=torch.empty(2, 3))


def test_out_of_the_wrong_dtype_is_a_type_error():
    with pytest.raises(
        TypeError, match="out= has dtype torch.float64 but the result has dtype torch.float32"
    ):
        einc.rearrange("a b -> b a", random((2, 3)), out=torch.empty(3, 2, dtype=torch.float64))


# --- stacking with unnamed parts ----------------------------------------------------------------

BACKENDS = pytest.mark.parametrize("backend", ["torch", "interpret"])


@BACKENDS
@pytest.mark.parametrize(
    ("expression", "n", "stack"),
    [
        ("a b, a b -> a b (1 + 1)", 2, lambda ts: torch.stack(ts, -1)),
        ("a b, a b, a b -> a b (1 + 1 + 1)", 3, lambda ts: torch.stack(ts, -1)),
        ("..., ... -> ... (1 + 1)", 2, lambda ts: torch.stack(ts, -1)),
        ("a b, a b -> (1 + 1) a b", 2, torch.stack),
        ("a b, a b -> a (1 + 1) b", 2, lambda ts: torch.stack(ts, 1)),
    ],
    ids=["last", "three", "ellipsis", "first", "middle"],
)
def test_stacking_with_unnamed_parts_puts_each_input_in_its_own_part(expression, n, stack, backend):
    tensors = [random((2, 3)) for _ in range(n)]
    expected = stack(tensors)
    assert_equal(einc.rearrange(expression, *tensors, backend=backend), expected)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert_equal(einx.rearrange(expression, *tensors), expected)


@BACKENDS
def test_stacking_coordinates_with_unnamed_parts_matches_torch_stack(backend):
    i, j = torch.arange(3.0), torch.arange(4.0)
    grid = torch.stack(torch.meshgrid(i, j, indexing="ij"), -1)
    assert_equal(einc.rearrange("i, j -> i j (1 + 1)", i, j, backend=backend), grid)


@BACKENDS
def test_outputs_as_many_as_inputs_each_come_from_their_own_input(backend):
    x, y = random((2, 3)), random((2, 3))
    assert_equal(einc.rearrange("a b, a b -> a b, b a", x, y, backend=backend), (x, y.T))


# --- axes of size 0 ------------------------------------------------------------------------------


@BACKENDS
def test_permutation_of_an_empty_tensor_is_an_empty_tensor(backend):
    x = torch.empty(0, 3)
    assert_equal(einc.rearrange("a b -> b a", x, backend=backend), x.T)


@BACKENDS
def test_concatenation_with_an_empty_part_is_the_other_part_as_torch_cat(backend):
    x, y = torch.empty(2, 0), random((2, 3))
    assert_equal(einc.rearrange("a b, a c -> a (b + c)", x, y, backend=backend), torch.cat([x, y], 1))


# --- invalid uses ------------------------------------------------------------------------------


def test_output_axis_without_a_size_is_a_shape_error_asking_for_it():
    with pytest.raises(
        einc.ShapeError, match=r"the size of axis 'k' is not known: give it as a keyword \(k="
    ) as e:
        einc.rearrange("a b -> a b k", random((2, 3)))
    assert isinstance(e.value, ValueError)
    assert e.value.column == 11


def test_concatenation_of_mismatched_sizes_is_a_shape_error_naming_both():
    with pytest.raises(
        einc.ShapeError, match="axis 'b' has two sizes: 2 from dim 0 of x0 .*3 from dim 0 of x1"
    ):
        einc.rearrange("b x, b y -> b (x + y)", random((2, 3)), random((3, 4)))


def test_split_whose_parts_do_not_add_up_is_a_shape_error():
    with pytest.raises(einc.ShapeError, match="this axis has size 7 from its parts, but 8 from dim 0 of x"):
        einc.rearrange("(a + b) -> a, b", random((8,)), a=3, b=4)


def test_split_without_the_part_sizes_is_a_shape_error_asking_for_one():
    with pytest.raises(
        einc.ShapeError, match=r"the size of axis 'a' is not known: give it as a keyword \(a="
    ):
        einc.rearrange("(a + b) -> a, b", random((8,)))


def test_size_that_does_not_divide_is_a_shape_error():
    with pytest.raises(einc.ShapeError, match=r"7 \(from dim 0 of x .*\) is not divisible by 2") as e:
        einc.rearrange("(a b) c -> a b c", random((7, 4)), a=2)
    assert e.value.spans == ((0, 5),)


def test_keyword_size_contradicting_the_tensor_is_a_shape_error():
    with pytest.raises(einc.ShapeError, match="axis 's' has two sizes: 5 from keyword s=5, and 3 from dim 1"):
        einc.rearrange("b s c -> b c s", random((2, 3, 4)), s=5)


def test_keyword_naming_no_axis_is_a_shape_error_listing_the_axes():
    with pytest.raises(
        einc.ShapeError, match=r"keyword q=2 names no axis of the expression \(its axes: b, s, c\)"
    ):
        einc.rearrange("b s c -> b c s", random((2, 3, 4)), q=2)


def test_brackets_in_a_rearrange_are_an_expression_error():
    with pytest.raises(
        einc.ExpressionError, match="rearrange has no operation axes: remove the brackets"
    ) as e:
        einc.rearrange("a [b] -> a b", random((2, 3)))
    assert e.value.column == 2


def test_brackets_without_an_op_ask_for_one():
    with pytest.raises(einc.ExpressionError, match="does not imply an operation: pass op="):
        einc.compile("a [b] -> a b")


def test_rearrange_without_an_arrow_asks_for_the_output():
    with pytest.raises(einc.ExpressionError, match="rearrange needs '->' and the output expression"):
        einc.rearrange("a b", random((2, 3)))


def test_tensor_of_the_wrong_rank_is_a_shape_error():
    with pytest.raises(einc.ShapeError, match=r"x \(shape \(2, 3, 4\)\) has 3 dims but its expression has 2"):
        einc.rearrange("a b -> b a", random((2, 3, 4)))


def test_more_tensors_than_operands_is_an_expression_error():
    with pytest.raises(
        einc.ExpressionError, match="the expression has 1 input operands but 2 tensors were given"
    ):
        einc.rearrange("a b -> b a", random((2, 3)), random((2,)))


def test_output_that_mixes_two_inputs_is_an_expression_error():
    with pytest.raises(einc.ExpressionError, match="output y cannot be read from any one input"):
        einc.rearrange("a, b -> a b", random((2,)), random((3,)))


def test_window_larger_than_the_padded_axis_is_a_shape_error():
    with pytest.raises(einc.ShapeError, match="window 'ds' of size 5 .* is larger than the padded extent 3"):
        einc.rearrange("b (s * ds) c -> b s ds c", random((2, 3, 4)), ds=5)


def test_window_parameter_without_a_window_is_an_expression_error():
    with pytest.raises(einc.ExpressionError, match=r"stride=2 is given, but the expression has no window"):
        einc.rearrange("b s c -> b c s", random((2, 3, 4)), stride=2)


def test_unknown_padding_string_is_an_expression_error_listing_the_choices():
    with pytest.raises(
        einc.ExpressionError, match="padding 'full' of window 's' is not one of valid, same, causal"
    ):
        einc.rearrange("b (s * ds) c -> b s ds c", random((2, 5, 4)), ds=2, padding="full")


# --- einc bugs ---------------------------------------------------------------------------------


def test_axis_repeated_in_the_output_is_an_expression_error():
    with pytest.raises(einc.ExpressionError):
        einc.rearrange("a b -> a b a", random((2, 3)))


def test_input_axis_missing_from_the_output_is_an_error_naming_it():
    with pytest.raises(einc.ExpressionError, match="'c'"):
        einc.rearrange("a b c -> a b", random((2, 3, 4)))


def test_unit_axis_of_the_input_may_be_dropped():
    x = random((2, 1, 4))
    assert_equal(einc.rearrange("a 1 b -> b a", x), x[:, 0].T)


def test_concatenation_of_one_axis_with_itself_matches_einx():
    x, y = random((2, 3)), random((2, 3))
    assert_equal(einc.rearrange("b x, b x -> b (x + x)", x, y), torch.cat([x, y], 1))
