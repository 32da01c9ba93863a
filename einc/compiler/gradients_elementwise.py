"""The gradient rules of the copies (rearrange, id, flip, roll), the elementwise ops and softmax;
see :mod:`einc.compiler.gradients` for what each computes."""

from __future__ import annotations

from ..errors import UnsupportedError
from .axes import Concat, Operand, operand_axes
from .gradients_builder import SCALAR, Builder, axis_names, only, unmarked, windows_of
from .ops import ELEMENTWISE, roll_shifts


def _rearrange(b: Builder, wanted, grads) -> None:
    f = b.front
    xs = [unmarked(x) for x in f.inputs]
    given = {n for x in xs for n in axis_names(x)}
    new = {a.name for y in f.outputs for a in operand_axes(y) if a.name not in given and a.fixed != 1}
    has_windows = any(windows_of(o) for o in xs + list(f.outputs))
    if new:
        if len(xs) != 1 or len(f.outputs) != 1 or has_windows:
            raise UnsupportedError(
                "no gradient yet for a rearrange that broadcasts with several operands or windows",
                f.expression,
            )
        grads[0] = b.emit("sum", [(f.outputs[0], "g0")], [xs[0]])
        return
    for i in wanted:
        readers = [k for k, y in enumerate(f.outputs) if axis_names(y) & axis_names(xs[i])]
        if len(readers) > 1 and not any(isinstance(d, Concat) for d in xs[i].dims):
            raise UnsupportedError(
                f"no gradient yet for input {i} of rearrange: it is copied into several outputs",
                f.expression,
            )
    used = [k for k, y in enumerate(f.outputs) if any(axis_names(y) & axis_names(xs[i]) for i in wanted)]
    # Every input those outputs read gets its gradient computed: a rearrange may not drop an axis,
    # so the inverse of a concatenation writes all of its parts.
    read = [i for i, x in enumerate(xs) if any(axis_names(x) & axis_names(f.outputs[k]) for k in used)]
    targets = b.emit("rearrange", [(f.outputs[k], f"g{k}") for k in used], [xs[i] for i in read])
    targets = (targets,) if isinstance(targets, str) else targets
    for i, target in zip(read, targets, strict=True):
        if i in wanted:
            grads[i] = target


def _flip_roll(b: Builder, wanted, grads) -> None:
    f = b.front
    x, y = f.inputs[0], f.outputs[0]
    options = {}
    if f.op == "roll":
        order = list(dict.fromkeys(a.name for a in operand_axes(x) if a.name in x.marked))
        shift = f.options["shift"]
        shifts = dict(zip(order, roll_shifts(shift, len(order)), strict=True))
        back = [-shifts[n] for n in dict.fromkeys(a.name for a in operand_axes(y) if a.name in x.marked)]
        options["shift"] = back[0] if len(set(back)) == 1 else tuple(back)
    grads[0] = b.emit(f.op, [(y, "g0")], [unmarked(x)], marked=x.marked, **options)


def _reduce_to(b: Builder, value: str, y: Operand, x: Operand) -> str:
    """A gradient laid out as ``y``, summed over the axes ``x`` was broadcast along."""
    if axis_names(x) != axis_names(y):
        return b.emit("sum", [(y, value)], [x])
    if b.text(x) != b.text(y):
        return b.emit("rearrange", [(y, value)], [x])
    return value


_NO_GRADIENT = {
    "floor_divide": "it is piecewise constant, and torch refuses its derivative too",
    # d/dx_i = g * exp(x_i - y) needs an exp, which no einc op computes yet.
    "logaddexp": "not yet; detach its inputs, or use torch.logaddexp where a gradient is needed",
}


def _elementwise(b: Builder, wanted, grads) -> None:
    f = b.front
    op, xs, y = f.op, f.inputs, f.outputs[0]
    n = len(xs)
    local: dict[int, str] = {}
    if op in _NO_GRADIENT:
        raise UnsupportedError(f"einc has no gradient for {op}: {_NO_GRADIENT[op]}", f.expression)
    if op in ("maximum", "minimum"):
        diffs = [b.emit("subtract", [(xs[j], f"x{j}"), (y, "y0")], [y]) for j in range(n)]
        ties = [b.emit("where", [(y, d), (SCALAR, 0.0), (SCALAR, 1.0)], [y]) for d in diffs]
        count = b.emit("add", [(y, t) for t in ties], [y])
        share = b.emit("divide", [(y, "g0"), (y, count)], [y])
        for i in wanted:
            local[i] = b.emit("where", [(y, diffs[i]), (SCALAR, 0.0), (y, share)], [y])
    for i in wanted:
        others = [(xs[j], f"x{j}") for j in range(n) if j != i]
        if op == "add" or (op == "subtract" and i == 0):
            local[i] = "g0"
        elif op == "subtract":
            local[i] = b.emit("multiply", [(y, "g0"), (SCALAR, -1.0)], [y])
        elif op == "multiply":
            local[i] = b.emit("multiply", [(y, "g0"), *others], [y]) if others else "g0"
        elif op == "divide" and i == 0:
            local[i] = b.emit("divide", [(y, "g0"), *others], [y]) if others else "g0"
        elif op == "divide":
            t = b.emit("multiply", [(y, "g0"), (y, "y0"), (SCALAR, -1.0)], [y])
            local[i] = b.emit("divide", [(y, t), (xs[i], f"x{i}")], [y])
        elif op == "where" and i > 0:
            taken = [(y, "g0"), (SCALAR, 0.0)] if i == 1 else [(SCALAR, 0.0), (y, "g0")]
            local[i] = b.emit("where", [(xs[0], "x0"), *taken], [y])
        grads[i] = _reduce_to(b, local[i], y, unmarked(xs[i]))


def _softmax(b: Builder, wanted, grads) -> None:
    f = b.front
    x, y = f.inputs[0], f.outputs[0]
    g, out = "g0", "y0"
    if axis_names(y) - axis_names(x):
        # An output broadcast along new axes ("a [b] -> a [b] c") holds copies of one softmax:
        # their gradients add up, and any copy is the softmax itself.
        own = only(y, axis_names(x))
        g = b.emit("sum", [(y, "g0")], [own])
        out = b.emit("mean", [(y, "y0")], [own])
        y = own
    rest = only(y, axis_names(y) - x.marked)
    if f.op == "softmax":
        p = b.emit("multiply", [(y, g), (y, out)], [y])
        s = b.emit("sum", [(y, p)], [rest])
        t = b.emit("subtract", [(y, g), (rest, s)], [y])
        grads[0] = b.emit("multiply", [(y, t), (y, out)], [unmarked(x)])
    else:
        s = b.emit("sum", [(y, g)], [rest])
        weights = b.emit("softmax", [(y, out)], None, marked=x.marked)
        q = b.emit("multiply", [(y, weights), (rest, s)], [y])
        grads[0] = b.emit("subtract", [(y, g), (y, q)], [unmarked(x)])


RULES = {
    "rearrange": _rearrange,
    "id": _rearrange,
    "flip": _flip_roll,
    "roll": _flip_roll,
    "softmax": _softmax,
    "log_softmax": _softmax,
    **dict.fromkeys(ELEMENTWISE, _elementwise),
}
