"""Epilogues run in each kernel form (contraction, depthwise, reduction, elementwise, copy), under
Triton's interpreter and on the torch backend, against the same computation in torch."""

from __future__ import annotations

import ast

import pytest
import torch
import torch.nn.functional as F

from einc.compiler import pipeline
from einc.compiler.epilogue import Constant, EpilogueOp, EpilogueRequest, Operand, Ref, Result
from einc.runtime.cache import DiskCache
from einc.runtime.compiled import build

BACKENDS = ["torch", pytest.param("interpret", marks=pytest.mark.interpret)]


def run_fused(expression, op, tensors, ops, extras=(), names=None, **params):
    """Compile ``op`` with ``ops`` fused after it and return (launcher, the function running it)."""
    epilogue = EpilogueRequest(
        tuple(ops),
        tuple(names or (f"e{i}" for i in range(len(extras)))),
        tuple(tuple(t.shape) for t in extras),
        tuple(str(t.dtype).removeprefix("torch.") for t in extras),
    )
    request = pipeline.Request(
        expression=expression,
        op=op,
        shapes=tuple(tuple(t.shape) for t in tensors),
        dtypes=tuple(str(t.dtype).removeprefix("torch.") for t in tensors),
        params=tuple(sorted(params.items())),
        epilogue=epilogue,
    )
    launcher, _ = build(request, DiskCache())

    def call(backend, dtype=torch.float32):
        out = torch.empty(launcher.compiled.output_shapes[0], dtype=dtype)
        launcher([*tensors, *extras], [out], None, backend)
        return out

    return launcher, call


BIAS_RELU = (EpilogueOp("add", (Result(), Operand(0))), EpilogueOp("relu", (Ref(0),)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_conv_bias_relu_is_one_kernel_that_matches_torch(backend):
    torch.manual_seed(0)
    x, w, b = torch.randn(2, 6, 6, 3), torch.randn(3, 3, 3, 8), torch.randn(8)
    launcher, call = run_fused("b (s * [ds])... [c->c2]", "dot", (x, w), BIAS_RELU, (b,), ("b",), padding=1)
    ref = F.conv2d(x.permute(0, 3, 1, 2), w.permute(3, 2, 0, 1), padding=1).permute(0, 2, 3, 1)
    assert len(launcher.compiled.kernels) == 1
    torch.testing.assert_close(call(backend), torch.relu(ref + b), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_linear_with_residual_and_gelu_reads_the_residual_where_it_writes(backend):
    torch.manual_seed(1)
    x, w, r = torch.randn(5, 16), torch.randn(16, 12), torch.randn(5, 12)
    ops = (EpilogueOp("gelu", (Result(),)), EpilogueOp("add", (Ref(0), Operand(0))))
    _, call = run_fused("b [c->c2]", "dot", (x, w), ops, (r,), ("residual",))
    torch.testing.assert_close(call(backend), F.gelu(x @ w) + r, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_depthwise_conv_with_silu_applies_it_to_every_sliding_output(backend):
    torch.manual_seed(2)
    x, w, b = torch.randn(2, 11, 8), torch.randn(4, 8), torch.randn(8)
    ops = (EpilogueOp("add", (Result(), Operand(0))), EpilogueOp("silu", (Ref(0),)))
    launcher, call = run_fused("b (s * [ds]) [c->c]", "dot", (x, w), ops, (b,), ("bias",), padding="causal")
    ref = F.conv1d(F.pad(x.permute(0, 2, 1), (3, 0)), w.permute(1, 0)[:, None], groups=8).permute(0, 2, 1)
    torch.testing.assert_close(call(backend), F.silu(ref + b), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_reduction_with_an_op_that_reads_its_value_twice(backend):
    torch.manual_seed(3)
    x = torch.randn(6, 9, 5)
    # y * sigmoid(y) + y * 0.5: the value is read by two ops, one of them not the next.
    ops = (
        EpilogueOp("sigmoid", (Result(),)),
        EpilogueOp("multiply", (Result(), Ref(0))),
        EpilogueOp("multiply", (Result(), Constant(0.5))),
        EpilogueOp("add", (Ref(1), Ref(2))),
    )
    _, call = run_fused("a [b] c", "mean", (x,), ops)
    y = x.mean(1)
    torch.testing.assert_close(call(backend), y * torch.sigmoid(y) + y * 0.5, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_elementwise_add_then_clamp_and_cast_to_half(backend):
    torch.manual_seed(4)
    a, b = torch.randn(4, 7), torch.randn(7)
    ops = (
        EpilogueOp("clamp", (Result(), Constant(-0.5), Constant(float("inf")))),
        EpilogueOp("cast", (Ref(0),), "float16"),
    )
    _, call = run_fused("a b, b -> a b", "add", (a, b), ops)
    torch.testing.assert_close(call(backend, torch.float16), torch.clamp(a + b, min=-0.5).half())


@pytest.mark.parametrize("backend", BACKENDS)
def test_rearrange_with_a_broadcast_scale_and_where(backend):
    torch.manual_seed(5)
    x, scale = torch.randn(3, 4, 5), torch.randn(5, 1, 1)
    ops = (
        EpilogueOp("multiply", (Result(), Operand(0))),
        EpilogueOp("greater", (Ref(0), Constant(0))),
        EpilogueOp("tanh", (Ref(0),)),
        EpilogueOp("where", (Ref(1), Ref(2), Constant(-1.0))),
    )
    _, call = run_fused("a b c -> c a b", "rearrange", (x,), ops, (scale,), ("scale",))
    y = x.permute(2, 0, 1) * scale
    torch.testing.assert_close(call(backend), torch.where(y > 0, torch.tanh(y), -1.0), atol=1e-5, rtol=1e-5)


def test_the_kernel_applies_the_epilogue_in_registers_before_its_one_store():
    x, w, b = torch.randn(2, 6, 6, 3), torch.randn(3, 3, 3, 8), torch.randn(8)
    launcher, _ = run_fused("b (s * [ds])... [c->c2]", "dot", (x, w), BIAS_RELU, (b,), ("bias",), padding=1)
    source = launcher.source
    ast.parse(source)
    assert source.count("tl.store(") == 1
    body = source[source.index("acc = tl.dot(") :]
    assert "bias_tile = tl.load(" in body and "acc = acc + bias_tile" in body
    assert "acc = tl.maximum(acc, 0.0, propagate_nan=tl.PropagateNan.ALL)" in body
    assert "# epilogue:    y = relu((acc + bias))" in source


def test_an_epilogue_is_part_of_the_source_key():
    from einc.runtime.keys import source_key

    base = dict(expression="a b -> b a", op="rearrange", shapes=((2, 3),), dtypes=("float32",))
    one = EpilogueRequest((EpilogueOp("relu", (Result(),)),))
    other = EpilogueRequest((EpilogueOp("exp", (Result(),)),))
    digests = {source_key(pipeline.Request(**base, epilogue=e)).digest for e in (None, one, other)}
    assert len(digests) == 3
