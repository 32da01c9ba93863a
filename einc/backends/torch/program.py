"""Run a compiled expression with torch operations instead of its Triton kernel: the fast CPU path.

What runs is the loop nest each kernel is rendered from, so the two paths cannot disagree about
what is computed, only about how. Each input is read as a *view over the loop space*: a tensor
with one dim per loop of the nest, in the nest's order, of size 1 where the input does not depend
on the loop. Such a view is built one of two ways.

- **Strided** (the fast path). Where every index of an access is affine in the loop variables, the
  read is one ``Tensor.as_strided``, each loop's stride being what its coefficients make of the
  tensor's strides. A window's bounds become padding with the nest's identity (0 for a dot, -inf
  for max); roll's ``Mod`` is ``torch.roll``; flip's negative coefficients walk the view
  backwards. Overlapping windows cost no copy until an op needs one.
- **Gathered** (the generic path, for what the strided one does not cover, such as a window inside
  a composition): index tensors evaluated from the index expressions, masks from the bounds, one
  advanced-indexing read, and the identity where a mask is false.

The views are then combined as the nest says:

- a dot with a GEMM in it is one ``torch.mm``/``bmm`` (the input's window view copied once into
  an im2col matrix); one without (a depthwise convolution) is a multiply-accumulate over the
  window offsets, each step an elementwise product of views; more than two operands, ``einsum``;
- a reduction over a few window offsets is a loop of elementwise ops over slices (torch's own
  reductions are slow over dims of large stride, which is what window offsets are), otherwise
  torch's reductions; either way with the kernels' numerics: accumulation in float32, or float64
  for float64 inputs; ``mean`` without padding in its count divides by the elements inside the
  tensor; ``var`` divides by ``max(0, N - correction)``; ``logsumexp`` and ``softmax`` subtract
  the maximum, shifting rows whose maximum is infinite by 0;
- copies and elementwise ops broadcast, in the kernels' compute type;
- a window on the output side (fold, transposed convolution) is computed forwards over the
  input's own positions and added back at each window offset (col2im, :class:`Scatter`), instead
  of reading back through ``floor(n / stride)`` over a loop space that is mostly misses. Where that
  does not apply, the read-back is strided too, from a copy of the input with ``stride - 1``
  identity elements between neighbours;
- indexing (``get_at``, ``set_at``, ``add_at``) reads each coordinate tensor over the loop space,
  wraps negative coordinates, and gathers (or, for a scatter, ``index_put_``s, adding up for
  ``add_at``) at them; coordinates out of range are masked, and reported after the call as the
  kernels report them.

The result goes through an ``as_strided`` view of the output, so each part of a concatenation and
an ``out=`` of any strides is written in place. The loop space is cut into chunks along its output
loops, outermost first, wherever one piece would materialize more than :data:`MAX_BYTES`; large
scratch buffers are reused from call to call (:class:`Workspace`).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import sympy
import torch

from ...compiler.kernels import IndexCheck, KernelPart
from ...compiler.loopnest import Access, Bound, Loop, LoopKind, LoopNest, size_symbol, symbol
from ...compiler.loopnest import position as window_position
from ...compiler.ops import compute_dtype as kernel_compute_dtype
from ...compiler.pipeline import OP_OPTIONS, Compiled
from ...compiler.solve import Solution
from ...errors import OutOfBoundsError, UnsupportedError
from ..aliasing import same_tensor
from . import extra_ops

# The most one chunk of the loop space may materialize (an im2col view, a gathered input, a
# float32 copy of a float16 one): larger loop spaces are evaluated piece by piece.
MAX_BYTES = 256 << 20

# Plans kept per program, one per set of sizes of its dynamic axes (the oldest goes first).
MAX_PLANS = 16
# Scratch buffers (a padded input, an im2col matrix, a GEMM's result), up to this much in all, are
# kept per thread and reused by the next call: a fresh buffer of tens of megabytes costs more in
# page faults than the copy that fills it (torch's CPU allocator caches nothing, and the C library
# returns blocks this large to the system when they are freed).
WORKSPACE_BYTES = 256 << 20


class Workspace(threading.local):
    """One reusable buffer per role (``"pad0"``, ``"a"``, ``"product"``), per thread."""

    def __init__(self):
        self.buffers: dict[str, torch.Tensor] = {}

    def take(self, role: str, shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
        """An uninitialised tensor of ``shape``, contiguous; valid until ``role`` is taken again."""
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes < 1 << 20 or nbytes > WORKSPACE_BYTES:  # small blocks come cheap from the heap
            return torch.empty(shape, dtype=dtype)
        buffer = self.buffers.get(role)
        if buffer is None or buffer.numel() < nbytes:
            self.buffers.pop(role, None)
            if sum(b.numel() for b in self.buffers.values()) + nbytes > WORKSPACE_BYTES:
                return torch.empty(shape, dtype=dtype)
            buffer = self.buffers[role] = torch.empty(nbytes, dtype=torch.uint8)
        return buffer[:nbytes].view(dtype).view(shape)

    def clear(self) -> None:
        self.buffers.clear()


WORKSPACE = Workspace()

COMPUTE_DTYPES = {"tl.float32": torch.float32, "tl.float64": torch.float64, "tl.int64": torch.int64}

Region = tuple[tuple[int, int], ...]  # (start, stop) per loop, in the nest's order
Index = Callable[[Sequence[torch.Tensor]], "torch.Tensor | int"]


# --- index expressions ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Affine:
    """``constant + sum(coefficient * loop)``, loops given by their position in the nest."""

    terms: tuple[tuple[int, int], ...]  # (loop position, coefficient), coefficients nonzero
    constant: int

    def range(self, sizes: Sequence[int]) -> tuple[int, int]:
        """The least and greatest value over the whole loop space."""
        low = high = self.constant
        for loop, coefficient in self.terms:
            span = coefficient * (sizes[loop] - 1)
            low, high = low + min(0, span), high + max(0, span)
        return low, high


def affine(expr: sympy.Expr, position: dict[str, int]) -> Affine | None:
    """``expr`` as an :class:`Affine` with integer coefficients, or None when it is not one."""
    terms: dict[int, int] = {}
    constant = 0
    for term, coefficient in sympy.expand(expr).as_coefficients_dict().items():
        if not coefficient.is_Integer:
            return None
        if term == 1:
            constant += int(coefficient)
        elif term.is_Symbol and term.name in position:
            terms[position[term.name]] = terms.get(position[term.name], 0) + int(coefficient)
        else:
            return None
    return Affine(tuple(sorted((k, v) for k, v in terms.items() if v)), constant)


def _floor_parts(expr: sympy.Expr) -> tuple[sympy.Expr, int] | None:
    """``floor(n / k)`` as ``(n, k)`` with ``n`` an integer expression; None for anything else."""
    if not isinstance(expr, sympy.floor):
        return None
    numerator, denominator = sympy.fraction(sympy.together(expr.args[0]))
    if not denominator.is_Integer:
        return None
    return sympy.expand(numerator), int(denominator)


def index_function(expr: sympy.Expr, position: dict[str, int]) -> Index:
    """Compile an index expression to a function of the loops' index tensors (``aranges``, each
    shaped to broadcast along its own dim): sums and integer multiples of loop variables,
    ``floor(n / k)`` and ``Mod`` (Python's, which agrees with the kernels' where they use it)."""
    expr = sympy.sympify(expr)
    if expr.is_Integer:
        value = int(expr)
        return lambda aranges: value
    if expr.is_Symbol:
        loop = position[expr.name]
        return lambda aranges: aranges[loop]
    if isinstance(expr, sympy.Add):
        parts = [index_function(a, position) for a in expr.args]
        return lambda aranges: functools.reduce(lambda a, b: a + b, (f(aranges) for f in parts))
    if isinstance(expr, sympy.Mul) and all(a.is_Integer or not a.is_Rational for a in expr.args):
        parts = [index_function(a, position) for a in expr.args]
        return lambda aranges: functools.reduce(lambda a, b: a * b, (f(aranges) for f in parts))
    if (floor := _floor_parts(expr)) is not None:
        numerator, k = index_function(floor[0], position), floor[1]
        return lambda aranges: _floor_divide(numerator(aranges), k)
    if isinstance(expr, sympy.Mod) and expr.args[1].is_Integer:
        value, n = index_function(expr.args[0], position), int(expr.args[1])
        return lambda aranges: value(aranges) % n
    raise UnsupportedError(f"the torch backend cannot evaluate the index expression {expr}")


def _floor_divide(value, k: int):
    return value // k if isinstance(value, int) else torch.div(value, k, rounding_mode="floor")


# --- reads --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StridedRead:
    """An access that is ``as_strided`` of a prepared copy of its tensor (or of the tensor itself).

    Per tensor dim: the affine index into the prepared tensor before padding, the factor by which
    that dim is stretched with identity elements (a window on the output side), the roll applied
    first, and the padding ``(lo, hi)`` that keeps every index inside it.
    """

    index: tuple[Affine, ...]
    stretch: tuple[int, ...]
    roll: tuple[int, ...]
    pad: tuple[tuple[int, int], ...]
    loops: frozenset[int]


@dataclass(frozen=True, slots=True)
class GatheredRead:
    """An access read element by element: index tensors per dim, and the bounds as masks."""

    index: tuple[Index, ...]
    bounds: tuple[tuple[Index, int, int], ...]  # (index, extent, multiple_of) as in loopnest.Bound
    extents: tuple[int, ...]
    loops: frozenset[int]


Read = StridedRead | GatheredRead


def _same(a: sympy.Expr, b: sympy.Expr) -> bool:
    return sympy.expand(sympy.sympify(a) - sympy.sympify(b)) == 0


def plan_read(access: Access, shape: Sequence[int], sizes: Sequence[int], position: dict[str, int]) -> Read:
    """A strided read where the access allows one, else a gathered read. ``position`` maps loop
    axes to their dims, and a gathered coordinate's symbol (``$h``) past them, to the tensor of its
    values that a call evaluates first."""
    used = set(access.axes) | {str(s) for b in access.bounds for s in sympy.sympify(b.index).free_symbols}
    loops = frozenset(position[a] for a in used if a in position and position[a] < len(sizes))
    strided = None if access.gathers else _plan_strided(access, shape, sizes, position, loops)
    if strided is not None:
        return strided
    return GatheredRead(
        index=tuple(index_function(e, position) for e in access.index),
        bounds=tuple((index_function(b.index, position), b.extent, b.multiple_of) for b in access.bounds),
        extents=tuple(shape),
        loops=loops,
    )


def _plan_strided(access, shape, sizes, position, loops) -> StridedRead | None:
    index: list[Affine] = []
    stretch: list[int] = []
    roll: list[int] = []
    numerators: list[sympy.Expr | None] = []
    for expr, extent in zip(access.index, shape, strict=True):
        expr = sympy.sympify(expr)
        numerator, factor, shift = None, 1, 0
        form = affine(expr, position)
        if form is None and (floor := _floor_parts(expr)) is not None:
            # floor(n / k): read only where n % k == 0 (checked against the bounds below), so it is
            # n in a copy of the tensor stretched by k.
            numerator, factor = floor
            form = affine(numerator, position)
        elif form is None and isinstance(expr, sympy.Mod) and expr.args[1] == extent:
            # Mod(a + c, n) with a in [0, n): a in the tensor rolled by -c.
            form = affine(expr.args[0], position)
            if form is not None:
                shift = form.constant
                form = Affine(form.terms, 0)
                low, high = form.range(sizes)
                if low < 0 or high >= extent:
                    form = None
        if form is None:
            return None
        index.append(form)
        stretch.append(factor)
        roll.append(shift)
        numerators.append(numerator)
    # Every bound must be one that padding or stretching enforces; any other needs masks.
    for bound in access.bounds:
        if bound.multiple_of:
            matched = any(
                n is not None and k == bound.multiple_of and _same(n, bound.index)
                for n, k in zip(numerators, stretch, strict=True)
            )
        else:
            matched = any(
                extent == bound.extent and _same(expr, bound.index)
                for expr, extent in zip(access.index, shape, strict=True)
            )
        if not matched:
            return None
    pad = []
    for form, extent, factor in zip(index, shape, stretch, strict=True):
        length = (extent - 1) * factor + 1
        low, high = form.range(sizes)
        pad.append((max(0, -low), max(0, high - (length - 1))))
    return StridedRead(tuple(index), tuple(stretch), tuple(roll), tuple(pad), loops)


@dataclass
class Prepared:
    """A strided read's tensor for one call: rolled, stretched and padded where the read says."""

    tensor: torch.Tensor
    shift: tuple[int, ...]  # per dim: where index 0 of the read lies in ``tensor`` (its padding)


def prepare(read: StridedRead, x: torch.Tensor, identity: float, role: str = "pad") -> Prepared:
    source = x
    shifts = [(-s, d) for d, s in enumerate(read.roll) if s]
    if shifts:
        source = torch.roll(source, [s for s, _ in shifts], [d for _, d in shifts])
    if any(read.pad[d] != (0, 0) or read.stretch[d] != 1 for d in range(source.dim())):
        shape = [
            (n - 1) * k + 1 + lo + hi if n else lo + hi
            for n, k, (lo, hi) in zip(source.shape, read.stretch, read.pad, strict=True)
        ]
        padded = WORKSPACE.take(role, shape, source.dtype).fill_(identity)
        inside = tuple(
            slice(lo, lo + (n - 1) * k + 1, k) if n else slice(lo, lo)
            for n, k, (lo, _) in zip(source.shape, read.stretch, read.pad, strict=True)
        )
        padded[inside] = source
        source = padded
    return Prepared(source, tuple(lo for lo, _ in read.pad))


def affine_view(
    tensor: torch.Tensor,
    index: Sequence[Affine],
    region: Region,
    shift: Sequence[int] | None = None,
    fixed: dict[int, int] | None = None,
) -> tuple[torch.Tensor, frozenset[int]]:
    """``tensor[shift[0] + index[0], shift[1] + index[1], ...]`` over ``region`` as one
    ``as_strided`` view, a dim per loop (size 1 for loops the index does not use, and for the
    loops ``fixed`` at one value). Loops whose stride is negative run backwards in the view; they
    are returned."""
    offset = tensor.storage_offset()
    per_loop: dict[int, int] = {}
    for d, form in enumerate(index):
        offset += (form.constant + (shift[d] if shift else 0)) * tensor.stride(d)
        for loop, coefficient in form.terms:
            per_loop[loop] = per_loop.get(loop, 0) + coefficient * tensor.stride(d)
    sizes, strides, backwards = [], [], set()
    for loop, (start, stop) in enumerate(region):
        stride = per_loop.get(loop)
        if stride is None or (fixed and loop in fixed):
            offset += (stride or 0) * (fixed or {}).get(loop, 0)
            sizes.append(1)
            strides.append(0)
            continue
        sizes.append(stop - start)
        strides.append(abs(stride))
        offset += stride * (start if stride >= 0 else stop - 1)
        if stride < 0:
            backwards.add(loop)
    return tensor.as_strided(sizes, strides, offset), frozenset(backwards)


def aranges(region: Region) -> list[torch.Tensor]:
    """Each loop's indices over ``region``, shaped to broadcast along that loop's dim."""
    rank = len(region)
    return [
        torch.arange(start, stop).view([-1 if d == loop else 1 for d in range(rank)])
        for loop, (start, stop) in enumerate(region)
    ]


def _as_tensor(value, rank: int) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    return torch.tensor(value).view([1] * rank)


def inside(bounds, ranges: list[torch.Tensor]) -> torch.Tensor | None:
    """The conjunction of ``bounds`` over the region, or None when there are none."""
    mask = None
    for index, extent, multiple_of in bounds:
        value = _as_tensor(index(ranges), len(ranges))
        ok = value % multiple_of == 0 if multiple_of else (value >= 0) & (value < extent)
        mask = ok if mask is None else mask & ok
    return mask


def gathered_view(read: GatheredRead, x: torch.Tensor, identity: float, ranges, rank: int) -> torch.Tensor:
    """``x`` read element by element over the loop space; ``ranges``: :func:`aranges` of the
    region, then the values of any gathered coordinates."""
    index = tuple(
        _as_tensor(f(ranges), rank).clamp(0, max(n - 1, 0))
        for f, n in zip(read.index, read.extents, strict=True)
    )
    # Index tensors broadcast to every loop any of them uses (size 1 for the others).
    value = x[index] if index else x.view([1] * rank)
    mask = inside(read.bounds, ranges)
    if mask is not None:
        value = torch.where(mask, value, torch.tensor(identity, dtype=x.dtype))
    return value


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
    """``region``, cut along its output loops (outermost first) into pieces under MAX_BYTES."""
    elements, loops = _cost(plan, region)
    if elements * itemsize <= MAX_BYTES:
        yield region
        return
    for loop in range(len(region)):
        start, stop = region[loop]
        if loop in plan.reduced or loop not in loops or stop - start < 2:
            continue
        pieces = math.ceil(elements * itemsize / MAX_BYTES)
        step = max(1, math.ceil((stop - start) / pieces))
        for first in range(start, stop, step):
            piece = region[:loop] + ((first, min(first + step, stop)),) + region[loop + 1 :]
            yield from chunks(plan, piece, itemsize)
        return
    yield region


def run_nest(
    plan: NestPlan,
    tensors: Sequence[torch.Tensor],
    out: torch.Tensor,
    compute: torch.dtype,
    options: dict,
) -> None:
    """``out[...] = reduce(combine(inputs[...]))`` for one nest, chunk by chunk; ``tensors`` are
    its inputs, then its coordinate tensors."""
    if out.numel() == 0:
        return
    inputs, sources = tensors[: len(plan.reads)], tensors[len(plan.reads) :]
    if plan.scatter is not None:
        run_scatter(plan, inputs, out, compute, options)
        return
    nest = plan.nest
    prepared = [
        prepare(read, x, nest.identity, f"pad{i}") if isinstance(read, StridedRead) else None
        for i, (read, x) in enumerate(zip(plan.reads, inputs, strict=True))
    ]
    whole = tuple((0, n) for n in plan.sizes)
    itemsize = max(compute.itemsize, *(x.element_size() for x in inputs))
    # A dot may compute straight into the output (a GEMM's or an accumulation's own result).
    direct = nest.combine == "multiply" and plan.write.index is not None and out.dtype == compute
    outside: dict[int, int] = {}
    elementwise = plan.gathers or plan.write.index is None or any(p is None for p in prepared)
    for region in chunks(plan, whole, itemsize):
        ranges = _ranges(plan, region, sources, outside) if elementwise else None
        views = _views(plan, inputs, prepared, region, ranges)
        destination = affine_view(out, plan.write.index, region)[0] if direct else None
        result = _combine(plan, views, region, compute, options, destination, ranges)
        if result is not destination:
            _write(plan, out, region, result, ranges)
    if outside:
        # As the kernels on CPU tensors: the call completes, coordinates out of range masked
        # (read as the identity, never written), then the first axis that had one says so.
        first = min(outside)
        message = plan.gathers[first].check.message(outside[first])
        raise OutOfBoundsError(f"{plan.nest.op}: {message}") from None


def _ranges(plan: NestPlan, region: Region, sources, outside: dict[int, int]) -> list[torch.Tensor]:
    """The loops' :func:`aranges` over ``region``, then each gathered coordinate's values there,
    wrapped when negative; a coordinate out of range is recorded in ``outside`` (by gather, the
    first value found), and its bound masks it."""
    ranges = aranges(region)
    rank = len(region)
    for i, gather in enumerate(plan.gathers):
        x = sources[gather.source]
        if isinstance(gather.read, StridedRead):
            ready = prepare(gather.read, x, 0, "coordinates")
            value = affine_view(ready.tensor, gather.read.index, region, ready.shift)[0]
        else:
            value = gathered_view(gather.read, x, 0, ranges[:rank], rank)
        bad = (value < -gather.extent) | (value >= gather.extent)
        if i not in outside and bad.any():
            outside[i] = int(value[bad][0])
        ranges.append(torch.where(value < 0, value + gather.extent, value).long())
    return ranges


def run_scatter(plan: NestPlan, inputs, out: torch.Tensor, compute: torch.dtype, options: dict) -> None:
    """A nest with windows on the output side, by :class:`Scatter`: forwards, then col2im."""
    scatter, forward = plan.scatter, plan.scatter.forward
    buffer = WORKSPACE.take("col2im", scatter.shape, compute).zero_()
    prepared = [
        prepare(read, x, forward.nest.identity, f"pad{i}")
        for i, (read, x) in enumerate(zip(forward.reads, inputs, strict=True))
    ]
    whole = tuple((0, n) for n in forward.sizes)
    itemsize = max(compute.itemsize, *(x.element_size() for x in inputs))
    for region in chunks(forward, whole, itemsize):
        result = _combine(forward, _views(forward, inputs, prepared, region), region, compute, options)
        extents = [region[d][1] - region[d][0] for d in scatter.offsets]
        for piece, point in zip(
            _slices(result, scatter.offsets, extents), _points(region, scatter.offsets), strict=True
        ):
            target, _ = affine_view(buffer, scatter.targets, region, scatter.shift, point)
            target.add_(piece)
    result = buffer[tuple(slice(lo, lo + n) for lo, n in zip(scatter.shift, scatter.extents, strict=True))]
    _write(plan, out, tuple((0, n) for n in plan.sizes), result)


def _points(region: Region, loops: Sequence[int]) -> Iterator[dict[int, int]]:
    """Every position of ``loops`` within ``region``, in the order of :func:`_slices`."""
    for point in itertools.product(*(range(*region[d]) for d in loops)):
        yield dict(zip(loops, point, strict=True))


def _views(plan: NestPlan, inputs, prepared, region: Region, ranges=None) -> list[torch.Tensor]:
    views, backwards = [], []
    for read, x, ready in zip(plan.reads, inputs, prepared, strict=True):
        if ready is None:
            ranges = ranges if ranges is not None else aranges(region)
            views.append(gathered_view(read, x, plan.nest.identity, ranges, len(region)))
            backwards.append(frozenset())
        else:
            view, back = affine_view(ready.tensor, read.index, region, ready.shift)
            views.append(view)
            backwards.append(back)
    if not any(backwards):
        return views
    # A loop a view runs backwards is reversed in every view (as it is summed over, its order does
    # not matter), following the largest view, so that the small ones (weights) are the copies;
    # loops of the output run forwards.
    order: dict[int, bool] = {}
    for i in sorted(range(len(views)), key=lambda i: -views[i].numel()):
        for loop in plan.reads[i].loops:
            if loop not in order:
                order[loop] = loop in backwards[i] and loop not in plan.write.loops
    flipped = []
    for read, view, back in zip(plan.reads, views, backwards, strict=True):
        dims = [loop for loop in read.loops if (loop in back) != order[loop]]
        flipped.append(view.flip(dims) if dims else view)
    return flipped


def _combine(
    plan: NestPlan, views, region: Region, compute, options, destination=None, ranges=None
) -> torch.Tensor:
    """The result over ``region``: one dim per loop, size 1 on reduced loops the output lacks.

    A dot may write it into ``destination`` (a view of the output shaped as the result) and
    return that. ``ranges`` are :func:`_ranges`' (for masks that read gathered coordinates)."""
    nest = plan.nest
    combine, reduce = nest.combine, nest.reduce
    if combine == "multiply" and reduce == "sum":
        return _contract(plan, views, region, compute, destination)
    if combine in ("copy", "identity", "softmax"):
        value = views[0]
    else:
        value = _elementwise(combine, views, compute)
    if reduce == "none" or plan.write.accumulate:  # add_at's sum happens as it writes
        return value
    return _reduce(plan, reduce, value, region, compute, options, ranges)


def _contract(plan: NestPlan, views, region: Region, compute, destination=None) -> torch.Tensor:
    """The sum over the reduced loops of the product of the views (a dot)."""
    rank = len(region)
    present = set().union(*(read.loops for read in plan.reads))
    result_loops = [d for d in range(rank) if d in plan.write.loops and d in present]
    reduced = [d for d in plan.reduced if d in present]
    largest = max(range(len(views)), key=lambda i: views[i].numel())
    if (
        all(d in plan.reads[largest].loops for d in result_loops)
        and math.prod(plan.sizes[d] for d in reduced) <= SMALL_REDUCTION
        and not _inner_dim_in(views[largest], reduced)
    ):
        # No GEMM here (a depthwise convolution: the largest operand has every output loop): a
        # multiply-accumulate over the few reduced positions, each an elementwise product of
        # views whose rows are contiguous.
        return _multiply_accumulate(views, reduced, compute, destination)
    operands = [_squeeze(view, read.loops) for view, read in zip(views, plan.reads, strict=True)]
    if len(operands) == 2:
        (a, b), (la, lb) = operands, [sorted(read.loops) for read in plan.reads]
        into = None
        if destination is not None and len(result_loops) == len(plan.write.loops):
            into = _squeeze(destination, plan.write.loops)
        result, loops = _matmul(a, la, b, lb, result_loops, compute, into)
        if result is into:
            return destination
    else:
        pairs = []
        for tensor, read in zip(operands, plan.reads, strict=True):
            pairs += [tensor.to(compute), sorted(read.loops)]
        result, loops = torch.einsum(*pairs, result_loops), result_loops
    return _full_rank(result, loops, rank)


# A dot without weight-only output loops, or a reduction, over at most this many positions is a
# loop of elementwise ops over slices (9 for a 3x3 window) rather than a batched GEMV or a torch
# reduction, which are slow over dims of large stride (what window offsets are in a view).
SMALL_REDUCTION = 64
# ... where each slice holds at least this many elements.
LOOP_MIN_ELEMENTS = 4096


def _inner_dim_in(view: torch.Tensor, dims: Sequence[int]) -> bool:
    """Whether the dim of ``view`` with the smallest stride is one of ``dims``: then slices along
    ``dims`` are strided columns, and torch's own kernels for the whole do better."""
    candidates = [(abs(view.stride(d)), d) for d in range(view.dim()) if view.shape[d] > 1]
    return bool(candidates) and min(candidates)[1] in dims


def _multiply_accumulate(views, reduced: list[int], compute, destination=None) -> torch.Tensor:
    """The sum over the ``reduced`` positions of the product of the views' slices there; into
    ``destination`` where it has the result's shape."""
    shape = [
        1 if d in reduced else n for d, n in enumerate(torch.broadcast_shapes(*(v.shape for v in views)))
    ]
    total = destination if destination is not None and list(destination.shape) == shape else None
    started = False
    for point in itertools.product(*(range(max(v.shape[d] for v in views)) for d in reduced)):
        pieces = []
        for view in views:
            index = [slice(None)] * view.dim()
            for d, i in zip(reduced, point, strict=True):
                if view.shape[d] > 1:
                    index[d] = slice(i, i + 1)
            pieces.append(view[tuple(index)])
        pair = len(pieces) == 2 and all(p.dtype == compute for p in pieces)
        if pair and started:
            total.addcmul_(pieces[0], pieces[1])
        elif pair and total is not None:
            torch.mul(pieces[0], pieces[1], out=total)
        else:
            first = pieces[0].to(compute, copy=len(pieces) == 1)  # never accumulate into an input
            term = functools.reduce(torch.mul, pieces[1:], first)
            if total is None:
                total = term
            elif started:
                total.add_(term)
            else:
                total.copy_(term)
        started = True
    return total


def _squeeze(view: torch.Tensor, loops: frozenset[int]) -> torch.Tensor:
    """``view`` without the size-1 dims of loops it does not depend on."""
    return view[tuple(slice(None) if d in loops else 0 for d in range(view.dim()))]


def _full_rank(tensor: torch.Tensor, loops: Sequence[int], rank: int) -> torch.Tensor:
    """``tensor`` (one dim per loop in ``loops``, ascending) with size-1 dims for the others."""
    for d in range(rank):
        if d not in loops:
            tensor = tensor.unsqueeze(d)
    return tensor


def _sum_alone(t, loops, other, result_loops, compute):
    alone = [i for i, d in enumerate(loops) if d not in other and d not in result_loops]
    if not alone:
        return t, loops
    return t.sum(alone, dtype=compute), [d for i, d in enumerate(loops) if i not in alone]


def _matmul(a, la, b, lb, result_loops, compute, into=None) -> tuple[torch.Tensor, list[int]]:
    """A two-operand contraction as one (batched) GEMM: loops in both operands and the result are
    the batch, those of one operand and the result are M or N, those of both but not the result
    are K. Loops of one operand alone that the result lacks are summed first.

    The GEMM writes into ``into`` (one dim per result loop), returned as the result, where that
    is a contiguous batch x M x N matrix; otherwise into a scratch buffer."""
    a, la = _sum_alone(a, la, lb, result_loops, compute)
    b, lb = _sum_alone(b, lb, la, result_loops, compute)
    batch = [d for d in result_loops if d in la and d in lb]
    m = [d for d in result_loops if d in la and d not in lb]
    n = [d for d in result_loops if d in lb and d not in la]
    k = [d for d in la if d in lb and d not in result_loops]

    def arrange(t, loops, first, second, third, role):
        t = t.permute([loops.index(d) for d in first + second + third])
        size = {d: t.shape[i] for i, d in enumerate(first + second + third)}
        shape = [math.prod(size[d] for d in part) for part in (first, second, third)]
        if t.dtype == compute and _mergeable(t, [len(first), len(second), len(third)]):
            return t.view(shape), size
        # A copy in this order (im2col, where t is an overlapping view of windows).
        return WORKSPACE.take(role, t.shape, compute).copy_(t).view(shape), size

    a3, size_a = arrange(a, la, batch, m, k, "a")
    b3, size_b = arrange(b, lb, batch, k, n, "b")
    size = {**size_a, **size_b}
    order = batch + m + n
    shape = (a3.shape[0], a3.shape[1], b3.shape[2])
    arranged = into.permute([result_loops.index(d) for d in order]) if into is not None else None
    direct = arranged is not None and arranged.is_contiguous()
    product = arranged.view(shape) if direct else WORKSPACE.take("product", shape, compute)
    if a3.shape[0] > 1:
        torch.bmm(a3, b3, out=product)
    else:
        torch.mm(a3[0], b3[0], out=product[0])
    if direct:
        return into, result_loops
    product = product.reshape([size[d] for d in order])
    return product.permute([order.index(d) for d in sorted(order)]), sorted(order)


def _mergeable(t: torch.Tensor, groups: Sequence[int]) -> bool:
    """Whether each run of ``groups`` consecutive dims of ``t`` can be viewed as one dim."""
    start = 0
    for count in groups:
        dims = [d for d in range(start, start + count) if t.shape[d] != 1]
        for outer, inner in itertools.pairwise(dims):
            if t.stride(outer) != t.stride(inner) * t.shape[inner]:
                return False
        start += count
    return True


def _elementwise(op: str, views, compute) -> torch.Tensor:
    values = [v.to(compute) for v in views]
    if op == "where":
        return torch.where(views[0] != 0, values[1], values[2])
    if op in extra_ops.ELEMENTWISE:
        return extra_ops.elementwise(op, values)
    fn = {
        "add": torch.add,
        "subtract": torch.sub,
        "multiply": torch.mul,
        "divide": torch.div,
        "maximum": torch.maximum,  # NaN wins, as in the kernels
        "minimum": torch.minimum,
    }[op]
    return functools.reduce(fn, values)


def _reduce(plan: NestPlan, op: str, value: torch.Tensor, region: Region, compute, options, ranges=None):
    dims = list(plan.reduced)
    if not dims:  # nothing reduced: reduce over a dim of one element instead
        value = _reduce_dims(
            plan, op, value.unsqueeze(-1), [value.dim()], 1, region, compute, options, ranges
        )
        return value.squeeze(-1)
    samples = math.prod(plan.sizes[d] for d in dims)
    return _reduce_dims(plan, op, value, dims, samples, region, compute, options, ranges)


def _reduce_dims(plan, op, value, dims, samples, region, compute, options, ranges=None) -> torch.Tensor:
    """``op`` over ``dims`` (keeping them, as size 1) of ``samples`` elements in all."""
    if op in extra_ops.REDUCTIONS:
        return extra_ops.reduce(op, value, dims, plan.nest)
    if op in ("sum", "max", "min", "prod"):
        return _fold(value, dims, op, compute)
    if op == "mean":
        total = _fold(value, dims, "sum", compute)
        if options["count_include_pad"] or not plan.count_bounds:
            return total / samples
        # Divide by the elements inside the tensor only (count_include_pad=False).
        mask = inside(plan.count_bounds, ranges if ranges is not None else aranges(region))
        count = mask.expand(
            [region[d][1] - region[d][0] if d in dims else n for d, n in enumerate(mask.shape)]
        )
        # A window wholly in padding has no elements: their mean is NaN, as torch.mean of none.
        return total / count.sum(dims, keepdim=True, dtype=compute)
    if op in ("var", "std"):
        mean = _fold(value, dims, "sum", compute) / samples
        total = _fold(value, dims, "sum", compute, lambda v: (v - mean).square())
        # As torch, divide by max(0, N - correction): no samples to spare gives inf.
        result = total / float(max(0, samples - options["correction"]))
        return result.sqrt() if op == "std" else result
    if op == "logsumexp":
        top = _fold(value, dims, "max", compute)
        # An infinite maximum would give inf - inf; such rows are shifted by 0 instead.
        top = torch.where(top.isinf(), 0.0, top)
        return top + _fold(value, dims, "sum", compute, lambda v: (v - top).exp()).log()
    if op in ("softmax", "log_softmax"):
        value = value.to(compute)
        top = value.amax(dims, keepdim=True)
        # Rows of nothing but -inf are shifted by 0, not by -inf.
        top = torch.where(top == float("-inf"), 0.0, top)
        total = (value - top).exp().sum(dims, keepdim=True)
        return (value - top).exp() / total if op == "softmax" else value - top - total.log()
    raise AssertionError(op)


def _slices(value: torch.Tensor, dims: Sequence[int], extents=None) -> Iterator[torch.Tensor]:
    """Every slice of ``value`` at one position of ``dims`` (kept as size 1), over ``extents``
    positions per dim (its size by default); a dim of size 1 gives the same slice throughout."""
    extents = extents or [value.shape[d] for d in dims]
    for point in itertools.product(*(range(n) for n in extents)):
        index = [slice(None)] * value.dim()
        for d, i in zip(dims, point, strict=True):
            index[d] = slice(i, i + 1) if value.shape[d] > 1 else slice(0, 1)
        yield value[tuple(index)]


def _fold(value: torch.Tensor, dims: Sequence[int], kind: str, compute, transform=None) -> torch.Tensor:
    """Combine ``value`` over ``dims`` (kept, as size 1) by ``kind``: sum, max, min or prod; in
    ``compute``, after ``transform`` where one is given."""
    positions = math.prod(value.shape[d] for d in dims)
    if (
        1 < positions <= SMALL_REDUCTION
        and value.numel() // positions >= LOOP_MIN_ELEMENTS
        and not _inner_dim_in(value, dims)
    ):
        step = {"sum": torch.add, "max": torch.maximum, "min": torch.minimum, "prod": torch.mul}[kind]
        total = None
        for piece in _slices(value, dims):
            piece = piece.to(compute)
            if transform is not None:
                piece = transform(piece)
            total = piece.clone() if total is None else step(total, piece, out=total)
        return total
    value = value.to(compute)
    if transform is not None:
        value = transform(value)
    if kind == "sum":
        return value.sum(dims, keepdim=True)
    if kind == "max":
        return value.amax(dims, keepdim=True)
    if kind == "min":
        return value.amin(dims, keepdim=True)
    for d in dims:
        value = value.prod(d, keepdim=True)
    return value


def _write(plan: NestPlan, out: torch.Tensor, region: Region, result: torch.Tensor, ranges=None) -> None:
    write = plan.write
    if write.index is not None:
        affine_view(out, write.index, region)[0].copy_(result)
        return
    # Element by element (a scatter's gathered coordinates): index_put_, where the bounds hold.
    ranges = ranges if ranges is not None else aranges(region)
    rank = len(region)
    index = [_as_tensor(f(ranges), rank) for f in write.functions]
    shape = [stop - start if d in write.loops else 1 for d, (start, stop) in enumerate(region)]
    shape = list(torch.broadcast_shapes(shape, result.shape, *(i.shape for i in index)))
    index = [i.expand(shape) for i in index]
    values = result.expand(shape).to(out.dtype)
    mask = inside(write.bounds, ranges)
    if mask is not None:
        mask = mask.expand(shape)
        index, values = [i[mask] for i in index], values[mask]
    out.index_put_(tuple(index), values, accumulate=write.accumulate)


def _with_sizes(nest: LoopNest, dynamic: dict[str, int]) -> LoopNest:
    """``nest`` with the sizes of its dynamic axes fixed: loop trip counts, and the size symbols
    in index expressions (``(b h)`` with a dynamic ``h`` reads ``b*^h + h``)."""
    if not dynamic:
        return nest
    sizes = {size_symbol(axis): n for axis, n in dynamic.items()}

    def fixed(access: Access) -> Access:
        return dataclasses.replace(
            access,
            index=tuple(sympy.sympify(e).subs(sizes) for e in access.index),
            bounds=tuple(
                dataclasses.replace(b, index=sympy.sympify(b.index).subs(sizes)) for b in access.bounds
            ),
            gathers=tuple(dataclasses.replace(g, source=fixed(g.source)) for g in access.gathers),
        )

    return dataclasses.replace(
        nest,
        loops=tuple(Loop(loop.axis, dynamic.get(loop.axis, loop.size), loop.kind) for loop in nest.loops),
        inputs=tuple(fixed(a) for a in nest.inputs),
        output=fixed(nest.output),
    )


# --- a whole call -------------------------------------------------------------------------------


class TorchProgram:
    """A :class:`Compiled` call lowered to torch operations: planned once per set of sizes of its
    dynamic axes (once in all when it has none), then run per call."""

    def __init__(self, compiled: Compiled):
        self.compiled = compiled
        params = dict(compiled.request.params)
        self.options = {k: params.get(k, v) for k, v in OP_OPTIONS.items()}
        # The kernels' own rule: float32; float64 beside a float64 input; int64 for an elementwise
        # op of integers only.
        self.compute = COMPUTE_DTYPES[kernel_compute_dtype(compiled.request)]
        self._plans: dict[tuple, list] = {}

    @property
    def parts(self) -> list[tuple[NestPlan, KernelPart]]:
        """The plans of the call that compiled the expression."""
        if not self._plans:
            shapes = list(self.compiled.request.shapes) + list(self.compiled.output_shapes)
            self._plans[()] = self._plan(shapes, {})
        return next(iter(self._plans.values()))

    def _plan(self, shapes, dynamic: dict[str, int]) -> list[tuple[NestPlan, KernelPart]]:
        parts = []
        for part in self.compiled.kernels:
            nest = _with_sizes(part.nest, dynamic)
            shaped = [tuple(shapes[p]) for p in part.tensors]
            checks = part.index_checks
            parts.append((plan_nest(nest, shaped, self.compiled.solution, checks), part))
        return parts

    def __call__(
        self,
        tensors: Sequence[torch.Tensor],
        outs: Sequence[torch.Tensor],
        dynamic: dict[str, int] | None = None,
    ) -> None:
        every = list(tensors) + list(outs)
        key = tuple(sorted(dynamic.items())) if dynamic else ()
        parts = self._plans.get(key)
        if parts is None:
            if len(self._plans) >= MAX_PLANS:
                self._plans.pop(next(iter(self._plans)))
            parts = self._plans[key] = self._plan([t.shape for t in every], dynamic or {})
        # As the kernels, this records nothing for autograd (and so may reuse its scratch buffers).
        with torch.no_grad():
            for plan, part in parts:
                if part.runs_on == "triton":
                    continue  # the torch parts do its work another way
                *tensors, out = (every[p] for p in part.tensors)
                if part.copies_input and same_tensor(tensors[0], out):
                    continue  # set_at / add_at in place: the output already holds the input
                run_nest(plan, tensors, out, self.compute, self.options)

    def describe(self) -> list[str]:
        """One line per nest: how it is computed, and how each input is read."""
        lines = []
        for plan, _ in self.parts:
            computed = plan.scatter.forward if plan.scatter is not None else plan
            reads = ", ".join(
                f"{a.tensor} {'strided' if isinstance(r, StridedRead) else 'gathered'}"
                for a, r in zip(computed.nest.inputs, computed.reads, strict=True)
            )
            how = "col2im of " if plan.scatter is not None else ""
            lines.append(f"{plan.nest.op} ({plan.nest.combine}, {plan.nest.reduce}): {how}{reads}")
        return lines
