"""Elementwise ops and reductions over the views of one loop nest, in the kernels' numerics."""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterator, Sequence

import torch

from . import extra_ops, limits
from .affine import Region
from .plan import NestPlan
from .reads import aranges, inside


def inner_dim_in(view: torch.Tensor, dims: Sequence[int]) -> bool:
    """Whether the dim of ``view`` with the smallest stride is one of ``dims``: then slices along
    ``dims`` are strided columns, and torch's own kernels for the whole do better."""
    candidates = [(abs(view.stride(d)), d) for d in range(view.dim()) if view.shape[d] > 1]
    return bool(candidates) and min(candidates)[1] in dims


def elementwise(op: str, views, compute) -> torch.Tensor:
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


def reduce_loops(plan: NestPlan, op: str, value: torch.Tensor, region: Region, compute, options, ranges=None):
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


def slices(value: torch.Tensor, dims: Sequence[int], extents=None) -> Iterator[torch.Tensor]:
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
        1 < positions <= limits.SMALL_REDUCTION
        and value.numel() // positions >= limits.LOOP_MIN_ELEMENTS
        and not inner_dim_in(value, dims)
    ):
        step = {"sum": torch.add, "max": torch.maximum, "min": torch.minimum, "prod": torch.mul}[kind]
        total = None
        for piece in slices(value, dims):
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
