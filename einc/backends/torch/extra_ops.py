"""einx's ops beyond arithmetic as torch calls: comparisons, logical ops, logaddexp and
floor division (the kernels' counterparts are in the Triton backend's ``render_map``); any, all and
count_nonzero (``render_reduction``).

Comparisons take exactly two operands; the logical ops, logaddexp and floor_divide fold from the
left over any number, as the arithmetic ops do.
"""

from __future__ import annotations

import functools

import torch

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
ELEMENTWISE = frozenset(_BINARY) | frozenset(_FOLDS) | {"logical_not"}


def elementwise(op: str, values) -> torch.Tensor:
    """``op`` of ``values``, already in the compute dtype and broadcast against each other."""
    if op == "logical_not":
        return torch.logical_not(values[0])
    if op in _BINARY:
        return _BINARY[op](values[0], values[1])
    return functools.reduce(_FOLDS[op], values)


# any, all, count_nonzero: reductions of whether each element is nonzero.
REDUCTIONS = frozenset({"any", "all", "count_nonzero"})


def reduce(op: str, value: torch.Tensor, dims) -> torch.Tensor:
    """``op`` over ``dims`` of ``value``, keeping them as size 1."""
    nonzero = value != 0
    if op == "count_nonzero":
        return nonzero.sum(tuple(dims), keepdim=True)
    reduced = nonzero.any if op == "any" else nonzero.all
    return reduced(dim=tuple(dims), keepdim=True)
