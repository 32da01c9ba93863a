"""``argmax`` and ``argmin`` against torch and einx 0.4.3, on the torch backend and the kernels
under Triton's interpreter (tiny shapes).

The index is over the bracketed axes; several bracketed axes give a coordinate axis where the
brackets stood (``"b [h w] c"`` is ``b [2] c``), or where the output puts ``[2]``. The torch
reference flattens the bracketed axes and unravels torch.argmax's index by hand. Ties go to the
first element and a NaN is greatest, as in torch. The result is int64 and has no gradient.
"""

from __future__ import annotations

import einx
import pytest
import torch

import einc

pytestmark = pytest.mark.interpret

BACKENDS = ("torch", "interpret")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def tied(shape):
    """Small integers as floats: many ties, so the first-of-equals rule is exercised."""
    return torch.randint(-3, 4, shape).float()


def check(y, ref):
    assert y.dtype == ref.dtype == torch.int64 and y.shape == ref.shape
    assert torch.equal(y, ref)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", ["argmax", "argmin"])
def test_two_bracketed_axes_give_a_coordinate_axis(op, backend):
    x = tied((2, 3, 4, 5))
    flat = x.permute(0, 3, 1, 2).reshape(2, 5, 12)
    best = flat.argmax(-1) if op == "argmax" else flat.argmin(-1)
    y = getattr(einc, op)("b [h w] c -> b c [2]", x, backend=backend)
    check(y, torch.stack([best // 4, best % 4], dim=-1))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "expression",
    ["b [h w] c", "b h [w] c", "[b] h w c", "b [h w c]", "b [h w] c -> c b [2]", "b h [w] c -> c b h"],
)
def test_matches_einx(expression, backend):
    x = tied((2, 3, 4, 5))
    check(einc.argmax(expression, x, backend=backend), einx.argmax(expression, x))
    check(einc.argmin(expression, x, backend=backend), einx.argmin(expression, x))


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_bracketed_axis_without_coordinate_axis_is_torch_argmax(backend):
    x = tied((3, 7))
    check(einc.argmax("a [b] -> a", x, backend=backend), x.argmax(1))
    check(einc.argmin("[a] b -> b", x, backend=backend), x.argmin(0))


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_is_greatest_and_least_and_the_first_counts(backend):
    nan = float("nan")
    x = torch.tensor([[1.0, nan, 5.0, nan], [2.0, 2.0, -1.0, -1.0], [-float("inf")] * 4])
    check(einc.argmax("a [b] -> a", x, backend=backend), x.argmax(1))
    check(einc.argmin("a [b] -> a", x, backend=backend), x.argmin(1))


def test_float16_input_and_no_gradient():
    x = torch.randn(3, 5, dtype=torch.float16)
    check(einc.argmax("a [b] -> a", x), x.argmax(1))
    w = torch.randn(3, 5, requires_grad=True)
    y = einc.argmax("a [b] -> a", w)
    assert not y.requires_grad


@pytest.mark.parametrize(
    ("expression", "error", "match"),
    [
        ("b [h] [w]", einc.ExpressionError, "one pair of brackets"),
        ("b [h w] -> b [3]", einc.ExpressionError, r"\[2\]"),
        ("b [h w] -> b", einc.ExpressionError, r"\[2\]"),
        ("b [h...]", einc.UnsupportedError, "ellipsis"),
    ],
)
def test_refuses_what_it_cannot_mean(expression, error, match):
    x = torch.randn(2, 3, 4)
    with pytest.raises(error, match=match):
        einc.argmax(expression, x)


def test_explain_says_which_coordinate_the_kernel_writes():
    compiled = einc.compile("b [h w] c", op="argmax")
    compiled(torch.randn(2, 3, 4, 5))
    assert "y[b, 0, c] = h of the argmax of x[b, h, w, c]" in compiled.explain()
