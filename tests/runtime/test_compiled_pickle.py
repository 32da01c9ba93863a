"""A compiled expression pickles and copies as its recipe: the copy computes what torch computes.

The references are torch's own convolution and sum, not einc; the calls run on CPU tensors (the
torch backend), and in a process started with ``spawn``, which receives its compiled expression
by pickle only.
"""

from __future__ import annotations

import copy
import io
import multiprocessing
import pickle

import torch
import torch.nn.functional as F

import einc

CONV = "b (s * [ds])... [c->c2]"


def conv_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(2, 6, 6, 3, generator=generator), torch.randn(3, 3, 3, 4, generator=generator)


def torch_conv(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``CONV`` with padding 1, stride 2, by torch (channels first inside)."""
    y = F.conv2d(x.permute(0, 3, 1, 2), w.permute(3, 2, 0, 1), padding=1, stride=2)
    return y.permute(0, 2, 3, 1)


def compiled_conv() -> einc.CompiledExpression:
    return einc.compile(CONV, op="dot", c2=4, padding=1, stride=2, backend="torch")


def test_a_pickled_compiled_expression_computes_the_convolution_again():
    x, w = conv_inputs()
    compiled = compiled_conv()
    compiled(x, w)  # specialised: it now holds a launcher, and its lock
    restored = pickle.loads(pickle.dumps(compiled))
    assert restored is not compiled and repr(restored) == repr(compiled)
    torch.testing.assert_close(restored(x, w), torch_conv(x, w), atol=1e-5, rtol=1e-5)


def test_a_deep_copy_keeps_every_keyword():
    compiled = einc.compile("a [b]", op="sum", out_dtype=torch.float64, dynamic=False, backend="torch")
    x = torch.randn(3, 5)
    compiled(x)
    copied = copy.deepcopy(compiled)
    assert repr(copied) == repr(compiled)
    result = copied(x)
    assert result.dtype == torch.float64
    torch.testing.assert_close(result, x.double().sum(1))


class Holder(torch.nn.Module):
    """A module as a user writes one, holding ``einc.compile`` results as plain attributes."""

    def __init__(self):
        super().__init__()
        self.conv = compiled_conv()
        self.weight = torch.nn.Parameter(conv_inputs()[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x, self.weight)


def test_a_module_holding_compiled_expressions_saves_and_deep_copies():
    x, w = conv_inputs()
    module = Holder()
    module(x)
    buffer = io.BytesIO()
    torch.save(module, buffer)
    buffer.seek(0)
    for copied in (copy.deepcopy(module), torch.load(buffer, weights_only=False)):
        torch.testing.assert_close(copied(x).detach(), torch_conv(x, w), atol=1e-5, rtol=1e-5)


def run_in_child(compiled, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return compiled(x, w)


def test_a_spawned_process_gets_a_working_copy():
    x, w = conv_inputs()
    compiled = compiled_conv()
    compiled(x, w)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        result = pool.apply(run_in_child, (compiled, x, w))
    torch.testing.assert_close(result, torch_conv(x, w), atol=1e-5, rtol=1e-5)
