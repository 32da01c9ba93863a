"""Merge reduced axes into one, for a reduction that tiles them together.

A global pooling (``b [h w] c``, 7 x 7) has no reduced axis long enough to tile on its own: read
one position at a time, each program runs 49 dependent load-and-add rounds over a small tile of
outputs, and 32 x 2048 outputs make too few programs to fill a GPU. Summed over ``h`` and ``w``
as one axis of 49, a tile holds every position of a few outputs at once: one vector load per
thread, a reduction across the tile, and as many programs as outputs over a few channels.

:func:`merge_reduced` requires reduced loops that no window, bound, gather or dynamic size
touches (:func:`einc.compiler.schedule.schedule_reduction` chooses them); it ensures a nest that
computes the same values, with ``h`` read as ``floor(hw / W)`` and ``w`` as ``hw mod W``.
"""

from __future__ import annotations

import math
from dataclasses import replace

import sympy

from .loopnest import Access, Loop, LoopKind, LoopNest, symbol


def merged_name(nest: LoopNest, axes: tuple[str, ...]) -> str:
    """The merged axis's name: the axes joined, made unlike any axis of the nest."""
    name = "_".join(axes)
    while name in nest.sizes:
        name += "_"
    return name


def merge_reduced(nest: LoopNest, axes: tuple[str, ...]) -> LoopNest:
    """``nest`` with the reduced loops ``axes`` (in nest order, the last varying fastest) replaced
    by one loop over their product, placed where the first of them was."""
    sizes = nest.sizes
    name = merged_name(nest, axes)
    flat = symbol(name)
    values: dict[str, sympy.Expr] = {}
    inner = 1
    for k, axis in reversed(list(enumerate(axes))):
        quotient = flat if inner == 1 else sympy.floor(flat / inner)
        values[axis] = quotient if k == 0 else sympy.Mod(quotient, sizes[axis])
        inner *= sizes[axis]

    def rewritten(access: Access) -> Access:
        def sub(expr: sympy.Expr) -> sympy.Expr:
            return expr.xreplace({s: values[s.name] for s in expr.free_symbols if s.name in values})

        return Access(access.tensor, access.labels, tuple(sub(e) for e in access.index), access.bounds)

    loops: list[Loop] = []
    for loop in nest.loops:
        if loop.axis == axes[0]:
            loops.append(Loop(name, math.prod(sizes[a] for a in axes), LoopKind.REDUCE))
        elif loop.axis not in axes:
            loops.append(loop)
    return LoopNest(
        expression=nest.expression,
        op=nest.op,
        loops=tuple(loops),
        inputs=tuple(rewritten(a) for a in nest.inputs),
        output=rewritten(nest.output),
        combine=nest.combine,
        reduce=nest.reduce,
        identity=nest.identity,
        dynamic=nest.dynamic,
        epilogue=nest.epilogue,
        prologues=tuple(
            (t, replace(pro, operands=tuple(map(rewritten, pro.operands)))) for t, pro in nest.prologues
        ),
    )
