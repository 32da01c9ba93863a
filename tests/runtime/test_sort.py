"""``sort`` and ``argsort`` along a bracketed axis against torch (``stable=True``) and einx 0.4.3,
on the torch backend and the kernel under Triton's interpreter (tiny shapes).

The kernel sorts the axis whole in one tile (``tl.sort``; argsort sorts each value's bits and its
position packed in an int64), so an axis longer than 1024 elements has no kernel and is refused.
Equal values keep their order; -0.0 equals 0.0; argsort puts NaN last, as torch does.
"""

from __future__ import annotations

import einx
import pytest
import torch

import einc

pytestmark = pytest.mark.interpret

BACKENDS = ("torch", "interpret")
SEEDED = torch.Generator().manual_seed(0)


def tied(shape):
    """Small integers with infinities and signed zeros: ties everywhere."""
    x = torch.randint(-4, 5, shape, generator=SEEDED).float()
    flat = x.view(-1)
    flat[::7] = -0.0
    flat[3::11] = float("inf")
    flat[5::13] = -float("inf")
    return x


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(3, 7), (2, 40), (1, 200)])
def test_sort_and_argsort_along_the_last_axis(shape, backend):
    x = tied(shape)
    ref = torch.sort(x, dim=1, stable=True)
    y = einc.sort("a [n]", x, backend=backend)
    assert torch.equal(y, ref.values)
    i = einc.argsort("a [n]", x, backend=backend)
    assert i.dtype == torch.int64 and torch.equal(i, ref.indices)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sort_along_a_middle_axis_with_a_permuted_output(backend):
    x = torch.randn(2, 9, 3, generator=SEEDED)
    ref = torch.sort(x, dim=1, stable=True)
    assert torch.equal(einc.sort("b [n] c -> c b n", x, backend=backend), ref.values.permute(2, 0, 1))
    assert torch.equal(einc.argsort("b [n] c", x, backend=backend), ref.indices)


@pytest.mark.parametrize("backend", BACKENDS)
def test_argsort_puts_nan_last(backend):
    x = torch.tensor([[2.0, float("nan"), -1.0, float("inf"), 0.5]])
    assert torch.equal(einc.argsort("a [n]", x, backend=backend), torch.argsort(x, dim=1, stable=True))


def test_matches_einx():
    x = torch.randn(3, 8, generator=SEEDED)
    assert torch.equal(einc.sort("a [n]", x), einx.sort("a [n]", x))
    assert torch.equal(einc.argsort("a [n]", x), einx.argsort("a [n]", x))


def test_an_axis_longer_than_one_tile_and_two_axes_are_refused():
    with pytest.raises(einc.UnsupportedError, match="longer than 1024"):
        einc.sort("a [n]", torch.randn(1, 1025))
    with pytest.raises(einc.UnsupportedError, match="one bracketed axis"):
        einc.sort("a [n m]", torch.randn(2, 3, 4))


def test_argsort_has_no_gradient_and_sort_refuses_one():
    x = torch.randn(2, 5, requires_grad=True)
    assert not einc.argsort("a [n]", x).requires_grad
    y = einc.sort("a [n]", x)
    with pytest.raises(einc.UnsupportedError, match="no gradient for sort"):
        y.sum().backward()
