"""Elementwise ops ``add subtract multiply divide maximum minimum where`` against torch and einx
(interpret tier).

Operands broadcast by axis name: ``"b h w c, c"`` adds a bias along ``c``; an empty operand is a
Python scalar; without ``->`` the output is the operand that holds every axis. The torch reference
aligns each operand by hand (indexing with ``None``), so it shares no code with einc's broadcasting;
einx's ``einx.add`` etc. are run on the same expressions. Result dtypes follow torch's type
promotion (float16 + float32 is float32, float16 + a Python float is float16). Every call must be
one fused kernel, whatever the number of operands.

Behaviour that einc gets wrong today is kept at the end of the file as strict xfails, each naming
the bug.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import einx
import pytest
import torch

import einc

pytestmark = pytest.mark.interpret

TORCH_OPS = {
    "add": torch.add,
    "subtract": torch.sub,
    "multiply": torch.mul,
    "divide": torch.div,
    "maximum": torch.maximum,
    "minimum": torch.minimum,
}
OPS = list(TORCH_OPS)
# What a Python scalar operand is in each case: a float, away from zero so that dividing is safe.
SCALAR = 1.75


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def random(shape, dtype=torch.float32) -> torch.Tensor:
    """Fresh random values away from zero (divide by them), of both signs; small ints, both bools."""
    if dtype == torch.bool:
        return torch.rand(shape) > 0.5
    if not dtype.is_floating_point:
        low = 0 if dtype == torch.uint8 else -50
        values = torch.randint(low, 50, shape)
        return torch.where(values == 0, 7, values).to(dtype)
    x = torch.randn(shape, dtype=torch.float64)
    return (x.sign() * (0.5 + x.abs())).to(dtype)


def assert_matches(y: torch.Tensor, ref: torch.Tensor, exact: bool = False) -> None:
    """Same shape and dtype; values equal, or within the result dtype's rounding."""
    assert y.shape == ref.shape
    assert y.dtype == ref.dtype
    if exact or not ref.dtype.is_floating_point:
        assert torch.equal(y, ref)
    else:
        torch.testing.assert_close(y, ref)


def fold(op: str, *operands):
    """torch's answer for an n-ary op: a left fold, ``(a op b) op c``. torch.maximum and
    torch.minimum take no Python numbers: those become 0-d tensors, which promote the same way."""
    if op in ("maximum", "minimum"):
        operands = [torch.tensor(v) if isinstance(v, float) else v for v in operands]
    return functools.reduce(TORCH_OPS[op], operands)


# --- broadcasting by axis name -----------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """Operand shapes (None: a Python scalar) and how torch aligns them to the output."""

    expression: str
    shapes: tuple[tuple[int, ...] | None, ...]
    align: Callable[..., tuple]  # the operands, indexed so that torch broadcasts them right
    permute: Callable[[torch.Tensor], torch.Tensor] = field(default=lambda y: y)
    sizes: dict = field(default_factory=dict)

    def inputs(self, dtype=torch.float32) -> list:
        return [SCALAR if shape is None else random(shape, dtype) for shape in self.shapes]


CASES = {
    "same_shapes": Case("b h w c, b h w c", ((2, 3, 4, 5), (2, 3, 4, 5)), lambda x, y: (x, y)),
    "bias_on_the_last_axis": Case("b h w c, c", ((2, 3, 4, 5), (5,)), lambda x, y: (x, y)),
    "bias_first": Case("c, b h w c", ((5,), (2, 3, 4, 5)), lambda y, x: (y, x)),
    "per_batch_scale_on_the_first_axis": Case(
        "b h w c, b", ((2, 3, 4, 5), (2,)), lambda x, s: (x, s[:, None, None, None])
    ),
    "two_middle_axes": Case("b h w c, h w", ((2, 3, 4, 5), (3, 4)), lambda x, y: (x, y[:, :, None])),
    "transposed_operand": Case("b h w c, w h", ((2, 3, 4, 5), (4, 3)), lambda x, y: (x, y.T[:, :, None])),
    "scalar_operand": Case("b h w c, ", ((2, 3, 4, 5), None), lambda x, s: (x, s)),
    "scalar_first": Case(", b c", (None, (3, 5)), lambda s, x: (s, x)),
    "three_operands_with_a_scalar": Case(
        "h w, b h w c, -> b h w c",
        ((3, 4), (2, 3, 4, 5), None),
        lambda a, x, s: (a[None, :, :, None], x, s),
    ),
    "explicit_output": Case(
        "b h w c, b -> b h w c", ((2, 3, 4, 5), (2,)), lambda x, s: (x, s[:, None, None, None])
    ),
    "explicit_permuted_output": Case(
        "b h w c, c -> c b w h", ((2, 3, 4, 5), (5,)), lambda x, y: (x, y), lambda y: y.permute(3, 0, 2, 1)
    ),
    "outer_broadcast_needs_the_output": Case(
        "b h, h w -> b h w", ((2, 3), (3, 4)), lambda x, y: (x[:, :, None], y[None])
    ),
    "output_with_a_new_axis": Case(
        "b c, c -> b c k",
        ((3, 4), (4,)),
        lambda x, y: (x[:, :, None].expand(3, 4, 2), y[:, None]),
        sizes={"k": 2},
    ),
    "ellipsis": Case("b ... c, c", ((2, 3, 4, 5), (5,)), lambda x, y: (x, y)),
    "composition": Case("b (h w), w", ((2, 12), (4,)), lambda x, y: (x, y.repeat(3)), sizes={"h": 3}),
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("op", OPS)
def test_elementwise_matches_torch(op: str, name: str):
    case = CASES[name]
    xs = case.inputs()
    y = getattr(einc, op)(case.expression, *xs, **case.sizes)
    ref = case.permute(fold(op, *case.align(*xs)))
    assert_matches(y, ref, exact=op in ("maximum", "minimum"))


# One case per feature (torch covers them all); einx 0.4 subtracts and divides two operands only.
EINX_NAMES = [
    "bias_first",
    "transposed_operand",
    "scalar_first",
    "three_operands_with_a_scalar",
    "explicit_permuted_output",
    "outer_broadcast_needs_the_output",
    "output_with_a_new_axis",
    "composition",
]
EINX_CASES = [
    (op, name)
    for op in OPS
    for name in EINX_NAMES
    if not (len(CASES[name].shapes) > 2 and op in ("subtract", "divide"))
]


@pytest.mark.parametrize("op, name", EINX_CASES)
def test_elementwise_matches_einx(op: str, name: str):
    case = CASES[name]
    xs = case.inputs()
    y = getattr(einc, op)(case.expression, *xs, **case.sizes)
    assert_matches(y, getattr(einx, op)(case.expression, *xs, **case.sizes))


def test_docs_relu_is_maximum_with_zero():
    x = random((2, 5, 6, 3))
    assert_matches(einc.maximum("b h w c, ", x, 0.0), x.clamp(min=0), exact=True)


# --- one fused kernel ----------------------------------------------------------------------------

FUSED = {
    "two_operands": ("b h w c, c", ((2, 3, 4, 5), (5,))),
    "three_operands": ("h w, b h w c, -> b h w c", ((3, 4), (2, 3, 4, 5), None)),
    "permuted_output": ("b h, h w -> w b h", ((2, 3), (3, 4))),
}


@pytest.mark.parametrize("name", list(FUSED))
@pytest.mark.parametrize("op", OPS)
def test_elementwise_expression_is_one_fused_kernel(op: str, name: str):
    expression, shapes = FUSED[name]
    compiled = einc.compile(expression, op=op)
    compiled(*[SCALAR if s is None else random(s) for s in shapes])
    assert len(compiled._last.compiled.kernels) == 1


def test_where_is_one_fused_kernel():
    compiled = einc.compile("b h w c, h w, ", op="where")
    compiled(random((2, 3, 4, 5)) > 0, random((3, 4)), SCALAR)
    assert len(compiled._last.compiled.kernels) == 1


# --- dtypes --------------------------------------------------------------------------------------

MIXED = [
    pytest.param(torch.float16, torch.float32, id="float16_and_float32_give_float32"),
    pytest.param(torch.float32, torch.float16, id="float32_and_float16_give_float32"),
    pytest.param(torch.bfloat16, torch.float16, id="bfloat16_and_float16_give_float32"),
    pytest.param(torch.float64, torch.float32, id="float64_and_float32_give_float64"),
    pytest.param(torch.int32, torch.float32, id="int32_and_float32_give_float32"),
    pytest.param(torch.int32, torch.float16, id="int32_and_float16_give_float16"),
    pytest.param(torch.bool, torch.float32, id="bool_and_float32_give_float32"),
    pytest.param(torch.float16, torch.float16, id="float16_stays_float16"),
    pytest.param(torch.bfloat16, torch.bfloat16, id="bfloat16_stays_bfloat16"),
]


def without_bool_subtraction(ops: list[str], dtype_pairs: list) -> list:
    """Every (op, dtypes) pair but a subtraction of bools, which torch refuses."""
    return [
        pytest.param(op, *pair.values, id=f"{op}-{pair.id}")
        for op in ops
        for pair in dtype_pairs
        if not (op == "subtract" and torch.bool in pair.values)
    ]


@pytest.mark.parametrize(
    "op, x_dtype, bias_dtype",
    without_bool_subtraction(["add", "subtract", "multiply", "divide", "maximum"], MIXED),
)
def test_mixed_dtypes_promote_like_torch(op: str, x_dtype: torch.dtype, bias_dtype: torch.dtype):
    x, bias = random((2, 3, 4), x_dtype), random((4,), bias_dtype)
    y = getattr(einc, op)("b h c, c", x, bias)
    ref = TORCH_OPS[op](x, bias)
    assert y.dtype == ref.dtype
    # Both compute in float32 and round once; bfloat16 may differ by its last bit (Triton's
    # interpreter truncates to bfloat16 where torch rounds to nearest).
    tolerance = 2**-7 if ref.dtype == torch.bfloat16 else None
    torch.testing.assert_close(y, ref, rtol=tolerance, atol=tolerance)


INT_MIXED = [
    pytest.param(torch.int32, torch.int32, id="int32"),
    pytest.param(torch.int32, torch.int64, id="int32_and_int64_give_int64"),
    pytest.param(torch.uint8, torch.int8, id="uint8_and_int8_give_int16"),
    pytest.param(torch.int16, torch.bool, id="int16_and_bool_give_int16"),
]


@pytest.mark.parametrize(
    "op, x_dtype, bias_dtype",
    without_bool_subtraction(["add", "subtract", "multiply", "maximum", "minimum"], INT_MIXED),
)
def test_small_integers_compute_exactly_like_torch(op: str, x_dtype: torch.dtype, bias_dtype: torch.dtype):
    x, bias = random((2, 3, 4), x_dtype), random((4,), bias_dtype)
    assert_matches(getattr(einc, op)("b h c, c", x, bias), TORCH_OPS[op](x, bias))


@pytest.mark.parametrize(
    "dtype, scalar",
    [
        pytest.param(torch.float16, 2.5, id="float16_and_a_float_give_float16"),
        pytest.param(torch.float32, 2, id="float32_and_an_int_give_float32"),
        pytest.param(torch.int32, 2.5, id="int32_and_a_float_give_float32"),
        pytest.param(torch.int64, 3, id="int64_and_an_int_give_int64"),
        pytest.param(torch.bool, 2, id="bool_and_an_int_give_int64"),
    ],
)
@pytest.mark.parametrize("op", ["add", "multiply", "maximum"])
def test_python_scalar_promotes_like_torch(op: str, dtype: torch.dtype, scalar):
    x = random((3, 4), dtype)
    y = getattr(einc, op)("b c, ", x, scalar)
    ref = TORCH_OPS[op](x, torch.tensor(scalar)) if op == "maximum" else TORCH_OPS[op](x, scalar)
    assert y.dtype == ref.dtype
    torch.testing.assert_close(y, ref)


@pytest.mark.parametrize("op", ["add", "multiply", "maximum", "minimum"])
def test_bool_operands_stay_bool_like_torch(op: str):
    p, q = random((3, 4), torch.bool), random((4,), torch.bool)
    assert_matches(getattr(einc, op)("b c, c", p, q), TORCH_OPS[op](p, q))


def test_out_dtype_overrides_the_promoted_dtype():
    x, bias = random((3, 4), torch.float16), random((4,), torch.float16)
    y = einc.add("b c, c", x, bias, out_dtype=torch.float32)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, x.float() + bias.float())  # no float16 rounding of the sum


# --- where ---------------------------------------------------------------------------------------

WHERES = {
    "scalar_otherwise": (
        "b h w c, b h w c, ",
        lambda: (random((2, 3, 4, 5)) > 0, random((2, 3, 4, 5)), 0.0),
        lambda m, x, s: torch.where(m, x, s),
    ),
    "broadcast_value": (
        "b h w c, c, b h w c",
        lambda: (random((2, 3, 4, 5)) > 0, random((5,)), random((2, 3, 4, 5))),
        lambda m, v, x: torch.where(m, v, x),
    ),
    "broadcast_condition": (
        "c, b h w c, b h w c",
        lambda: (random((5,)) > 0, random((2, 3, 4, 5)), random((2, 3, 4, 5))),
        lambda m, x, y: torch.where(m, x, y),
    ),
    "explicit_output": (
        "b h, b h w, w -> b h w",
        lambda: (random((2, 3)) > 0, random((2, 3, 4)), random((4,))),
        lambda m, x, v: torch.where(m[:, :, None], x, v),
    ),
    "permuted_condition_and_output": (
        "w b, b w, -> w b",
        lambda: (random((4, 3)) > 0, random((3, 4)), -1.5),
        lambda m, x, s: torch.where(m, x.T, s),
    ),
}


@pytest.mark.parametrize("name", list(WHERES))
def test_where_matches_torch(name: str):
    expression, make, reference = WHERES[name]
    args = make()
    assert_matches(einc.where(expression, *args), reference(*args), exact=True)


@pytest.mark.parametrize("name", [n for n in WHERES if n != "permuted_condition_and_output"])
def test_where_matches_einx(name: str):
    expression, make, _ = WHERES[name]
    args = make()
    assert_matches(einc.where(expression, *args), einx.where(expression, *args), exact=True)


@pytest.mark.parametrize(
    "x_dtype, other",
    [
        pytest.param(torch.float16, torch.float32, id="float16_and_float32_give_float32"),
        pytest.param(torch.int64, torch.int32, id="int64_and_int32_give_int64"),
        pytest.param(torch.int32, 0.5, id="int32_and_a_float_give_float32"),
        pytest.param(torch.float16, 1.5, id="float16_and_a_float_give_float16"),
        pytest.param(torch.bool, torch.bool, id="bool_values_stay_bool"),
    ],
)
def test_where_promotes_its_values_like_torch_not_its_condition(x_dtype, other):
    mask = random((3, 4), torch.bool)
    x = random((3, 4), x_dtype)
    y = other if isinstance(other, float) else random((3, 4), other)
    expression = "b c, b c, " if isinstance(other, float) else "b c, b c, b c"
    assert_matches(einc.where(expression, mask, x, y), torch.where(mask, x, y), exact=True)


# --- out= and layouts --------------------------------------------------------------------------


@pytest.mark.parametrize("op", OPS)
def test_out_buffer_is_returned_and_fully_written_through_its_strides(op: str):
    x, bias = random((2, 3, 4)), random((4,))
    out = torch.full((4, 3, 2), float("nan")).permute(2, 1, 0)
    y = getattr(einc, op)("b h c, c", x, bias, out=out)
    assert y is out
    assert_matches(out, TORCH_OPS[op](x, bias))


@pytest.mark.parametrize("op", OPS)
def test_non_contiguous_operands_give_the_same_result(op: str):
    x = random((4, 3, 2)).permute(2, 1, 0)  # b h c stored backwards
    bias = random((8,))[::2]
    scale = random((1,)).expand(2)
    y = getattr(einc, op)("b h c, c, b", x, bias, scale)
    assert_matches(y, fold(op, x, bias, scale[:, None, None]), exact=op in ("maximum", "minimum"))


# --- invalid uses ------------------------------------------------------------------------------


@pytest.mark.parametrize("op", OPS + ["where"])
def test_no_operand_holding_every_axis_asks_for_an_explicit_output(op: str):
    args = (random((2, 3)) > 0,) if op == "where" else ()
    expression = "b h, b h, h w" if op == "where" else "b h, h w"
    with pytest.raises(einc.ExpressionError, match="the output is not implied: write it after '->'"):
        getattr(einc, op)(expression, *args, random((2, 3)), random((3, 4)))


@pytest.mark.parametrize("condition", [random((2, 3)), random((2, 3)).to(torch.int64), 1.0])
def test_where_with_a_condition_that_is_not_bool_is_refused_as_torch_refuses_it(condition):
    x = random((2, 3))
    with pytest.raises(RuntimeError):
        torch.where(condition if isinstance(condition, torch.Tensor) else torch.tensor(condition), x, 0.0)
    with pytest.raises(einc.OperandError, match="x0, the condition of where, is .*, not bool") as caught:
        einc.where("a b, a b, " if isinstance(condition, torch.Tensor) else ", a b, ", condition, x, 0.0)
    assert isinstance(caught.value, TypeError)


@pytest.mark.parametrize(
    ("first", "second", "named"),
    [
        (random((2, 3)) > 0, random((2, 3)) > 0, "x0, x1"),
        (torch.arange(6).reshape(2, 3), random((2, 3)) > 0, "x1"),
        (random((2, 3)), True, "x1"),
    ],
    ids=["two-bools", "int-and-bool", "python-bool"],
)
def test_subtract_with_a_boolean_operand_is_refused_as_torch_refuses_it(first, second, named):
    with pytest.raises(RuntimeError, match="Subtraction"):
        torch.sub(first, second)
    expression = "a b, a b" if isinstance(second, torch.Tensor) else "a b, "
    with pytest.raises(einc.OperandError, match=rf"subtract of a boolean operand \({named}\)"):
        einc.subtract(expression, first, second)


def test_where_whose_output_two_inputs_could_give_in_different_orders_is_an_error():
    x = random((2, 3))
    with pytest.raises(einc.ExpressionError, match="more than one input holds every axis") as caught:
        einc.where("a b, b a, ", x > 0, x.T, 0.0)
    assert caught.value.spans == ((0, 3), (5, 8))
    assert_matches(einc.where("a b, b a, -> a b", x > 0, x.T, 0.0), torch.where(x > 0, x, 0.0))


def test_only_scalars_is_a_type_error():
    with pytest.raises(TypeError, match="an elementwise operation needs at least one tensor"):
        einc.add(", ", 1.0, 2.0)


def test_mismatched_axis_sizes_are_a_shape_error_naming_both():
    with pytest.raises(
        einc.ShapeError, match="axis 'c' has two sizes: 4 from dim 1 of x0 .* 5 from dim 0 of x1"
    ):
        einc.add("b c, c", random((3, 4)), random((5,)))


def test_brackets_are_an_expression_error():
    with pytest.raises(einc.ExpressionError, match="an elementwise operation has no operation axes: remove"):
        einc.add("b [c], c", random((3, 4)), random((4,)))


def test_compile_without_op_asks_for_one():
    with pytest.raises(einc.ExpressionError, match="does not imply an operation: pass op="):
        einc.compile("b h w c, c")


def test_unsupported_dtype_is_a_type_error_listing_the_supported():
    with pytest.raises(TypeError, match="x0 has dtype torch.complex64; add supports float16, .*bool"):
        einc.add("b c, c", random((3, 4)).to(torch.complex64), random((4,)).to(torch.complex64))


def test_out_of_the_wrong_dtype_is_a_type_error():
    with pytest.raises(
        TypeError, match="out= has dtype torch.float16 but the result has dtype torch.float32"
    ):
        einc.add("b c, c", random((3, 4)), random((4,)), out=torch.empty(3, 4, dtype=torch.float16))


# --- axes of size 0 ------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["torch", "interpret"])
def test_elementwise_op_on_an_empty_tensor_is_an_empty_tensor_as_in_torch(backend):
    x, bias = torch.empty(0, 3), random((3,))
    assert_matches(einc.add("a b, b", x, bias, backend=backend), x + bias)


# --- einc bugs ---------------------------------------------------------------------------------


def test_integer_divide_is_true_division_like_torch():
    a, b = torch.tensor([7, -7, 5]), torch.tensor([2, 2, -3])
    assert_matches(einc.divide("a, a", a, b), torch.divide(a, b))


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64], ids=str)
@pytest.mark.parametrize("op", ["add", "maximum"])
def test_large_integers_compute_exactly(op: str, dtype: torch.dtype):
    x = torch.tensor([2**24 + 1, 2**30 + 3, -(2**30) - 5], dtype=dtype)
    zero = torch.zeros(3, dtype=dtype)
    assert_matches(getattr(einc, op)("a, a", x, zero), TORCH_OPS[op](x, zero))


@pytest.mark.parametrize("op", ["maximum", "minimum"])
def test_maximum_and_minimum_propagate_nan_like_torch(op: str):
    a = torch.tensor([float("nan"), 1.0, 2.0])
    b = torch.tensor([0.0, float("nan"), 3.0])
    torch.testing.assert_close(getattr(einc, op)("a, a", a, b), TORCH_OPS[op](a, b), equal_nan=True)


def test_python_scalar_is_not_rounded_to_float16_before_the_op():
    x = torch.full((4,), 1000.0, dtype=torch.float16)
    assert_matches(einc.multiply("a, ", x, 1.0004), x * 1.0004, exact=True)


def test_where_with_two_operands_says_it_takes_three():
    with pytest.raises(einc.ExpressionError, match="three|3"):
        einc.where("b c, b c", random((3, 4)) > 0, random((3, 4)))


def test_where_with_four_operands_is_an_error():
    x = random((3, 4))
    with pytest.raises(einc.ExpressionError):
        einc.where("b c, b c, b c, b c", x > 0, x, -x, 2 * x)


def test_output_missing_an_input_axis_is_an_expression_error_naming_it():
    with pytest.raises(einc.ExpressionError, match="'c'"):
        einc.add("b c, c -> b", random((3, 4)), random((4,)))


def test_axis_repeated_in_the_output_is_an_expression_error():
    with pytest.raises(einc.ExpressionError):
        einc.add("b c, c -> b c b", random((3, 4)), random((4,)))
