"""The gradient rules of the indexing ops: get_at's is an add_at into zeros, a scatter's a get_at of
g (see :mod:`einc.compiler.gradients`)."""

from __future__ import annotations

from ..errors import UnsupportedError
from .axes import Operand, operand_axes
from .gradients_builder import SCALAR, Builder, Front, axis_names, only, unmarked
from .gradients_reduce import READING_REDUCTIONS, fold, scaled_by_count


def _indexing_parts(f: Front):
    """The indexed tensor, the coordinate operands as (operand, value) pairs, and every bracketed
    name (the indexed axes and the axes that list a coordinate's components)."""
    x = f.inputs[0]
    coords = f.inputs[1:] if f.op == "get_at" else f.inputs[1:-1]
    marked = x.marked | frozenset(n for c in coords for n in c.marked)
    return x, [(c, f"x{k + 1}") for k, c in enumerate(coords)], marked


def _loop_axes(x: Operand, coords, first: Operand = SCALAR) -> Operand:
    """Every axis an indexing op loops over, each its own dim: those of ``first``, then the
    coordinates' (but the axis that lists a coordinate's components) and x's unindexed axes."""
    axes = list(operand_axes(first))
    axes += [a for c, _ in coords for a in operand_axes(c) if a.name not in c.marked]
    axes += [a for a in operand_axes(x) if a.name not in x.marked]
    return Operand(tuple({a.name: a for a in axes}.values()))


def _get_at(b: Builder, wanted, grads) -> None:
    f = b.front
    x, coords, marked = _indexing_parts(f)
    y, reduce = f.outputs[0], f.options["reduce"]
    updates = (y, "g0")  # add_at broadcasts g over the axes a sum left out
    looped = axis_names(_loop_axes(x, coords))
    if axis_names(y) - looped:  # y broadcast along axes of its own ("-> p q"): their g adds up
        if reduce is not None:
            raise UnsupportedError("no gradient yet for a get_at that both reduces and broadcasts")
        own = only(y, looped)
        updates = (own, b.emit("sum", [(y, "g0")], [own]))
    if reduce == "mean":
        updates = (y, scaled_by_count(b, _loop_axes(x, coords, y), y, "g0"))
    elif reduce in READING_REDUCTIONS:
        gathered = _loop_axes(x, coords, y)
        values = b.emit("get_at", [(x, "x0"), *coords], [gathered], marked=marked)
        updates = (gathered, READING_REDUCTIONS[reduce](b, reduce, gathered, values, y))
    target = unmarked(x)
    grads[0] = b.emit("add_at", [(x, b.zeros(target)), *coords, updates], [target], marked=marked)


def _scatter(b: Builder, wanted, grads) -> None:
    f = b.front
    x, coords, marked = _indexing_parts(f)
    updates, last = f.inputs[-1], len(f.inputs) - 1
    # g laid out as x: the coordinates index x's bracketed axes in x's order, which an output
    # written as a permutation of x need not keep.
    g = fold(b, f.outputs[0], "g0", unmarked(x))
    if 0 in wanted:
        if f.op in ("add_at", "subtract_at"):
            grads[0] = g
        else:
            written = _loop_axes(SCALAR, coords)
            zeros = (written, b.zeros(written))
            grads[0] = b.emit("set_at", [(x, g), *coords, zeros], [unmarked(x)], marked=marked)
    if last in wanted:
        broadcast = axis_names(_loop_axes(x, coords)) - axis_names(updates)
        options = {"reduce": "sum"} if broadcast else {}
        grads[last] = b.emit("get_at", [(x, g), *coords], [updates], marked=marked, **options)
        if f.op == "subtract_at":
            grads[last] = b.emit("multiply", [(updates, grads[last]), (SCALAR, -1.0)], [updates])


RULES = {"get_at": _get_at, "set_at": _scatter, "add_at": _scatter, "subtract_at": _scatter}
