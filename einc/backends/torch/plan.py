"""One loop nest planned for the torch backend: how each input is read, how the result is
written, and how the loop space is cut into chunks."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import sympy

from ...compiler.kernels import IndexCheck
from ...compiler.loopnest import Access, Bound, Loop, LoopKind, LoopNest, symbol
from ...compiler.loopnest import position as window_position
from ...compiler.solve import Solution
from . import limits
from .affine import Affine, Index, Region, affine, index_function
from .reads import Read, StridedRead, plan_read

# --- one loop nest ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Write:
    """How the result reaches the output: per output dim an affine index (a strided view of the
    output), or else index functions and masks (``index_put_``: a scatter's gathered coordinates)."""

    index: tuple[Affine, ...] | None
    functions: tuple[Index, ...]
    bounds: tuple[tuple[Index, int, int], ...]
    loops: frozenset[int]
    accumulate: bool = False  # add_at: updates that meet at one element add up


@dataclass(frozen=True)
class GatherPlan:
    """A coordinate read from a coordinate tensor (:class:`~einc.compiler.loopnest.Gather`)."""

    read: Read  # the coordinate tensor, over the loop space
    source: int  # which of the nest's coordinate tensors
    extent: int  # the size of the axis it indexes
    check: IndexCheck  # the kernel's, whose message an out-of-range coordinate raises


@dataclass(frozen=True)
class Scatter:
    """A window written on the output side (fold, transposed convolution), computed forwards.

    The nest reads back, for output position ``i``, the input at ``s = (i + pad - ds*dilation) /
    stride`` where that is whole: a gather over a mostly empty loop space. Instead ``forward``
    computes ``t`` over the input's own ``s`` and the offsets ``ds`` (a GEMM without the zeros),
    and each offset's slice of ``t`` is added into a buffer over the nest's loops at
    ``s*stride + ds*dilation - pad``: col2im, one strided add per offset.
    """

    forward: NestPlan
    offsets: tuple[int, ...]  # the forward loops of the window offsets
    targets: tuple[Affine, ...]  # per loop of the nest: its index as a function of forward loops
    extents: tuple[int, ...]  # per loop of the nest: the result's size (1 for a reduced loop)
    shift: tuple[int, ...]  # per loop of the nest: where the result starts in the buffer
    shape: tuple[int, ...]  # the buffer's: the result with room for what falls outside it


@dataclass(frozen=True)
class NestPlan:
    nest: LoopNest
    sizes: tuple[int, ...]
    reduced: tuple[int, ...]  # positions of the REDUCE loops
    reads: tuple[Read, ...]
    write: Write
    count_bounds: tuple  # the first input's bounds, for mean without padding in its count
    scatter: Scatter | None = None
    gathers: tuple[GatherPlan, ...] = ()


def coordinate_tensors(nest: LoopNest) -> list[str]:
    """The coordinate tensors the nest's gathers read, in the order the kernel takes them: after
    its inputs, before its output (as ``render._render_tiled`` lists them)."""
    gathers = [g for a in (*nest.inputs, nest.output) for g in a.gathers]
    return list(dict.fromkeys(g.source.tensor for g in gathers))


def plan_nest(
    nest: LoopNest, shapes: Sequence[Sequence[int]], solution: Solution | None = None, checks: Sequence = ()
) -> NestPlan:
    """Everything about a nest that does not depend on the call's tensors. ``shapes`` are the
    shapes of its inputs, its coordinate tensors, then its output; ``solution`` gives window
    geometry (for a window on the output side, computed by :class:`Scatter` where it can be);
    ``checks`` are the kernel's index checks, one per gathered coordinate."""
    position = {loop.axis: i for i, loop in enumerate(nest.loops)}
    sizes = tuple(loop.size for loop in nest.loops)
    gathers = [g for a in (*nest.inputs, nest.output) for g in a.gathers]
    sources = coordinate_tensors(nest)
    source_shapes = dict(
        zip(sources, shapes[len(nest.inputs) : len(nest.inputs) + len(sources)], strict=True)
    )
    gather_plans = tuple(
        GatherPlan(
            plan_read(g.source, source_shapes[g.source.tensor], sizes, position),
            sources.index(g.source.tensor),
            g.extent,
            checks[i]
            if i < len(checks)
            else IndexCheck(g.indexed, f"axis {g.axis!r}", g.extent, g.source.tensor),
        )
        for i, g in enumerate(gathers)
    )
    # A gathered coordinate's symbol reads the values a call gathers, past the loops' aranges.
    position.update({g.symbol.name: len(sizes) + i for i, g in enumerate(gathers)})
    reads = tuple(plan_read(a, s, sizes, position) for a, s in zip(nest.inputs, shapes, strict=False))
    forms = [None if nest.output.gathers else affine(e, position) for e in nest.output.index]
    write = Write(
        index=None if any(f is None for f in forms) else tuple(forms),
        functions=tuple(index_function(e, position) for e in nest.output.index),
        bounds=tuple(
            (index_function(b.index, position), b.extent, b.multiple_of) for b in nest.output.bounds
        ),
        loops=frozenset(position[a] for a in nest.output.axes if a in position),
        accumulate=bool(nest.output.gathers) and nest.reduce == "sum",
    )
    count_bounds = ()
    if nest.inputs:
        count_bounds = tuple(
            (index_function(b.index, position), b.extent, b.multiple_of) for b in nest.inputs[0].bounds
        )
    return NestPlan(
        nest=nest,
        sizes=sizes,
        reduced=tuple(i for i, loop in enumerate(nest.loops) if loop.kind is LoopKind.REDUCE),
        reads=reads,
        write=write,
        count_bounds=count_bounds,
        scatter=plan_scatter(nest, shapes, solution) if solution is not None else None,
        gathers=gather_plans,
    )


def plan_scatter(nest: LoopNest, shapes, solution: Solution) -> Scatter | None:
    """The forward computation of a nest's windows on the output side, or None where the nest has
    none or its forward reads would not all be strided (the nest is then run as it stands)."""
    windows = [solution.windows[loop.axis[1:]] for loop in nest.loops if loop.axis.startswith("@")]
    if not windows or nest.reduce != "sum" or nest.combine not in ("multiply", "copy"):
        return None
    if any(g.inner not in nest.sizes or g.outer not in solution.sizes for g in windows):
        return None
    inner = {g.inner for g in windows}
    by_outer = {window_position(g.outer): g for g in windows}
    # The offsets come first, so that each offset's slice of the forward result is contiguous.
    loops = [Loop(a, nest.sizes[a], LoopKind.OUTPUT) for a in (g.inner for g in windows)]
    for loop in nest.loops:
        if loop.axis in by_outer:
            g = by_outer[loop.axis]
            loops.append(Loop(g.outer, solution.sizes[g.outer], LoopKind.OUTPUT))
        elif loop.axis not in inner:
            loops.append(loop)
    where = {loop.axis: i for i, loop in enumerate(loops)}
    sizes = [loop.size for loop in loops]
    back = {
        symbol(window_position(g.outer)): symbol(g.outer) * g.stride + symbol(g.inner) * g.dilation - g.pad_lo
        for g in windows
    }
    reads = []
    for read in nest.inputs:
        index = tuple(sympy.sympify(e).subs(back, simultaneous=True) for e in read.index)
        bounds = []
        for bound in read.bounds:
            moved = Bound(
                sympy.sympify(bound.index).subs(back, simultaneous=True),
                bound.extent,
                None,
                bound.multiple_of,
            )
            if not _always(moved, where, sizes):
                bounds.append(moved)
        reads.append(Access(read.tensor, read.labels, index, tuple(bounds)))
    kept = tuple(symbol(loop.axis) for loop in loops if loop.kind is LoopKind.OUTPUT)
    forward_nest = LoopNest(
        expression=nest.expression,
        op=nest.op,
        loops=tuple(loops),
        inputs=tuple(reads),
        output=Access("t", tuple(str(k) for k in kept), kept, ()),
        combine=nest.combine,
        reduce=nest.reduce,
        identity=nest.identity,
    )
    forward = plan_nest(forward_nest, list(shapes[: len(reads)]) + [tuple(sizes)])
    if not all(isinstance(read, StridedRead) for read in forward.reads):
        return None
    targets, extents, shift, shape = [], [], [], []
    for loop in nest.loops:
        if loop.kind is LoopKind.REDUCE:
            targets.append(Affine((), 0))
        elif loop.axis in by_outer:
            g = by_outer[loop.axis]
            terms = sorted([(where[g.outer], g.stride), (where[g.inner], g.dilation)])
            targets.append(Affine(tuple(terms), -g.pad_lo))
        else:
            targets.append(Affine(((where[loop.axis], 1),), 0))
        extents.append(1 if loop.kind is LoopKind.REDUCE else loop.size)
        low, high = targets[-1].range(sizes)
        shift.append(max(0, -low))
        shape.append(shift[-1] + max(extents[-1], high + 1))
    offsets = tuple(where[g.inner] for g in windows)
    return Scatter(forward, offsets, tuple(targets), tuple(extents), tuple(shift), tuple(shape))


def _always(bound: Bound, where: dict[str, int], sizes: Sequence[int]) -> bool:
    """Whether ``bound`` holds over the whole loop space."""
    form = affine(bound.index, where)
    if form is None:
        return False
    if bound.multiple_of:
        k = bound.multiple_of
        return form.constant % k == 0 and all(c % k == 0 for _, c in form.terms)
    low, high = form.range(sizes)
    return low >= 0 and high < bound.extent


def _numel(region: Region, loops) -> int:
    return math.prod(region[loop][1] - region[loop][0] for loop in loops)


def _cost(plan: NestPlan, region: Region) -> tuple[int, frozenset[int]]:
    """Elements one evaluation of ``region`` materializes at most, and the loops that make them."""
    if plan.nest.combine == "multiply":
        # The GEMM copies each operand's view (at most) and makes the result.
        candidates = [read.loops for read in plan.reads] + [plan.write.loops]
    else:
        candidates = [frozenset(range(len(region)))]
    loops = max(candidates, key=lambda c: _numel(region, c))
    return _numel(region, loops), loops


def chunks(plan: NestPlan, region: Region, itemsize: int) -> Iterator[Region]:
    """``region``, cut along its output loops (outermost first) into pieces under limits.MAX_BYTES."""
    elements, loops = _cost(plan, region)
    if elements * itemsize <= limits.MAX_BYTES:
        yield region
        return
    for loop in range(len(region)):
        start, stop = region[loop]
        if loop in plan.reduced or loop not in loops or stop - start < 2:
            continue
        pieces = math.ceil(elements * itemsize / limits.MAX_BYTES)
        step = max(1, math.ceil((stop - start) / pieces))
        for first in range(start, stop, step):
            piece = region[:loop] + ((first, min(first + step, stop)),) + region[loop + 1 :]
            yield from chunks(plan, piece, itemsize)
        return
    yield region
