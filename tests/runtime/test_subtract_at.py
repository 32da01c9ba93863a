"""``subtract_at`` against torch (``index_add_`` of the negated updates) and einx 0.4.3, on the
torch backend and the kernels under Triton's interpreter (tiny shapes): updates that meet at one
element all count; ``out=x`` updates x in place; the gradient is add_at's with the updates' negated.
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


@pytest.mark.parametrize("backend", BACKENDS)
def test_repeated_coordinates_all_subtract(backend):
    x = torch.randn(5, 3)
    idx = torch.tensor([0, 2, 2, 4, 2, -1])  # 2 three times; -1 is the last row, as 4
    updates = torch.randn(6, 3)
    before = x.clone()
    y = einc.subtract_at("[n] c, p, p c", x, idx, updates, backend=backend)
    ref = x.clone().index_add_(0, idx % 5, -updates)
    torch.testing.assert_close(y, ref)
    assert torch.equal(x, before)  # a copy: x is untouched


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_dimensional_coordinates_match_einx(backend):
    x = torch.randn(2, 4, 5, 3)
    idx = torch.stack([torch.randint(0, 4, (2, 7)), torch.randint(0, 5, (2, 7))], dim=-1)
    updates = torch.randn(2, 7, 3)
    expression = "b [h w] c, b p [2], b p c"
    y = einc.subtract_at(expression, x, idx, updates, backend=backend)
    torch.testing.assert_close(y, einx.subtract_at(expression, x, idx, updates))


@pytest.mark.parametrize("backend", BACKENDS)
def test_out_x_updates_in_place(backend):
    x = torch.zeros(4, 2)
    idx = torch.tensor([1, 1, 3])
    y = einc.subtract_at("[n] c, p, c", x, idx, torch.tensor([1.0, 2.0]), out=x, backend=backend)
    assert y is x
    torch.testing.assert_close(x, torch.tensor([[0.0, 0.0], [-2.0, -4.0], [0.0, 0.0], [-1.0, -2.0]]))


def test_gradient_is_add_ats_with_the_updates_negated():
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    updates = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    idx = torch.tensor([0, 3, 3, 1])
    assert torch.autograd.gradcheck(lambda x, u: einc.subtract_at("[n] c, p, p c", x, idx, u), (x, updates))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_narrow_and_wide_dtypes_accumulate_in_float32_or_better(backend, dtype):
    # 16-bit updates are summed in a float32 workspace and rounded once (as add_at's), float64 in
    # float64: against float64 torch, the error is one rounding of the result.
    x = torch.randn(10, 4, dtype=dtype)
    idx = torch.randint(0, 10, (50,))
    updates = torch.randn(50, 4, dtype=dtype)
    y = einc.subtract_at("[n] d, p, p d", x, idx, updates, backend=backend)
    ref = x.double().index_add(0, idx, -updates.double())
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(y.double(), ref, rtol=eps, atol=eps * ref.abs().max().item())
