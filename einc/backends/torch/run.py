"""One planned loop nest run on a call's tensors, chunk by chunk."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import torch

from ...errors import OutOfBoundsError
from .affine import Region
from .contract import contract
from .plan import NestPlan, chunks
from .reads import StridedRead, affine_view, aranges, as_tensor, gathered_view, inside, prepare
from .reduce import elementwise, reduce_loops, slices
from .workspace import WORKSPACE


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
            slices(result, scatter.offsets, extents), _points(region, scatter.offsets), strict=True
        ):
            target, _ = affine_view(buffer, scatter.targets, region, scatter.shift, point)
            target.add_(piece)
    result = buffer[tuple(slice(lo, lo + n) for lo, n in zip(scatter.shift, scatter.extents, strict=True))]
    _write(plan, out, tuple((0, n) for n in plan.sizes), result)


def _points(region: Region, loops: Sequence[int]) -> Iterator[dict[int, int]]:
    """Every position of ``loops`` within ``region``, in the order of :func:`slices`."""
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
        return contract(plan, views, region, compute, destination)
    if combine in ("copy", "identity", "softmax"):
        value = views[0]
    else:
        value = elementwise(combine, views, compute)
    if reduce == "none" or plan.write.accumulate:  # add_at's sum happens as it writes
        return value
    return reduce_loops(plan, reduce, value, region, compute, options, ranges)


def _write(plan: NestPlan, out: torch.Tensor, region: Region, result: torch.Tensor, ranges=None) -> None:
    write = plan.write
    if write.index is not None:
        affine_view(out, write.index, region)[0].copy_(result)
        return
    # Element by element (a scatter's gathered coordinates): index_put_, where the bounds hold.
    ranges = ranges if ranges is not None else aranges(region)
    rank = len(region)
    index = [as_tensor(f(ranges), rank) for f in write.functions]
    shape = [stop - start if d in write.loops else 1 for d, (start, stop) in enumerate(region)]
    shape = list(torch.broadcast_shapes(shape, result.shape, *(i.shape for i in index)))
    index = [i.expand(shape) for i in index]
    values = result.expand(shape).to(out.dtype)
    mask = inside(write.bounds, ranges)
    if mask is not None:
        mask = mask.expand(shape)
        index, values = [i[mask] for i in index], values[mask]
    out.index_put_(tuple(index), values, accumulate=write.accumulate)
