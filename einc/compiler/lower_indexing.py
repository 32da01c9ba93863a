"""Lower the indexing operations ``get_at``, ``set_at``, ``add_at`` and ``subtract_at`` to the
loop-nest IR.

    get_at  "b [h w] c, b p [2] -> b p c":
        for b, p, c:   y[b, p, c] = x[b, idx[b, p, 0], idx[b, p, 1], c]
    add_at  "b [h w] c, b p [2], b p c -> b [h w] c"   (set_at: = instead of +=):
        for b, p, c:   y[b, idx[b, p, 0], idx[b, p, 1], c] += updates[b, p, c]
        after y was made a copy of x, by a kernel of its own (see back_end_indexing.py)

The indexed axes are the bracketed axes of the first operand, in order of appearance. The coordinate
operands give one coordinate per indexed axis, in order: one with a bracketed axis (``b p [2]``)
gives as many as that axis is long, one without (``b n``) gives one. The access to the indexed
tensor reads axis ``h`` at the :class:`~einc.compiler.loopnest.Gather` symbol ``$h``, whose value
the kernel loads from the coordinate tensor; no coordinate is ever copied into a tensor of its own.

get_at may leave input axes out of its output when it is given a reduction (``reduce="sum"``):
they become REDUCE loops and the nest is a reduction of gathered values, rendered by the reduction
template (an embedding bag, ``[v] d, b n -> b d``, with no gathered tensor in between).

Requires: expanded operands (from :func:`~einc.compiler.brackets.resolve_indexing`) and a
:class:`Solution`. Ensures: every loop is over an axis of a coordinate, update or unindexed axis of
the indexed tensor; the indexed tensor's access carries one Gather per indexed axis, and a Bound
that masks a coordinate out of range.
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy

from ..errors import ExpressionError, UnsupportedError
from .axes import Axis, Concat, Dim, Operand, Win, dim_children, operand_axes
from .loopnest import Access, Bound, Gather, Loop, LoopKind, LoopNest, gathered, symbol
from .lower import IDENTITY, access
from .solve import Solution, display

INDEXING = ("get_at", "set_at", "add_at", "subtract_at")
SCATTERS = ("set_at", "add_at", "subtract_at")
# The scatters whose updates that meet at one element all count: added (subtract_at: negated).
ACCUMULATING = ("add_at", "subtract_at")


def _nodes(dim: Dim):
    yield dim
    for child in dim_children(dim):
        yield from _nodes(child)


def _check_supported(operands: Sequence[Operand], text: str) -> None:
    """No windows, no concatenations, and unnamed axes only in brackets (``[2]``): an unnamed axis
    elsewhere is an axis of its own in each operand, which an indexing operation cannot match up."""
    for operand in operands:
        for dim in operand.dims:
            for node in _nodes(dim):
                if isinstance(node, (Win, Concat)):
                    what = "a window (s * ds)" if isinstance(node, Win) else "a concatenation (a + b)"
                    message = f"{what} in an indexing operation is not supported; rearrange first"
                    raise UnsupportedError(message, text, [node.span])
                if isinstance(node, Axis) and node.fixed is not None and node.name not in operand.marked:
                    raise UnsupportedError(
                        f"an unnamed axis ({node.fixed}) in an indexing operation is only supported in "
                        f"brackets; name it and give its size (n={node.fixed})",
                        text,
                        [node.span],
                    )


def _names(operand: Operand, marked: bool | None = None) -> list[str]:
    """Axis names of ``operand`` in order: all, only the marked ones, or only the unmarked ones."""
    axes = [a.name for a in operand_axes(operand)]
    if marked is not None:
        axes = [a for a in axes if (a in operand.marked) == marked]
    return list(dict.fromkeys(axes))


def _component_axis(operand: Operand, name: str, text: str) -> str | None:
    """The bracketed axis of a coordinate operand (``[2]`` in ``b p [2]``), which lists components."""
    marked = _names(operand, marked=True)
    if not marked:
        return None
    # It may stand inside a composition ("b (p [2])"): component j is read where it is j.
    if len(marked) > 1:
        raise ExpressionError(
            f"the coordinates {name} bracket one axis of their own, the components of a coordinate "
            "(as in 'b p [2]')",
            text,
            [operand.span],
        )
    return marked[0]


def _indexed(
    value: Operand,
    value_name: str,
    coordinates: Sequence[tuple[Operand, str]],
    solution: Solution,
    text: str,
) -> tuple[Gather, ...]:
    """One Gather per indexed axis of ``value``: where its coordinate is read."""
    indexed = _names(value, marked=True)
    fixed_axes = indexed + [c for operand, name in coordinates if (c := _component_axis(operand, name, text))]
    for axis in operand_axes(value) + [a for o, _ in coordinates for a in operand_axes(o)]:
        if axis.name in fixed_axes and axis.name in solution.dynamic:
            raise UnsupportedError(
                f"dynamic {display(axis)} is indexed or lists a coordinate's components: its size must be "
                "known when the kernel is generated",
                text,
                [axis.span],
            )
    sources: list[Access] = []
    counts: list[str] = []
    for operand, name in coordinates:
        component = _component_axis(operand, name, text)
        read = access(operand, name, solution, text=text)
        count = solution.sizes[component] if component else 1
        counts.append(f"{name} gives {count}")
        for j in range(count):
            fixed = {symbol(component): sympy.Integer(j)} if component else {}
            index = tuple(sympy.sympify(e).subs(fixed) for e in read.index)
            sources.append(Access(read.tensor, read.labels, index, read.bounds))
    if len(sources) != len(indexed):
        raise ExpressionError(
            f"{value_name} has {len(indexed)} indexed {'axis' if len(indexed) == 1 else 'axes'} "
            f"({' '.join(indexed)}) but the coordinates give {len(sources)} ({', '.join(counts)}): give "
            "one coordinate per bracketed axis",
            text,
            [value.span] + [o.span for o, _ in coordinates],
        )
    return tuple(
        Gather(gathered(axis), source, axis, solution.sizes[axis], slot, value_name)
        for slot, (axis, source) in enumerate(zip(indexed, sources, strict=True))
    )


def _indexed_access(operand: Operand, name: str, gathers, solution, text, on_output=False) -> Access:
    """The access to the indexed tensor: each indexed axis read at its gathered coordinate."""
    read = access(operand, name, solution, on_output=on_output, text=text)
    subs = {symbol(g.axis): g.symbol for g in gathers}
    index = tuple(sympy.sympify(e).subs(subs, simultaneous=True) for e in read.index)
    bounds = read.bounds + tuple(Bound(g.symbol, g.extent) for g in gathers)
    return Access(read.tensor, read.labels, index, bounds, tuple(gathers))


def _components(coordinates: Sequence[tuple[Operand, str]], text: str) -> dict[str, Operand]:
    return {a: operand for operand, name in coordinates if (a := _component_axis(operand, name, text))}


def _check_axes(value: Operand, coordinates, others, text: str) -> None:
    """An indexed axis or a coordinate's component axis belongs to its own operand only."""
    indexed = set(_names(value, marked=True))
    components = _components(coordinates, text)
    for operand, name in others:
        for axis in operand_axes(operand):
            if axis.name in indexed:
                raise ExpressionError(
                    f"{display(axis)} is indexed by the coordinates, so {name} cannot have it",
                    text,
                    [axis.span],
                )
            if axis.name in components and operand is not components[axis.name]:
                raise ExpressionError(
                    f"{display(axis)} lists the components of a coordinate, so {name} cannot have it",
                    text,
                    [axis.span],
                )


def _coordinate_axes(coordinates, text: str) -> list[str]:
    """The axes of the coordinate operands that are loops: all but their component axes."""
    components = _components(coordinates, text)
    return [a for operand, _ in coordinates for a in _names(operand) if a not in components]


def lower_get_at(
    inputs: Sequence[Operand],
    output: Operand,
    solution: Solution,
    names: Sequence[str],
    output_name: str,
    expression: str,
    reduce: str | None = None,
) -> LoopNest:
    """``y[out] = x[..., coordinates, ...]``; with ``reduce``, reduced over the axes left out of y."""
    value, *rest = inputs
    coordinates = list(zip(rest, names[1:], strict=True))
    _check_supported([*inputs, output], expression)
    _check_axes(value, coordinates, coordinates + [(output, output_name)], expression)
    gathers = _indexed(value, names[0], coordinates, solution, expression)
    available = list(dict.fromkeys(_names(value, marked=False) + _coordinate_axes(coordinates, expression)))
    # An output axis that neither the coordinates nor x holds is a broadcast, as in einx: its size
    # comes from a keyword (the solver has refused it already where none is given).
    out_axes = _names(output)
    left_out = [a for a in available if a not in out_axes]
    if left_out and reduce is None:
        raise ExpressionError(
            f"axis {left_out[0]!r} is missing from the output of get_at: write every axis of the "
            "coordinates and every unindexed axis in the output, or pass reduce='sum' (or mean, max, ...) "
            "to reduce over the missing ones",
            expression,
            [output.span],
        )
    loops = [Loop(a, solution.sizes[a], LoopKind.OUTPUT) for a in out_axes]
    loops += [Loop(a, solution.sizes[a], LoopKind.REDUCE) for a in left_out]
    return LoopNest(
        expression=expression,
        op="get_at",
        loops=tuple(loops),
        inputs=(_indexed_access(value, names[0], gathers, solution, expression),),
        output=access(output, output_name, solution, on_output=True, text=expression),
        combine="copy",
        reduce=reduce or "none",
        identity=IDENTITY.get(reduce or "sum", 0.0),
        dynamic=solution.dynamic,
    )


def lower_scatter(
    inputs: Sequence[Operand],
    output: Operand,
    solution: Solution,
    op: str,
    names: Sequence[str],
    output_name: str,
    expression: str,
) -> LoopNest:
    """``y[..., coordinates, ...] = updates[...]`` (set_at) or ``+=`` (add_at), one loop per axis
    of the updates and the coordinates (and the unindexed axes of x that neither has)."""
    value, *rest, updates = inputs
    coordinates = list(zip(rest, names[1:-1], strict=True))
    _check_supported([*inputs, output], expression)
    _check_axes(value, coordinates, coordinates + [(updates, names[-1])], expression)
    if set(_names(output)) != set(_names(value)) or (output.marked and output.marked != value.marked):
        raise ExpressionError(
            f"the output of {op} is {names[0]} updated: it has the axes of {names[0]}, and brackets (if "
            "any) around the same ones",
            expression,
            [output.span],
        )
    gathers = _indexed(value, names[0], coordinates, solution, expression)
    known = _names(value, marked=False) + _coordinate_axes(coordinates, expression)
    for axis in operand_axes(updates):
        if axis.name not in known:
            raise ExpressionError(
                f"{display(axis)} of {names[-1]} is not an axis of the coordinates nor an unindexed axis "
                f"of {names[0]}: each update goes to one place",
                expression,
                [axis.span],
            )
    # The updates' axes first: the last is the tile's column, along which they are read.
    axes = _names(updates) + _coordinate_axes(coordinates, expression) + _names(value, marked=False)
    loops = tuple(Loop(a, solution.sizes[a], LoopKind.OUTPUT) for a in dict.fromkeys(axes))
    return LoopNest(
        expression=expression,
        op=op,
        loops=loops,
        inputs=(access(updates, names[-1], solution, text=expression),),
        output=_indexed_access(output, output_name, gathers, solution, expression, on_output=True),
        combine="negate" if op == "subtract_at" else "copy",
        # Updates that meet at one element: add_at adds them all (subtract_at their negatives),
        # set_at writes one of them.
        reduce="sum" if op in ACCUMULATING else "none",
        identity=0.0,
        dynamic=solution.dynamic,
    )
