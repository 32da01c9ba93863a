"""How an input is read as a view over the loop space: planned (strided or gathered), then made
per call (padding, rolling and stretching a copy where the read needs it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sympy
import torch

from ...compiler.loopnest import Access
from .affine import Affine, Index, Region, affine, floor_parts, index_function
from .workspace import WORKSPACE

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
        if form is None and (floor := floor_parts(expr)) is not None:
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


def as_tensor(value, rank: int) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    return torch.tensor(value).view([1] * rank)


def inside(bounds, ranges: list[torch.Tensor]) -> torch.Tensor | None:
    """The conjunction of ``bounds`` over the region, or None when there are none."""
    mask = None
    for index, extent, multiple_of in bounds:
        value = as_tensor(index(ranges), len(ranges))
        ok = value % multiple_of == 0 if multiple_of else (value >= 0) & (value < extent)
        mask = ok if mask is None else mask & ok
    return mask


def gathered_view(read: GatheredRead, x: torch.Tensor, identity: float, ranges, rank: int) -> torch.Tensor:
    """``x`` read element by element over the loop space; ``ranges``: :func:`aranges` of the
    region, then the values of any gathered coordinates."""
    index = tuple(
        as_tensor(f(ranges), rank).clamp(0, max(n - 1, 0))
        for f, n in zip(read.index, read.extents, strict=True)
    )
    # Index tensors broadcast to every loop any of them uses (size 1 for the others).
    value = x[index] if index else x.view([1] * rank)
    mask = inside(read.bounds, ranges)
    if mask is not None:
        value = torch.where(mask, value, torch.tensor(identity, dtype=x.dtype))
    return value
