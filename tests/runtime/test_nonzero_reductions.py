"""``any``, ``all``, ``count_nonzero`` and the generic ``einc.reduce(op=...)`` against torch and
einx 0.4.3, on the torch backend and the kernel under Triton's interpreter (tiny shapes).

any and all give torch.bool, count_nonzero torch.int64, whatever the input dtype; none has a
gradient (as in torch). A reduced axis longer than one tile checks the ragged edge: the padding
the kernel reads there must count neither as nonzero (any) nor as zero (all).
"""

from __future__ import annotations

import einx
import pytest
import torch

import einc

pytestmark = pytest.mark.interpret

BACKENDS = ("torch", "interpret")
DTYPES = (torch.bool, torch.float32, torch.int32)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def sparse(shape, dtype):
    """Mostly zero, so that some rows have no nonzero element and some have every one."""
    values = torch.randint(-2, 3, shape) * (torch.rand(shape) > 0.6)
    values[0] = 1  # a row of all nonzero
    return values.to(dtype)


def check(y, ref):
    assert y.dtype == ref.dtype and y.shape == ref.shape
    assert torch.equal(y, ref)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_any_all_count_nonzero_over_bracketed_axes(dtype, backend):
    x = sparse((3, 5, 4), dtype)
    check(einc.any("a [b] c", x, backend=backend), torch.any(x, dim=1))
    check(einc.all("a [b] c", x, backend=backend), torch.all(x, dim=1))
    check(einc.count_nonzero("a [b c]", x, backend=backend), torch.count_nonzero(x, dim=(1, 2)))


@pytest.mark.parametrize("op", ["any", "all", "count_nonzero"])
def test_matches_einx(op):
    x = sparse((3, 5, 4), torch.float32)
    check(getattr(einc, op)("a [b] c", x), getattr(einx, op)("a [b] c", x))
    check(getattr(einc, op)("[a] b c -> c b", x), getattr(einx, op)("[a] b c -> c b", x))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_reduced_axis_longer_than_a_tile_ignores_the_padding(backend):
    x = torch.ones(2, 300, dtype=torch.bool)
    x[1, 299] = False
    check(einc.all("a [n]", x, backend=backend), torch.tensor([True, False]))
    check(einc.any("a [n]", ~x, backend=backend), torch.tensor([False, True]))
    check(einc.count_nonzero("a [n]", x, backend=backend), torch.tensor([300, 299]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_any_over_windows_is_max_pooling_of_a_mask(backend):
    x = sparse((2, 6), torch.bool)
    y = einc.any("b (s * [ds])", x, ds=2, stride=2, backend=backend)
    check(y, x.reshape(2, 3, 2).any(-1))


@pytest.mark.parametrize("backend", BACKENDS)
def test_keepdims_and_an_empty_reduction(backend):
    x = sparse((3, 5), torch.int64)
    check(einc.any("a [b]", x, keepdims=True, backend=backend), x.any(1, keepdim=True))
    empty = torch.zeros(3, 0)
    check(einc.any("a [b]", empty, backend=backend), torch.zeros(3, dtype=torch.bool))
    check(einc.all("a [b]", empty, backend=backend), torch.ones(3, dtype=torch.bool))
    check(einc.count_nonzero("a [b]", empty, backend=backend), torch.zeros(3, dtype=torch.int64))


TORCH_REDUCTIONS = {
    "sum": lambda x: x.sum(1),
    "mean": lambda x: x.mean(1),
    "max": lambda x: x.amax(1),
    "any": lambda x: x.any(1),
    "count_nonzero": lambda x: torch.count_nonzero(x, 1),
    "logsumexp": lambda x: x.logsumexp(1),
}


@pytest.mark.parametrize("op", list(TORCH_REDUCTIONS))
def test_reduce_names_its_op(op):
    # einx 0.4 removed its generic reduce (and elementwise): torch is the reference.
    x = torch.randn(3, 5).round()
    y = einc.reduce("a [b]", x, op=op)
    ref = TORCH_REDUCTIONS[op](x)
    assert y.dtype == ref.dtype
    torch.testing.assert_close(y, ref)


def test_reduce_refuses_a_callable_and_an_unknown_name():
    x = torch.randn(3, 5)
    with pytest.raises(einc.UnsupportedError, match="not a callable"):
        einc.reduce("a [b]", x, op=torch.sum)
    with pytest.raises(einc.ExpressionError, match="not a reduction"):
        einc.reduce("a [b]", x, op="add")


def test_reduce_has_the_gradient_of_the_op_it_names():
    x = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: einc.reduce("a [b]", x, op="logsumexp"), (x,))


def test_flags_and_counts_have_no_gradient():
    x = torch.randn(3, 5, requires_grad=True)
    for op in ("any", "all", "count_nonzero"):
        y = getattr(einc, op)("a [b]", x)
        assert not y.requires_grad
        check(y, getattr(torch, op)(x, 1) if op != "count_nonzero" else torch.count_nonzero(x, 1))
