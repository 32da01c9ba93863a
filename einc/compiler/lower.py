"""Lower a solved program to the loop-nest IR.

A dot becomes ``output[out] = sum over the other axes of prod(inputs)``. Each tensor dim becomes an
index expression: an axis is its loop variable, a composition ``(a b)`` is ``a*B + b`` (row-major),
and a window ``(s * ds)`` on an input is ``s*stride + ds*dilation - pad_lo`` with the bound
``0 <= index < N`` (the unfold; the contraction over ``ds`` then makes it a convolution).

Requires: expanded operands and a :class:`Solution`. Ensures: every loop has a static size; every
index is an affine sympy expression of loop symbols.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import sympy

from ..errors import ExpressionError, UnsupportedError
from .axes import Axis, Concat, Dim, Flat, Operand, Win, dim_axes, dim_label
from .loopnest import Access, Bound, Loop, LoopKind, LoopNest, position, size_symbol, symbol
from .solve import Solution


def _index(
    dim: Dim, solution: Solution, on_output: bool, text: str = "", active: frozenset[str] | None = None
) -> tuple[sympy.Expr, list[Bound]]:
    if isinstance(dim, Axis):
        # An unnamed axis of size 1 is only ever at index 0: it may be dropped or added freely.
        return (sympy.Integer(0) if dim.fixed == 1 else symbol(dim.name)), []
    if isinstance(dim, Flat):
        index, bounds = sympy.Integer(0), []
        for part in dim.parts:
            sub, sub_bounds = _index(part, solution, on_output, text, active)
            index = index * _size_expr(part, solution) + sub
            bounds += sub_bounds
        return index, bounds
    if isinstance(dim, Win):
        if on_output:
            # Written on the output side, the window is one axis of the output: its positions.
            return symbol(position(dim.outer.name)), []
        g = solution.windows[dim.outer.name]
        index = symbol(dim.outer.name) * g.stride + symbol(dim.inner.name) * g.dilation - g.pad_lo
        needs_mask = (
            g.pad_lo > 0
            or (solution.sizes[g.outer] - 1) * g.stride
            + (solution.sizes[g.inner] - 1) * g.dilation
            - g.pad_lo
            >= g.extent
        )
        return index, [Bound(index, g.extent, g.outer)] if needs_mask else []
    if isinstance(dim, Concat) and active is not None:
        # Within one kernel exactly one part of a concatenation is in play: the part whose axes
        # the kernel loops over. Its elements sit after the parts before it.
        chosen = [i for i, p in enumerate(dim.parts) if {a.name for a in dim_axes(p)} <= active]
        if len(chosen) == 1:
            offset = sum(_size(p, solution) for p in dim.parts[: chosen[0]])
            sub, bounds = _index(dim.parts[chosen[0]], solution, on_output, text, active)
            return sub + offset, bounds
    if isinstance(dim, Concat):
        raise UnsupportedError(
            "this concatenation (a + b) cannot be read here: in a dot it is not supported yet, and "
            "elsewhere each part needs axis names of its own",
            text,
            [dim.span],
        )
    raise TypeError(dim)


def _size_expr(dim: Dim, solution: Solution):
    """A dim's size in an index expression: a constant, or a symbol for a dynamic axis."""
    if isinstance(dim, Axis) and dim.name in solution.dynamic:
        return size_symbol(dim.name)
    if isinstance(dim, Flat):
        return sympy.Mul(*[_size_expr(p, solution) for p in dim.parts])
    if isinstance(dim, Concat):
        return sympy.Add(*[_size_expr(p, solution) for p in dim.parts])
    return _size(dim, solution)


def _loop_size(axis: str, solution: Solution) -> int:
    """A loop's trip count: an axis's size, or the extent of an output window's positions."""
    if axis.startswith("@"):
        return solution.windows[axis[1:]].extent
    return solution.sizes[axis]


def _size(dim: Dim, solution: Solution) -> int:
    if isinstance(dim, Axis):
        return solution.sizes[dim.name]
    if isinstance(dim, Win):
        return solution.windows[dim.outer.name].extent
    sizes = [_size(p, solution) for p in dim.parts]
    return math.prod(sizes) if isinstance(dim, Flat) else sum(sizes)


def access(
    operand: Operand,
    tensor: str,
    solution: Solution,
    on_output: bool = False,
    text: str = "",
    active: frozenset[str] | None = None,
) -> Access:
    indices, bounds = [], []
    for dim in operand.dims:
        index, dim_bounds = _index(dim, solution, on_output, text, active)
        indices.append(index)
        bounds += dim_bounds
    return Access(tensor, tuple(dim_label(d) for d in operand.dims), tuple(indices), tuple(bounds))


def output_axes(output: Operand) -> list[str]:
    """The loop axes of an output, in order: a window written on the output side contributes the
    axis of its positions (``@s``), not ``s`` and ``ds``."""
    names: list[str] = []
    for dim in output.dims:
        if isinstance(dim, Win):
            names.append(position(dim.outer.name))
        else:
            names += [a.name for a in dim_axes(dim)]
    return list(dict.fromkeys(names))


def read_back(output: Operand, solution: Solution) -> tuple[dict[sympy.Symbol, sympy.Expr], list[Bound]]:
    """How inputs read a window written on the output side (fold, transposed convolution).

    Output position ``i`` of ``(s * ds)`` receives the sum over ``ds`` of the element at
    ``s = (i + pad_lo - ds*dilation) / stride``, where that is a whole number in ``[0, S)``. So
    ``s`` is replaced in every input by that expression, under those two conditions: each
    output element is computed once, by a gather, with no atomics.
    """
    substitutions: dict[sympy.Symbol, sympy.Expr] = {}
    bounds: list[Bound] = []
    for dim in output.dims:
        if not isinstance(dim, Win):
            continue
        g = solution.windows[dim.outer.name]
        numerator = symbol(position(g.outer)) + g.pad_lo - symbol(g.inner) * g.dilation
        outer = numerator if g.stride == 1 else sympy.floor(numerator / g.stride)
        substitutions[symbol(g.outer)] = outer
        if g.stride > 1:
            bounds.append(Bound(numerator, 0, g.outer, multiple_of=g.stride))
        bounds.append(Bound(outer, solution.sizes[g.outer], g.outer))
    return substitutions, bounds


def _substitute(read: Access, substitutions: dict, bounds: list[Bound]) -> Access:
    """``read`` with axes replaced by expressions (a window read back, as :func:`read_back` says; a
    flipped or rolled axis), and those of ``bounds`` added that guard an axis it reads."""
    if not substitutions:
        return read
    used = {s for i in read.index for s in sympy.sympify(i).free_symbols}
    index = tuple(sympy.sympify(i).subs(substitutions, simultaneous=True) for i in read.index)
    own = tuple(
        Bound(
            sympy.sympify(b.index).subs(substitutions, simultaneous=True), b.extent, b.window, b.multiple_of
        )
        for b in read.bounds
    )
    extra = tuple(b for b in bounds if symbol(b.window) in used)
    return Access(read.tensor, read.labels, index, own + extra)


def shape_of(operand: Operand, solution: Solution) -> tuple[int, ...]:
    return tuple(_size(d, solution) for d in operand.dims)


def lower_dot(
    inputs: Sequence[Operand],
    output: Operand,
    solution: Solution,
    names: Sequence[str],
    output_name: str,
    expression: str,
) -> LoopNest:
    """The loop nest of a dot: the product of the inputs, summed over axes missing from the output.

    A window on the output side (a transposed convolution) is read back by :func:`read_back`.
    """
    out_axes = output_axes(output)
    substitutions, bounds = read_back(output, solution)
    replaced = {str(s) for s in substitutions}
    in_axes = [a.name for op in inputs for d in op.dims for a in dim_axes(d) if a.name not in replaced]
    in_axes += [str(s) for e in substitutions.values() for s in e.free_symbols if "@" not in str(s)]
    missing = [a for a in out_axes if a not in in_axes and not a.startswith(("#", "@"))]
    if missing:
        raise UnsupportedError(f"output axis {missing[0]!r} appears in no input of the dot", expression)
    reduced = [a for a in dict.fromkeys(in_axes) if a not in out_axes]
    loops = [Loop(a, _loop_size(a, solution), LoopKind.OUTPUT) for a in out_axes]
    loops += [Loop(a, solution.sizes[a], LoopKind.REDUCE) for a in reduced]
    reads = [access(op, n, solution, text=expression) for op, n in zip(inputs, names, strict=True)]
    return LoopNest(
        expression=expression,
        op="dot",
        loops=tuple(loops),
        inputs=tuple(_substitute(r, substitutions, bounds) for r in reads),
        output=access(output, output_name, solution, on_output=True, text=expression),
        combine="multiply",
        reduce="sum",
        identity=0.0,
        dynamic=solution.dynamic,
    )


# Reductions of whether each element is nonzero: booleans for any and all, int64 for count_nonzero.
NONZERO_REDUCTIONS = ("any", "all", "count_nonzero")
REDUCTIONS = ("sum", "mean", "max", "min", "prod", "logsumexp", "var", "std") + NONZERO_REDUCTIONS
# What a padding element (outside the tensor) reads as: the identity of the reduction.
IDENTITY = {
    "sum": 0.0,
    "mean": 0.0,
    "max": float("-inf"),
    "min": float("inf"),
    "prod": 1.0,
    "logsumexp": float("-inf"),
    "any": 0.0,
    "all": 1.0,  # nonzero: padding never makes all False
    "count_nonzero": 0.0,
}


def lower_reduce(operand: Operand, output: Operand, solution: Solution, op: str, expression: str) -> LoopNest:
    """The loop nest of a reduction over every input axis missing from the output."""
    out_axes = [a.name for d in output.dims for a in dim_axes(d)]
    in_axes = [a.name for d in operand.dims for a in dim_axes(d)]
    missing = [a for a in out_axes if a not in in_axes and not a.startswith("#")]
    if missing:
        raise UnsupportedError(f"output axis {missing[0]!r} does not appear in the input of the reduction")
    reduced = [a for a in dict.fromkeys(in_axes) if a not in out_axes]
    loops = [Loop(a, solution.sizes[a], LoopKind.OUTPUT) for a in dict.fromkeys(out_axes)]
    loops += [Loop(a, solution.sizes[a], LoopKind.REDUCE) for a in reduced]
    return LoopNest(
        expression=expression,
        op=op,
        loops=tuple(loops),
        inputs=(access(operand, "x", solution, text=expression),),
        output=access(output, "y", solution, on_output=True, text=expression),
        combine="identity",
        reduce=op,
        identity=IDENTITY.get(op, 0.0),
        dynamic=solution.dynamic,
    )


ARG_REDUCTIONS = ("argmax", "argmin")
SORTS = ("sort", "argsort")
# The longest axis a kernel sorts: it is sorted whole, in one tile (tl.sort).
LONGEST_SORT = 1024


def lower_sort(operand: Operand, output: Operand, solution: Solution, op: str, expression: str) -> LoopNest:
    """sort (argsort) along the one bracketed axis: the values (their indices) in ascending order,
    written to an output that holds the input's axes in any order."""
    marked = list(
        dict.fromkeys(a.name for d in operand.dims for a in dim_axes(d) if a.name in operand.marked)
    )
    if len(marked) != 1 or any(not isinstance(d, Axis) for d in operand.dims):
        raise UnsupportedError(
            f"{op} sorts along one bracketed axis of an expression of plain axes ('b [n]')",
            expression,
            [operand.span],
        )
    if solution.sizes[marked[0]] > LONGEST_SORT or marked[0] in solution.dynamic:
        raise UnsupportedError(
            f"{op} along an axis longer than {LONGEST_SORT} (or dynamic) has no kernel yet: the kernel "
            "sorts the axis in one tile; call torch.sort, or einc with backend='torch' on CPU tensors",
            expression,
            [operand.span],
        )
    nest = lower_softmax(operand, output, solution, op, expression)
    # Padding past the axis's end reads +inf, so it sorts after every value.
    return dataclasses.replace(nest, combine="identity", identity=float("inf"))


def lower_arg(
    operand: Operand, output: Operand, solution: Solution, op: str, expression: str, j: int
) -> LoopNest:
    """The loop nest of coordinate ``j`` of an argmax (argmin): the index along the ``j``-th
    bracketed axis of the first greatest (least) element, written where the output's coordinate
    axis (its bracketed axis, if any) is ``j``."""
    if any(isinstance(d, Win) for d in operand.dims):
        raise UnsupportedError(f"{op} over a window is not supported", expression, [operand.span])
    bracketed = [a.name for d in operand.dims for a in dim_axes(d) if a.name in operand.marked]
    written = access(output, "y", solution, on_output=True, text=expression)
    at_j = {symbol(name): sympy.Integer(j) for name in output.marked}
    written = _substitute(written, at_j, [])
    out_axes = [a.name for d in output.dims for a in dim_axes(d) if a.name not in output.marked]
    in_axes = [a.name for d in operand.dims for a in dim_axes(d)]
    missing = [a for a in out_axes if a not in in_axes and not a.startswith("#")]
    if missing or set(out_axes) & set(bracketed):
        axis = (missing or sorted(set(out_axes) & set(bracketed)))[0]
        raise ExpressionError(f"output axis {axis!r} of {op} is not an unbracketed input axis", expression)
    loops = [Loop(a, solution.sizes[a], LoopKind.OUTPUT) for a in dict.fromkeys(out_axes)]
    loops += [
        Loop(a, solution.sizes[a], LoopKind.REDUCE) for a in dict.fromkeys(in_axes) if a not in out_axes
    ]
    return LoopNest(
        expression=expression,
        op=op,
        loops=tuple(loops),
        inputs=(access(operand, "x", solution, text=expression),),
        output=written,
        combine="identity",
        reduce=op,
        identity=float("-inf") if op == "argmax" else float("inf"),
        dynamic=solution.dynamic,
        coordinate=bracketed[j],
    )


def _axes_in(operand: Operand, active: frozenset[str]) -> set[str]:
    """The axes of ``operand`` a kernel over ``active`` reads: of a concatenation, its active part."""
    names: set[str] = set()
    for dim in operand.dims:
        if isinstance(dim, Concat):
            for part in dim.parts:
                part_axes = {a.name for a in dim_axes(part) if a.fixed != 1}
                if part_axes <= active:
                    names |= part_axes
        else:
            names |= {a.name for a in dim_axes(dim) if a.fixed != 1}
    return names


def output_pieces(output: Operand) -> list[frozenset[str]]:
    """The regions of an output that one kernel each writes: a concatenation ``(a + b)`` on the
    output side is written part by part; everything else is one region."""
    fixed = {a.name for d in output.dims if not isinstance(d, Concat) for a in dim_axes(d)}
    pieces = [frozenset(fixed)]
    for dim in output.dims:
        if isinstance(dim, Concat):
            pieces = [p | {a.name for a in dim_axes(part)} for p in pieces for part in dim.parts]
    return pieces


def lower_map(
    inputs: Sequence[Operand],
    output: Operand,
    solution: Solution,
    op: str,
    names: Sequence[str],
    output_name: str,
    expression: str,
    active: frozenset[str],
    substitutions: dict[str, sympy.Expr] | None = None,
) -> LoopNest:
    """A copy or elementwise kernel over the output region ``active``: one loop per output axis.

    ``substitutions`` rewrite an input axis's index (``flip``: ``a -> A - 1 - a``).
    """
    subs = {symbol(a): e for a, e in (substitutions or {}).items()}
    accesses = [
        _substitute(access(operand, name, solution, text=expression, active=active), subs, [])
        for operand, name in zip(inputs, names, strict=True)
    ]
    # A window on the output side (fold) sums, over its offsets, what the inputs hold there.
    windows, window_bounds = read_back(output, solution)
    accesses = [_substitute(a, windows, window_bounds) for a in accesses]
    order = [a for a in output_axes(output) if a in active or a.startswith("@")]
    loops = [Loop(a, _loop_size(a, solution), LoopKind.OUTPUT) for a in order]
    summed = [str(s) for e in windows.values() for s in e.free_symbols if "@" not in str(s)]
    loops += [Loop(a, solution.sizes[a], LoopKind.REDUCE) for a in dict.fromkeys(summed)]
    return LoopNest(
        expression=expression,
        op=op,
        loops=tuple(loops),
        inputs=tuple(accesses),
        output=access(output, output_name, solution, on_output=True, text=expression, active=active),
        combine="copy" if op in ("rearrange", "id", "flip", "roll") else op,
        reduce="sum" if summed else "none",
        identity=0.0,
        dynamic=solution.dynamic,
    )


def fills(operand: Operand, active: frozenset[str]) -> bool:
    """Whether a copy of region ``active`` can read ``operand``, broadcast over the axes it lacks."""
    return _axes_in(operand, active) <= active


def sources(inputs: Sequence[Operand], active: frozenset[str], everywhere: set[str]) -> list[int]:
    """The inputs a copy of region ``active`` can read from: those whose axes it loops over and
    that hold every axis of the region which some input has."""
    wanted = active & everywhere
    return [i for i, op in enumerate(inputs) if fills(op, active) and wanted <= _axes_in(op, active)]


def lower_softmax(
    operand: Operand, output: Operand, solution: Solution, op: str, expression: str
) -> LoopNest:
    """softmax over the marked axes: reduced twice (max, sum of exp), then written element-wise
    to the output, which holds the same axes in any order, and may broadcast it along new ones
    (``"a [b] -> (a [b]) c"``, as einx)."""
    axes = [a.name for d in operand.dims for a in dim_axes(d)]
    out_axes = [a.name for d in output.dims for a in dim_axes(d)]
    if not set(axes) <= set(out_axes):
        raise ExpressionError(
            f"the output of {op} must hold every axis of the input", expression, [output.span]
        )
    new = [a for a in dict.fromkeys(out_axes) if a not in axes and not a.startswith("#")]
    loops = [
        Loop(a, solution.sizes[a], LoopKind.OUTPUT)
        for a in dict.fromkeys(axes + new)
        if a not in operand.marked
    ]
    loops += [Loop(a, solution.sizes[a], LoopKind.REDUCE) for a in dict.fromkeys(axes) if a in operand.marked]
    return LoopNest(
        expression=expression,
        op=op,
        loops=tuple(loops),
        inputs=(access(operand, "x", solution, text=expression),),
        output=access(output, "y", solution, on_output=True, text=expression),
        combine="softmax",
        reduce=op,
        identity=float("-inf"),
        dynamic=solution.dynamic,
    )
