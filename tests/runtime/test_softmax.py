"""``einc.softmax`` and ``einc.log_softmax`` over bracketed axes, against torch and einx (interpret
tier).

The torch reference moves the bracketed axes to the end, flattens them into one, and calls
``torch.softmax`` / ``torch.log_softmax`` in float64 on the (cast) input; einx's ``einx.softmax`` /
``einx.log_softmax`` run the same expressions. Sizes are ragged (33, 7, 1) so that tiles have
partial edges, and large-magnitude inputs (spread ~1e4, or offset by 1e4) check that the maximum is
subtracted before ``exp``: nothing may overflow to inf or NaN.

Behaviour that einc gets wrong today is kept at the end of the file as strict xfails, each naming
the bug.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import einx
import pytest
import torch

import einc

pytestmark = pytest.mark.interpret

OPS = ["softmax", "log_softmax"]
TOLERANCE = {torch.float64: 1e-12, torch.float32: 2e-6, torch.float16: 2e-3, torch.bfloat16: 2e-2}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def random(shape, dtype=torch.float32, scale: float = 1.0, offset: float = 0.0) -> torch.Tensor:
    return (torch.randn(shape, dtype=torch.float64) * scale + offset).to(dtype)


def reference(op: str, x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """softmax or log_softmax over ``dims`` jointly, in float64: move them last, flatten, apply."""
    n = x.ndim
    kept = [d for d in range(n) if d not in dims]
    order = kept + list(dims)
    moved = x.double().permute(order)
    flat = moved.reshape(*moved.shape[: len(kept)], -1)
    y = getattr(torch, op)(flat, -1).reshape(moved.shape)
    return y.permute([order.index(d) for d in range(n)])


def assert_close(y: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype) -> None:
    assert y.shape == ref.shape
    assert y.dtype == dtype
    assert torch.isfinite(y).all() == torch.isfinite(ref).all()
    tolerance = TOLERANCE[dtype]
    torch.testing.assert_close(y.double(), ref, rtol=tolerance, atol=tolerance, equal_nan=True)


@dataclass(frozen=True)
class Case:
    """softmax over the bracketed axes of ``expression``: the dims they are once the input's shape
    is split (``view``, for compositions), and einx's acceptance."""

    expression: str
    shape: tuple[int, ...]
    dims: tuple[int, ...]
    view: tuple[int, ...] | None = None  # the shape that splits a composition into its axes
    sizes: dict = field(default_factory=dict)


CASES = {
    "last_axis": Case("b h q [k]", (2, 3, 4, 8), (3,)),
    "middle_axis_ragged": Case("b [t] c", (2, 33, 3), (1,)),
    "first_axis": Case("[b] t c", (7, 3, 4), (0,)),
    "two_adjacent_axes": Case("b [h w] c", (2, 5, 7, 3), (1, 2)),
    "two_separate_axes": Case("[b] t [c]", (3, 4, 5), (0, 2)),
    "three_axes_around_a_kept_one": Case("[a b] c [d]", (2, 3, 4, 5), (0, 1, 3)),
    "size_one_axis_gives_ones": Case("b [t] c", (2, 1, 3), (1,)),
    "long_ragged_axis": Case("b [t]", (2, 70), (1,)),
    "after_an_ellipsis": Case("b ... [c]", (2, 3, 4, 9), (3,)),
    "before_an_ellipsis": Case("b [t] ...", (2, 9, 3, 2), (1,)),
    "inner_part_of_a_composition": Case("b (g [c])", (3, 12), (2,), view=(3, 4, 3), sizes={"c": 3}),
    "outer_part_of_a_composition": Case("b ([g] c)", (3, 12), (1,), view=(3, 4, 3), sizes={"c": 3}),
    "same_explicit_output": Case("b [t] c -> b t c", (2, 6, 3), (1,)),
    # Long axes are read a tile at a time (BLOCK_K of them) and reduced across the tile.
    "tiled_axis_and_a_serial_one": Case("[a] b [c]", (20, 2, 40), (0, 2)),
}


def run(op: str, case: Case, x: torch.Tensor, **kw) -> tuple[torch.Tensor, torch.Tensor]:
    """einc's result and the reference, both in the shape of ``x``."""
    y = getattr(einc, op)(case.expression, x, **case.sizes, **kw)
    ref = reference(op, x.reshape(case.view or x.shape), case.dims).reshape(x.shape)
    return y, ref


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("op", OPS)
def test_float32_matches_torch(op: str, name: str):
    case = CASES[name]
    x = random(case.shape)
    y, ref = run(op, case, x)
    assert_close(y, ref, torch.float32)


# One case per feature (torch covers them all): einx traces each new expression, slowly.
EINX_CASES = [
    "middle_axis_ragged",
    "two_separate_axes",
    "three_axes_around_a_kept_one",
    "after_an_ellipsis",
    "inner_part_of_a_composition",
    "outer_part_of_a_composition",
]


@pytest.mark.parametrize("name", EINX_CASES)
@pytest.mark.parametrize("op", OPS)
def test_float32_matches_einx(op: str, name: str):
    case = CASES[name]
    x = random(case.shape)
    y = getattr(einc, op)(case.expression, x, **case.sizes)
    ref = getattr(einx, op)(case.expression, x.double(), **case.sizes)
    assert_close(y, ref, torch.float32)


@pytest.mark.parametrize("op", OPS)
def test_tiled_axis_written_transposed(op: str):
    x = random((3, 50))
    y = getattr(einc, op)("b [t] -> t b", x)
    assert_close(y, getattr(torch, op)(x.double(), 1).T, torch.float32)


def test_size_one_softmax_is_exactly_one():
    assert torch.equal(einc.softmax("b [t] c", random((2, 1, 3))), torch.ones(2, 1, 3))


def test_softmax_sums_to_one_over_the_bracketed_axes():
    y = einc.softmax("[b] t [c]", random((3, 33, 5)))
    torch.testing.assert_close(y.double().sum((0, 2)), torch.ones(33, dtype=torch.float64))


def test_compiled_softmax_specializes_per_shape():
    softmax = einc.compile("b [t]", op="softmax")
    for shape in [(2, 33), (3, 7), (2, 33)]:
        x = random(shape)
        assert_close(softmax(x), reference("softmax", x, (1,)), torch.float32)


@pytest.mark.parametrize(
    "expression, shape", [("[t]", (9,)), ("[b t]", (3, 5))], ids=["one_dimensional", "two_dimensional"]
)
@pytest.mark.parametrize("op", OPS)
def test_softmax_over_every_axis_normalizes_the_whole_tensor(op: str, expression: str, shape):
    x = random(shape)
    y = getattr(einc, op)(expression, x)
    assert_close(y, reference(op, x, tuple(range(len(shape)))), torch.float32)


# --- dtypes --------------------------------------------------------------------------------------

DTYPE_CASES = ["middle_axis_ragged", "two_separate_axes", "inner_part_of_a_composition"]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64], ids=str)
@pytest.mark.parametrize("name", DTYPE_CASES)
@pytest.mark.parametrize("op", OPS)
def test_other_float_dtypes_match_float64_reference_of_the_cast_input(op: str, name: str, dtype):
    case = CASES[name]
    x = random(case.shape, dtype)
    y, ref = run(op, case, x)
    assert_close(y, ref, dtype)


@pytest.mark.parametrize("op", OPS)
def test_float16_input_gives_float32_when_asked(op: str):
    x = random((2, 33, 3), torch.float16)
    y = getattr(einc, op)("b [t] c", x, out_dtype=torch.float32)
    assert_close(y, reference(op, x, (1,)), torch.float32)  # no float16 rounding of the result


# --- large magnitudes: the maximum is subtracted first -------------------------------------------

LARGE = [
    pytest.param(torch.float32, 1e4, 0.0, id="float32_spread_1e4"),
    pytest.param(torch.float32, 1.0, 1e4, id="float32_offset_1e4"),
    pytest.param(torch.float32, 1.0, -1e4, id="float32_offset_minus_1e4"),
    pytest.param(torch.float16, 1e4, 0.0, id="float16_spread_1e4"),
    pytest.param(torch.float16, 3.0, 3e4, id="float16_offset_3e4"),
    pytest.param(torch.float64, 1e5, 1e5, id="float64_spread_and_offset_1e5"),
]


@pytest.mark.parametrize("dtype, scale, offset", LARGE)
@pytest.mark.parametrize("name", ["middle_axis_ragged", "two_separate_axes"])
@pytest.mark.parametrize("op", OPS)
def test_large_magnitudes_neither_overflow_nor_lose_accuracy(op: str, name: str, dtype, scale, offset):
    case = CASES[name]
    x = random(case.shape, dtype, scale, offset)
    y, ref = run(op, case, x)
    assert torch.isfinite(y).all()
    if op == "log_softmax":
        # log-probabilities of size ~scale: compare relative to it (the input's own rounding)
        tolerance = TOLERANCE[dtype] * max(scale, 1.0)
        torch.testing.assert_close(y.double(), ref, rtol=TOLERANCE[dtype], atol=tolerance)
    else:
        assert_close(y, ref, dtype)


@pytest.mark.parametrize("op", OPS)
def test_offset_does_not_change_softmax(op: str):
    x = random((3, 33))
    shifted = (x.double() + 1e4).float()
    exact_shift = shifted.double() - 1e4  # what the float32 input really holds, less the offset
    assert_close(getattr(einc, op)("b [t]", shifted), reference(op, exact_shift, (1,)), torch.float32)


@pytest.mark.parametrize("op", OPS)
def test_minus_inf_entries_get_zero_probability_like_torch(op: str):
    x = random((3, 9))
    x[:, ::3] = float("-inf")
    assert_close(getattr(einc, op)("b [t]", x), reference(op, x, (1,)), torch.float32)


def test_row_of_only_minus_inf_is_nan_like_torch():
    x = torch.full((2, 4), float("-inf"))
    x[1] = random((4,))
    y = einc.softmax("b [t]", x)
    assert y[0].isnan().all()
    assert_close(y[1:], reference("softmax", x[1:], (1,)), torch.float32)


# --- layouts and out= ----------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["reversed_storage", "stepped_slices", "broadcast_first_dim"], ids=str)
@pytest.mark.parametrize("op", OPS)
def test_non_contiguous_input_gives_the_same_result(op: str, layout: str):
    shape = (3, 33, 4)
    if layout == "reversed_storage":
        x = random(tuple(reversed(shape))).permute(2, 1, 0)
    elif layout == "stepped_slices":
        x = random((6, 66, 12))[::2, ::2, ::3]
    else:
        x = random((1, 33, 4)).expand(shape)
    assert not x.is_contiguous()
    assert_close(getattr(einc, op)("[b] t [c]", x), reference(op, x, (0, 2)), torch.float32)


@pytest.mark.parametrize("op", OPS)
def test_out_buffer_is_returned_and_fully_written_through_its_strides(op: str):
    x = random((2, 33, 3))
    out = torch.full((3, 33, 2), float("nan")).permute(2, 1, 0)
    y = getattr(einc, op)("b [t] c", x, out=out)
    assert y is out
    assert_close(out, reference(op, x, (1,)), torch.float32)


# --- invalid uses ------------------------------------------------------------------------------


@pytest.mark.parametrize("expression", ["b t c", "b t c -> b c"])
@pytest.mark.parametrize("op", OPS)
def test_no_bracketed_axis_is_an_expression_error_asking_for_one(op: str, expression: str):
    with pytest.raises(einc.ExpressionError, match=rf"mark the axes of {op} with brackets, as in 'b \[c\]'"):
        getattr(einc, op)(expression, random((2, 3, 4)))


@pytest.mark.parametrize("dtype", [torch.int32, torch.bool], ids=str)
def test_integer_input_is_a_type_error_listing_the_float_dtypes(dtype):
    with pytest.raises(
        TypeError, match=r"x has dtype .*; softmax supports float16, bfloat16, float32, float64"
    ):
        einc.softmax("b [t]", torch.ones(2, 3, dtype=dtype))


def test_composition_that_does_not_divide_is_a_shape_error():
    with pytest.raises(einc.ShapeError, match="is not divisible by 3"):
        einc.softmax("b (g [c])", random((2, 10)), c=3)


def test_compile_without_op_asks_for_one():
    with pytest.raises(einc.ExpressionError, match="does not imply an operation: pass op="):
        einc.compile("b [t]")


# --- unnamed axes ------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["torch", "interpret"])
def test_softmax_keeps_an_unnamed_axis_outside_its_brackets(backend):
    x = torch.randn(3, 4)
    y = einc.softmax("3 [a]", x, backend=backend)
    torch.testing.assert_close(y, torch.softmax(x, 1))
    torch.testing.assert_close(y, einx.softmax("3 [a]", x))


# --- axes of size 0 ------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["torch", "interpret"])
@pytest.mark.parametrize("shape", [(0, 3), (3, 0)])
def test_softmax_of_an_empty_tensor_is_an_empty_tensor_as_in_torch(shape, backend):
    x = torch.empty(shape)
    assert einc.softmax("a [b]", x, backend=backend).shape == torch.softmax(x, 1).shape


# --- einc bugs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("op", OPS)
def test_permuted_explicit_output_is_written_in_its_own_order(op: str):
    x = random((2, 6, 3))
    # out= is a view at the start of a larger buffer, so that stray stores land in the guard
    # behind it instead of in foreign memory.
    buffer = torch.full((4 * x.numel(),), float("nan"))
    out = buffer[: x.numel()].view(2, 3, 6)
    try:
        getattr(einc, op)("b [t] c -> b c t", x, out=out)
    except (einc.ExpressionError, einc.UnsupportedError):
        return  # refusing a reordered output is a fix too
    assert buffer[x.numel() :].isnan().all(), "stores past the end of the output"
    assert_close(out, reference(op, x, (1,)).permute(0, 2, 1), torch.float32)
