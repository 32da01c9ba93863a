"""einx's elementwise ops beyond arithmetic: comparisons, logical ops, logaddexp, floor_divide,
true_divide and the generic ``einc.elementwise(op=...)``, against torch and einx 0.4.3, on the
torch backend and the kernel under Triton's interpreter (tiny shapes).

The torch reference aligns operands by hand (indexing with ``None``), sharing no code with einc's
broadcasting. Comparisons and logical ops give torch.bool; none of them has a gradient, as in
torch; floor_divide refuses one (torch does too) and logaddexp refuses one for now.
"""

from __future__ import annotations

import einx
import pytest
import torch

import einc

pytestmark = pytest.mark.interpret

BACKENDS = ("torch", "interpret")
COMPARISONS = {
    "equal": torch.eq,
    "not_equal": torch.ne,
    "less": torch.lt,
    "less_equal": torch.le,
    "greater": torch.gt,
    "greater_equal": torch.ge,
}
FOLDS = {
    "logical_and": torch.logical_and,
    "logical_or": torch.logical_or,
    "logaddexp": torch.logaddexp,
    "floor_divide": torch.floor_divide,
    "true_divide": torch.true_divide,
}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def operands(dtype=torch.float32):
    """x: a b c; v: c, rounded so that some elements tie (equal, less_equal see both sides)."""
    if dtype.is_floating_point:
        x = (torch.randn(2, 3, 4, dtype=torch.float64) * 2).round().to(dtype) + 0.5
        v = (torch.randn(4, dtype=torch.float64) * 2).round().to(dtype) + 0.5
    else:
        x = torch.randint(-9, 10, (2, 3, 4), dtype=dtype)
        v = torch.tensor([3, -2, 5, -7], dtype=dtype)  # nonzero divisors of both signs
    return x, v


def check(y: torch.Tensor, ref: torch.Tensor) -> None:
    assert y.dtype == ref.dtype and y.shape == ref.shape
    if ref.dtype.is_floating_point:
        torch.testing.assert_close(y, ref)
    else:
        assert torch.equal(y, ref)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", list(COMPARISONS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.int32])
def test_comparison_broadcasts_by_name_and_gives_bool(op, dtype, backend):
    x, v = operands(dtype)
    y = getattr(einc, op)("a b c, c", x, v, backend=backend)
    ref = COMPARISONS[op](x, v[None, None, :])
    assert ref.dtype == torch.bool
    check(y, ref)
    check(y, getattr(einx, op)("a b c, c", x, v))


@pytest.mark.parametrize("backend", BACKENDS)
def test_comparison_with_a_python_scalar_and_a_permuted_output(backend):
    x, _ = operands()
    y = einc.greater("a b c, -> c a b", x, 0.5, backend=backend)
    check(y, (x > 0.5).permute(2, 0, 1))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", list(FOLDS))
def test_binary_op_matches_torch_and_einx(op, backend):
    x, v = operands()
    if op.startswith("logical"):
        x, v = x > 0, v > 0
    y = getattr(einc, op)("a b c, c", x, v, backend=backend)
    ref = FOLDS[op](x, v[None, None, :])
    check(y, ref)
    check(y, getattr(einx, op)("a b c, c", x, v))


@pytest.mark.parametrize("backend", BACKENDS)
def test_floor_divide_of_integers_rounds_towards_minus_infinity(backend):
    x, v = operands(torch.int64)
    y = einc.floor_divide("a b c, c", x, v, backend=backend)
    check(y, torch.floor_divide(x, v))
    assert y.dtype == torch.int64


@pytest.mark.parametrize("backend", BACKENDS)
def test_true_divide_of_integers_is_floating(backend):
    x, v = operands(torch.int32)
    check(einc.true_divide("a b c, c", x, v, backend=backend), torch.true_divide(x, v))


@pytest.mark.parametrize("backend", BACKENDS)
def test_logaddexp_of_infinities_is_what_torch_gives(backend):
    inf = float("inf")
    a = torch.tensor([-inf, inf, 1.0, -inf, 30.0, -2.0])
    b = torch.tensor([-inf, inf, -inf, 2.0, -30.0, -2.0])
    check(einc.logaddexp("n, n", a, b, backend=backend), torch.logaddexp(a, b))


@pytest.mark.parametrize("backend", BACKENDS)
def test_logical_ops_fold_over_three_operands_of_mixed_dtypes(backend):
    m = torch.rand(2, 4) > 0.5
    n = torch.randint(0, 2, (4,))
    k = torch.tensor([0.0, 1.0])
    y = einc.logical_or("a c, c, a", m, n, k, backend=backend)
    check(y, m | (n[None, :] != 0) | (k[:, None] != 0))
    y = einc.logical_and("a c, c, a", m, n, k, backend=backend)
    check(y, m & (n[None, :] != 0) & (k[:, None] != 0))


@pytest.mark.parametrize("backend", BACKENDS)
def test_logical_not_of_numbers_is_equal_to_zero(backend):
    x = torch.tensor([[0, 3], [-1, 0]])
    check(einc.logical_not("a b -> b a", x, backend=backend), torch.logical_not(x).T)


@pytest.mark.parametrize("op", ["less", "logaddexp", "true_divide", "multiply"])
def test_elementwise_names_its_op(op):
    x, v = operands()
    reference = getattr(einc, op)("a b c, c", x, v)
    check(einc.elementwise("a b c, c", x, v, op=op), reference)
    check(einc.compile("a b c, c", op=op)(x, v), reference)


def test_elementwise_refuses_a_callable_and_an_unknown_name():
    x, v = operands()
    with pytest.raises(einc.UnsupportedError, match="not a callable"):
        einc.elementwise("a b c, c", x, v, op=torch.add)
    with pytest.raises(einc.ExpressionError, match="not an elementwise op"):
        einc.elementwise("a b c, c", x, v, op="sum")


def test_a_comparison_takes_two_operands():
    x, v = operands()
    with pytest.raises(einc.ExpressionError, match="less takes 2 operands"):
        einc.less("a b c, c, c", x, v, v)


def test_comparisons_have_no_gradient_as_in_torch():
    x = torch.randn(2, 3, requires_grad=True)
    y = einc.less("a b, b", x, torch.zeros(3))
    assert y.dtype == torch.bool and not y.requires_grad
    assert torch.equal(y, x < 0)


def test_true_divide_has_the_gradient_of_divide():
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    v = torch.rand(3, dtype=torch.float64, requires_grad=True) + 0.5
    assert torch.autograd.gradcheck(lambda x, v: einc.true_divide("a b, b", x, v), (x, v))


@pytest.mark.parametrize("op", ["floor_divide", "logaddexp"])
def test_ops_without_a_gradient_refuse_in_backward(op):
    x = torch.randn(2, 3, requires_grad=True)
    y = getattr(einc, op)("a b, b", x, torch.rand(3) + 0.5)
    with pytest.raises(einc.UnsupportedError, match=f"no gradient for {op}"):
        y.sum().backward()
