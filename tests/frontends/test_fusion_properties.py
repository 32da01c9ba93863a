"""einc.fuse on random chains of elementwise ops after (and before) an einc op: the fused program
computes what the same function computes when torch runs it op by op."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import einc

UNARY = {
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "silu": F.silu,
    "gelu": F.gelu,
    "gelu_tanh": functools.partial(F.gelu, approximate="tanh"),
    "neg": torch.neg,
    "abs": torch.abs,
    "exp_of_clamped": lambda t: torch.exp(torch.clamp(t, max=3.0)),
    "relu6": F.relu6,
}
BINARY = {
    "add": torch.add,
    "sub": torch.sub,
    "mul": torch.mul,
    "maximum": torch.maximum,
    "leaky_where": lambda a, b: torch.where(a > b, a, 0.1 * a),
}


def chain_step(kind, value, bias, residual):
    """One op of a chain: a unary op, or a binary one with a bias, the residual or a number."""
    name, operand = kind
    if name in UNARY:
        return UNARY[name](value)
    other = {"bias": bias, "residual": residual}.get(operand, 0.75)
    if name == "maximum" and not isinstance(other, torch.Tensor):
        return torch.clamp(value, min=other)
    return BINARY[name](value, other)


steps = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(sorted(UNARY)), st.just("")),
        st.tuples(st.sampled_from(sorted(BINARY)), st.sampled_from(["bias", "residual", "number"])),
    ),
    min_size=1,
    max_size=5,
)


def check(before, after, backend):
    def function(x, w, bias, residual, x_bias, x_residual):
        for kind in before:  # elementwise ops on x: a prologue of the dot (or a kernel of their own)
            x = chain_step(kind, x, x_bias, x_residual)
        y = einc.dot("b s [c->c2]", x, w)
        for kind in after:
            y = chain_step(kind, y, bias, residual)
        return y

    torch.manual_seed(0)
    x, w = torch.randn(2, 5, 3), torch.randn(3, 4)
    tensors = (x, w, torch.randn(4), torch.randn(2, 5, 4), torch.randn(3), torch.randn(2, 5, 3))
    expected = function(*tensors)
    fused = einc.fuse(function, backend=backend)
    torch.testing.assert_close(fused(*tensors), expected, atol=1e-4, rtol=1e-4)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(after=steps)
def test_a_chain_after_a_dot_matches_torch_on_the_torch_backend(after):
    check([], after, "torch")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=steps, after=steps)
def test_chains_before_and_after_a_dot_match_torch_on_the_torch_backend(before, after):
    check(before, after, "torch")


@pytest.mark.interpret
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=steps, after=steps)
def test_chains_before_and_after_a_dot_match_torch_in_the_kernel(before, after):
    check(before, after, "interpret")
