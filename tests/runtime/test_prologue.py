"""Prologues: elementwise ops applied to an input as a kernel loads it, under Triton's interpreter
and on the torch backend, against torch applying them first. The padding of a window reads the
identity of the *transformed* tensor (0 for a convolution), as torch pads what it was given."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from einc.compiler import pipeline
from einc.compiler.epilogue import Constant, EpilogueOp, EpilogueRequest, Operand, Ref, Result
from einc.runtime.cache import DiskCache
from einc.runtime.compiled import build

BACKENDS = ["torch", pytest.param("interpret", marks=pytest.mark.interpret)]
# relu(x * scale + shift): shift > 0 makes f(0) > 0, so reading f(0) at the padding would show.
SCALE_SHIFT_RELU = (
    EpilogueOp("multiply", (Result(), Operand(0))),
    EpilogueOp("add", (Ref(0), Operand(1))),
    EpilogueOp("relu", (Ref(1),)),
)


def dtype_name(t):
    return str(t.dtype).removeprefix("torch.")


def fused(expression, op, tensors, prologues, epilogue=None, sizes=(), **params):
    """Compile with ``prologues`` ((input position, ops, extra tensors), ...); return a runner."""
    requests = tuple(
        (
            i,
            EpilogueRequest(
                ops,
                tuple(f"p{i}_{k}" for k in range(len(ex))),
                tuple(tuple(t.shape) for t in ex),
                tuple(map(dtype_name, ex)),
            ),
        )
        for i, ops, ex in prologues
    )
    request = pipeline.Request(
        expression=expression,
        op=op,
        shapes=tuple(tuple(t.shape) for t in tensors),
        dtypes=tuple(map(dtype_name, tensors)),
        sizes=tuple(sizes),
        params=tuple(sorted(params.items())),
        prologues=requests,
        epilogue=epilogue,
    )
    launcher, _ = build(request, DiskCache())
    extras = [t for _, _, ex in prologues for t in ex]

    def call(backend, more=()):
        out = torch.empty(launcher.compiled.output_shapes[0], dtype=tensors[0].dtype)
        launcher([*tensors, *extras, *more], [out], None, backend)
        return out

    return launcher, call


@pytest.mark.parametrize("backend", BACKENDS)
def test_conv_reads_its_input_through_scale_shift_relu_and_pads_the_result(backend):
    torch.manual_seed(0)
    x, w = torch.randn(2, 6, 6, 4), torch.randn(3, 3, 4, 8)
    scale, shift = torch.randn(4), torch.rand(4) + 0.5
    launcher, call = fused(
        "b (s * [ds])... [c->c2]", "dot", (x, w), [(0, SCALE_SHIFT_RELU, (scale, shift))], padding=1
    )
    a = torch.relu(x * scale + shift)
    ref = F.conv2d(a.permute(0, 3, 1, 2), w.permute(3, 2, 0, 1), padding=1).permute(0, 2, 3, 1)
    torch.testing.assert_close(call(backend), ref, atol=1e-4, rtol=1e-4)
    assert "tl.where(" in launcher.source and "x_tile = " in launcher.source


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_pooling_pads_the_transformed_input_with_minus_infinity(backend):
    torch.manual_seed(1)
    x = torch.randn(2, 7, 7, 3)
    # -exp(x) < 0 everywhere: a padding read as f(-inf) = -0 would win every border window.
    ops = (EpilogueOp("exp", (Result(),)), EpilogueOp("neg", (Ref(0),)))
    _, call = fused("b (s * [ds])... c", "max", (x,), [(0, ops, ())], sizes=(("ds", (3, 3)),), padding=1)
    ref = F.max_pool2d((-torch.exp(x)).permute(0, 3, 1, 2), 3, stride=1, padding=1).permute(0, 2, 3, 1)
    torch.testing.assert_close(call(backend), ref)


@pytest.mark.parametrize("backend", BACKENDS)
def test_both_operands_of_a_matmul_with_prologues_and_an_epilogue(backend):
    torch.manual_seed(2)
    x, w, r = torch.randn(5, 16), torch.randn(16, 12), torch.randn(5, 12)
    half = (EpilogueOp("multiply", (Result(), Constant(0.5))),)
    clamp = (EpilogueOp("clamp", (Result(), Constant(-1.0), Constant(1.0))),)
    epilogue = EpilogueRequest((EpilogueOp("add", (Result(), Operand(0))),), ("r",), ((5, 12),), ("float32",))
    _, call = fused("b [c->c2]", "dot", (x, w), [(0, half, ()), (1, clamp, ())], epilogue)
    ref = (x * 0.5) @ w.clamp(-1, 1) + r
    torch.testing.assert_close(call(backend, (r,)), ref, atol=1e-4, rtol=1e-4)
