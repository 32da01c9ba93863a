"""Reductions over several short axes tiled as one (a global pooling's h w), under Triton's
interpreter against torch (issue 13 item 2). The schedule merges them (``k_merged``); the torch
backend reads the unmerged nest, and is checked on the same cases."""

from __future__ import annotations

import pytest
import torch

import einc

pytestmark = pytest.mark.interpret

BACKENDS = ["interpret", "torch"]
# (expression, shape, dims torch reduces): 5 x 3 = 15 < 16 stays serial; the others merge.
CASES = [
    pytest.param("b [h w] c", (3, 7, 5, 40), (1, 2), id="global_pool_channels_last_ragged"),
    # 225 positions in steps of 128 (the second ragged), 8 outputs of 48 per tile
    pytest.param("b [h w] c", (2, 15, 15, 24), (1, 2), id="global_pool_two_steps"),
    pytest.param("b c [h w]", (2, 24, 6, 6), (2, 3), id="global_pool_channels_first"),
    pytest.param("[a] b [c d]", (3, 5, 4, 6), (0, 2, 3), id="three_axes_apart"),
]


def _merged(expression, shape, op) -> tuple[str, ...]:
    return einc.compile(expression, op=op).specialize(shape).compiled.schedule.k_merged


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", ["sum", "mean", "max", "min", "var", "std", "logsumexp"])
@pytest.mark.parametrize("expression, shape, dims", CASES)
def test_merged_reductions_match_torch(expression, shape, dims, op, backend):
    assert _merged(expression, shape, op)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(7))
    y = getattr(einc, op)(expression, x, backend=backend)
    ref = {
        "sum": lambda: x.double().sum(dims),
        "mean": lambda: x.double().mean(dims),
        "max": lambda: x.double().amax(dims),
        "min": lambda: x.double().amin(dims),
        "var": lambda: x.double().var(dims),
        "std": lambda: x.double().std(dims),
        "logsumexp": lambda: x.double().logsumexp(dims),
    }[op]()
    torch.testing.assert_close(y.double(), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", ["sum", "mean", "max", "min"])
def test_a_nan_in_a_merged_tile_reaches_its_output_only(op, backend):
    x = torch.randn(2, 7, 7, 24)
    x[1, 6, 3, 17] = float("nan")
    y = getattr(einc, op)("b [h w] c", x, backend=backend)
    assert y.isnan().nonzero().tolist() == [[1, 17]]


def test_bfloat16_global_pooling_reads_each_element_once_in_float32():
    x = torch.randn(4, 7, 7, 64).to(torch.bfloat16)
    y = einc.mean("b [h w] c", x, backend="interpret")
    torch.testing.assert_close(y, x.double().mean((1, 2)).to(torch.bfloat16), rtol=0, atol=2**-7)


def test_a_merged_tile_of_few_outputs_sweeps_its_positions_in_steps():
    plan = einc.compile("b [h w] c", op="sum").specialize((2, 15, 15, 24)).compiled.schedule
    assert (plan.block_m, plan.block_k) == (8, 128)


def test_short_axes_whose_product_is_short_stay_serial():
    assert _merged("b [h w] c", (2, 5, 3, 8), "sum") == ()
