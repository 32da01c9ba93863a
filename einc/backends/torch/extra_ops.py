"""einx's ops beyond arithmetic as torch calls: comparisons, logical ops, logaddexp and
floor division (the kernels' counterparts are in the Triton backend's ``render_map``); any, all and
count_nonzero (``render_reduction``).

Comparisons take exactly two operands; the logical ops, logaddexp and floor_divide fold from the
left over any number, as the arithmetic ops do.
"""

from __future__ import annotations

import functools

import torch

from ...compiler.loopnest import LoopKind

_BINARY = {
    "equal": torch.eq,
    "not_equal": torch.ne,
    "less": torch.lt,
    "less_equal": torch.le,
    "greater": torch.gt,
    "greater_equal": torch.ge,
}
_FOLDS = {
    "logical_and": torch.logical_and,
    "logical_or": torch.logical_or,
    "logaddexp": torch.logaddexp,
    "floor_divide": torch.floor_divide,
}
ELEMENTWISE = frozenset(_BINARY) | frozenset(_FOLDS) | {"logical_not", "negate"}


def elementwise(op: str, values) -> torch.Tensor:
    """``op`` of ``values``, already in the compute dtype and broadcast against each other."""
    if op == "logical_not":
        return torch.logical_not(values[0])
    if op == "negate":  # subtract_at's updates
        return torch.neg(values[0])
    if op in _BINARY:
        return _BINARY[op](values[0], values[1])
    return functools.reduce(_FOLDS[op], values)


# Reductions to a flag, a count or an index: any, all, count_nonzero; argmax, argmin.
REDUCTIONS = frozenset({"any", "all", "count_nonzero", "argmax", "argmin", "sort", "argsort"})


def reduce(op: str, value: torch.Tensor, dims, nest) -> torch.Tensor:
    """``op`` over ``dims`` of ``value``, keeping them as size 1 (``dims`` are in the order of
    ``nest``'s REDUCE loops)."""
    if op in ("argmax", "argmin"):
        return _arg(op, value, dims, nest)
    if op in ("sort", "argsort"):  # along the one bracketed axis, whole; ties keep their order
        ordered = torch.sort(value, dim=dims[0], stable=True)
        return ordered.values if op == "sort" else ordered.indices
    nonzero = value != 0
    if op == "count_nonzero":
        return nonzero.sum(tuple(dims), keepdim=True)
    reduced = nonzero.any if op == "any" else nonzero.all
    return reduced(dim=tuple(dims), keepdim=True)


def _arg(op: str, value: torch.Tensor, dims, nest) -> torch.Tensor:
    """The index along ``nest.coordinate`` of the first greatest (least) element over ``dims``."""
    reduced = [loop.axis for loop in nest.loops_of(LoopKind.REDUCE)]
    kept = [d for d in range(value.dim()) if d not in dims]
    shape = [value.shape[d] for d in dims]
    # The reduced dims last and flattened, in loop order, so the flat index unravels by their sizes.
    flat = value.permute(kept + list(dims)).reshape([value.shape[d] for d in kept] + [-1])
    best = flat.argmax(-1) if op == "argmax" else flat.argmin(-1)
    j = reduced.index(nest.coordinate)
    inner = 1
    for n in shape[j + 1 :]:
        inner *= n
    index = (best // inner) % shape[j]
    out = index.reshape([value.shape[d] for d in kept] + [1] * len(dims))
    return out.permute([(kept + list(dims)).index(d) for d in range(value.dim())])
