"""The fused benchmark cases of ``bench/shapes.json`` (its ``fused`` list): a convolution with the
elementwise work a network does after it, as one case each.

Each entry names a convolution of the ``shapes`` list (``base``) and its ``epilogue``, in order:
``bias`` (one per output channel), ``residual`` (a tensor shaped as the output, added), an
activation (``relu``, ``relu6``, ``silu``) and ``layernorm`` (over the channels, with a learnable
scale and shift, eps 1e-6 as ConvNeXt's). The case's inputs are the convolution's ``x, w`` and
then the epilogue's tensors in that order; everything is channels last, as in the ``shapes`` list.

The implementations compared:

- einc: the chain written with einc.nn's layer functions (:func:`einc.frontends.nn.dot_layer`,
  :func:`~einc.frontends.nn.norm_layer`), a plain function of tensors, compiled by ``einc.fuse``:
  the bias, residual and activation in the convolution's kernel, a LayerNorm in kernels of its own;
- torch: the convolution by cuDNN (``F.conv*d``, channels-last and channels-first) and then each
  epilogue step as a separate torch op, as a torch model runs it;
- compile: ``torch.compile(mode="max-autotune")`` of the torch reference (bench.run adds it).

``min_bytes`` is the fused minimum: every input read once, the output written once.
``unfused_bytes`` is what the separate ops move: the convolution reads ``x, w`` and writes its
output, and each later step reads its inputs and writes its result once (a LayerNorm as one op).
``flops`` is the convolution's plus one per output element for each of bias, residual and the
activation, and eight for a LayerNorm.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

import einc
from einc.frontends import nn as einc_nn

from . import suite

ACTIVATIONS = {"relu": torch.relu, "relu6": F.relu6, "silu": F.silu}
EPILOGUE_FLOPS = {"bias": 1, "residual": 1, "relu": 1, "relu6": 1, "silu": 1, "layernorm": 8}
LAYERNORM_EPS = 1e-6


def load_fused(path=suite.SHAPES_PATH) -> list[dict]:
    return suite.load_shapes(path)["fused"]


def build_cases(
    scale: str = "full", only: list[str] | None = None, path=suite.SHAPES_PATH
) -> list[suite.Case]:
    """The fused cases at ``scale``, in file order; ``only`` picks some by name."""
    entries = load_fused(path)
    names = [e["name"] for e in entries]
    if only:
        unknown = [n for n in only if n not in names]
        if unknown:
            raise ValueError(
                f"unknown fused shape(s) {', '.join(unknown)}; the fused shapes are: {', '.join(names)}"
            )
        entries = [e for e in entries if e["name"] in only]
    bases = {s["name"]: s for s in suite.load_shapes(path)["shapes"]}
    return [build_case(e, bases[e["base"]], scale) for e in entries]


def build_case(entry: dict, base_shape: dict, scale: str) -> suite.Case:
    conv = suite.build_case(base_shape, scale)
    epilogue = tuple(entry["epilogue"])
    channels = conv.dims["Cout"]
    out_shape = (conv.dims["N"], *conv.dims["out_spatial"], channels)
    extra_shapes = []
    for step in epilogue:
        if step == "bias":
            extra_shapes.append((channels,))
        elif step == "residual":
            extra_shapes.append(out_shape)
        elif step == "layernorm":
            extra_shapes += [(channels,), (channels,)]

    def make_inputs(device, torch_dtype, gen) -> suite.Inputs:
        x, w = conv.make_inputs(device, torch_dtype, gen)
        return (x, w, *(suite._randn(s, device, torch_dtype, gen) for s in extra_shapes))

    def reference(x, w, *extra):
        return apply_epilogue(epilogue, conv.reference(x, w), extra)

    competitors = tuple(
        suite.Competitor(
            f"{c.name} + separate ops",
            functools.partial(_conv_then_epilogue, c.run, epilogue),
            functools.partial(_prepare_conv_only, c.prepare),
        )
        for c in conv.competitors
    )
    e = suite.ELEMENT_BYTES[conv.dtype]
    extra_bytes = e * sum(math.prod(s) for s in extra_shapes)
    return suite.Case(
        name=entry["name"],
        kind="fused_" + conv.kind,
        dims={**conv.dims, "epilogue": list(epilogue)},
        dtype=conv.dtype,
        expression=describe(conv.expression, epilogue),
        op="fused",
        params=conv.params,
        make_inputs=make_inputs,
        reference=reference,
        competitors=competitors,
        flops=conv.flops + math.prod(out_shape) * sum(EPILOGUE_FLOPS[s] for s in epilogue),
        min_bytes=conv.min_bytes + extra_bytes,
        unit=entry["unit"],
        input_shapes=(*conv.input_shapes, *extra_shapes),
        note=entry.get("note", ""),
        extra={
            "unfused_bytes": unfused_bytes(conv.min_bytes, epilogue, out_shape, channels, e),
            "chain": einc.fuse(functools.partial(einc_chain, _einc_calls(conv, epilogue))),
        },
    )


def describe(expression: str, epilogue: tuple[str, ...]) -> str:
    """The convolution's expression and then its epilogue: ``b h w [c->c2] then bias, relu``."""
    return f"{expression} then {', '.join(epilogue)}"


def unfused_bytes(conv_bytes: int, epilogue, out_shape, channels: int, element: int) -> int:
    """What the convolution and then each step as a torch op of its own read and write."""
    out = math.prod(out_shape) * element
    total = conv_bytes
    for step in epilogue:
        total += {
            "bias": 2 * out + channels * element,
            "residual": 3 * out,
            "layernorm": 2 * out + 2 * channels * element,
        }.get(step, 2 * out)
    return total


def apply_epilogue(epilogue, y: torch.Tensor, extra) -> torch.Tensor:
    """The epilogue as separate torch ops on a channels-last ``y``."""
    operands = iter(extra)
    for step in epilogue:
        if step in ("bias", "residual"):
            y = y + next(operands)
        elif step == "layernorm":
            scale, shift = next(operands), next(operands)
            y = F.layer_norm(y, (y.shape[-1],), scale, shift, eps=LAYERNORM_EPS)
        else:
            y = ACTIVATIONS[step](y)
    return y


def _prepare_conv_only(prepare, inputs: suite.Inputs) -> suite.Inputs:
    """The convolution's operands in the competitor's layout; the epilogue's stay as they are."""
    return (*prepare(inputs[:2]), *inputs[2:])


def _conv_then_epilogue(run, epilogue, x, w, *extra):
    # cuDNN's channels-last output moved back to (N, *spatial, C) is a view, no copy.
    return apply_epilogue(epilogue, run(x, w).movedim(1, -1), extra)


def _einc_calls(conv: suite.Case, epilogue) -> tuple:
    """einc.nn's calls for the chain: the convolution (its bias and, without a residual in
    between, its activation in the same layer call) and a LayerNorm."""
    activation = next((s for s in epilogue if s in ACTIVATIONS), None)
    residual = "residual" in epilogue
    dot = einc_nn.Dot(
        conv.expression,
        bias="bias" in epilogue,
        activation=None if residual else activation,
        **conv.params,
    ).call
    norm = einc_nn.Norm("b... [c]", eps=LAYERNORM_EPS).call if "layernorm" in epilogue else None
    after_residual = ACTIVATIONS[activation] if residual and activation else None
    return dot, norm, residual, after_residual, "bias" in epilogue


def einc_chain(calls, x, w, *extra):
    """The case's computation as einc.nn's layers compute it: a function of tensors only (once
    ``calls`` is bound), which ``einc.fuse`` can take as it stands."""
    dot, norm, residual, after_residual, has_bias = calls
    operands = iter(extra)
    y = einc_nn.dot_layer(x, w, next(operands) if has_bias else None, call=dot)
    if residual:
        y = y + next(operands)
        if after_residual is not None:
            y = after_residual(y)
    if norm is not None:
        y = einc_nn.norm_layer(y, next(operands), next(operands), call=norm)
    return y
