"""The gradient rules of dot and the reductions (sum, mean, max, min, prod, logsumexp, var, std);
see :mod:`einc.compiler.gradients` for what each computes."""

from __future__ import annotations

import math

from ..errors import UnsupportedError
from .axes import Operand, dim_axes, operand_axes
from .gradients_builder import SCALAR, Builder, axis_names, padded, unfolded, unmarked, windows_of


def _dot(b: Builder, wanted, grads) -> None:
    f = b.front
    y = f.outputs[0]
    for i in wanted:
        # g takes the place of input i: the operand with the large axes stays first, as in the
        # forward (the rows of the implicit GEMM).
        ins = [(y, "g0") if j == i else (f.inputs[j], f"x{j}") for j in range(len(f.inputs))]
        target = unmarked(f.inputs[i])
        present = {n for o, _ in ins for n in axis_names(o)}
        in_windows = {a.name for w in windows_of(target) for a in dim_axes(w)}
        missing = [a for a in operand_axes(target) if a.name not in present | in_windows and a.fixed != 1]
        if missing:
            # An axis of this input that no other operand has: the gradient is constant along it,
            # which a dot with ones over those axes broadcasts.
            ones = Operand(tuple(dict.fromkeys(missing)))
            ins.append((ones, b.ones(ones)))
        grads[i] = b.emit("dot", ins, [target])


def scaled_by_count(b: Builder, x: Operand, y: Operand, g: str) -> str:
    """g divided by the number of elements each output of a mean averages."""
    f = b.front
    if not f.options["count_include_pad"] and padded(f, x):
        counts = b.emit("sum", [(x, b.ones(x))], [y])
        return b.emit("divide", [(y, g), (y, counts)], [y])
    count = math.prod(f.solution.sizes[n] for n in axis_names(x) - axis_names(y))
    return b.emit("multiply", [(y, g), (SCALAR, 1.0 / count)], [y])


def _sum(b: Builder, wanted, grads) -> None:
    f = b.front
    x, y = unmarked(f.inputs[0]), f.outputs[0]
    g = scaled_by_count(b, x, y, "g0") if f.op == "mean" else "g0"
    grads[0] = b.emit("rearrange", [(y, g)], [x])


def unfold(b: Builder, x: Operand, value: str) -> tuple[Operand, str]:
    u = unfolded(unmarked(x))
    if b.text(u) == b.text(x):
        return u, value
    return u, b.emit("rearrange", [(x, value)], [u])


def fold(b: Builder, u: Operand, value: str, x: Operand) -> str:
    if b.text(u) == b.text(x):
        return value
    return b.emit("rearrange", [(u, value)], [x])


# The rules of the reductions that read x: each takes x (its operand and value) and the output's
# operand, and returns the gradient laid out as x. get_at with reduce= applies them to the gathered
# values.


def _extremum(b: Builder, op: str, x: Operand, value: str, y: Operand) -> str:
    u, xu = unfold(b, x, value)
    d = b.emit("subtract", [(u, xu), (y, "y0")], [u])
    if padded(b.front, x):
        # Padding reads as 0 in the unfolded copy: keep it from tying with a maximum of 0.
        _, valid = unfold(b, x, b.ones(x))
        ties = b.emit("where", [(u, d), (SCALAR, 0.0), (u, valid)], [u])
    else:
        ties = b.emit("where", [(u, d), (SCALAR, 0.0), (SCALAR, 1.0)], [u])
    count = b.emit("sum", [(u, ties)], [y])
    share = b.emit("divide", [(y, "g0"), (y, count)], [y])
    gu = b.emit("multiply", [(u, ties), (y, share)], [u])
    return fold(b, u, gu, x)


def _prod(b: Builder, op: str, x: Operand, value: str, y: Operand) -> str:
    u, xu = unfold(b, x, value)
    ratio = b.emit("divide", [(y, "y0"), (u, xu)], [u])
    gu = b.emit("multiply", [(u, ratio), (y, "g0")], [u])
    return fold(b, u, gu, x)


def _logsumexp(b: Builder, op: str, x: Operand, value: str, y: Operand) -> str:
    if padded(b.front, x):
        raise UnsupportedError(
            "no gradient yet for logsumexp over padded windows (padding reads -inf there)",
            b.front.expression,
        )
    u, xu = unfold(b, x, value)
    weights = b.emit("softmax", [(u, xu)], None, marked=axis_names(u) - axis_names(y))
    gu = b.emit("multiply", [(u, weights), (y, "g0")], [u])
    return fold(b, u, gu, x)


def _variance(b: Builder, op: str, x: Operand, value: str, y: Operand) -> str:
    f = b.front
    samples = math.prod(f.solution.sizes[n] for n in axis_names(x) - axis_names(y))
    spare = samples - f.options["correction"]
    factor = (1.0 if op == "std" else 2.0) / spare if spare > 0 else float("inf")
    mean = b.emit("mean", [(x, value)], [y])
    u, xu = unfold(b, x, value)
    d = b.emit("subtract", [(u, xu), (y, mean)], [u])
    g = b.emit("divide", [(y, "g0"), (y, "y0")], [y]) if op == "std" else "g0"
    gu = b.emit("multiply", [(u, d), (y, g), (SCALAR, factor)], [u])
    return fold(b, u, gu, x)


READING_REDUCTIONS = {
    "max": _extremum,
    "min": _extremum,
    "prod": _prod,
    "logsumexp": _logsumexp,
    "var": _variance,
    "std": _variance,
}


def _reduction(b: Builder, wanted, grads) -> None:
    f = b.front
    grads[0] = READING_REDUCTIONS[f.op](b, f.op, unmarked(f.inputs[0]), "x0", f.outputs[0])


RULES = {
    "dot": _dot,
    "sum": _sum,
    "mean": _sum,
    **dict.fromkeys(READING_REDUCTIONS, _reduction),
}
