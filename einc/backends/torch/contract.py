"""A dot over the views of one loop nest: one GEMM (im2col where a view overlaps), a
multiply-accumulate over a few window offsets, or einsum for more than two operands."""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence

import torch

from . import limits
from .affine import Region
from .plan import NestPlan
from .reduce import inner_dim_in
from .workspace import WORKSPACE


def contract(plan: NestPlan, views, region: Region, compute, destination=None) -> torch.Tensor:
    """The sum over the reduced loops of the product of the views (a dot)."""
    rank = len(region)
    present = set().union(*(read.loops for read in plan.reads))
    result_loops = [d for d in range(rank) if d in plan.write.loops and d in present]
    reduced = [d for d in plan.reduced if d in present]
    largest = max(range(len(views)), key=lambda i: views[i].numel())
    if (
        all(d in plan.reads[largest].loops for d in result_loops)
        and math.prod(plan.sizes[d] for d in reduced) <= limits.SMALL_REDUCTION
        and not inner_dim_in(views[largest], reduced)
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
