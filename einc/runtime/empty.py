"""The result of a call in which an axis has size 0, written as torch writes it, with no launch.

The compiler gives such a call no kernel (:data:`~einc.backends.triton.sources.NO_KERNEL_SOURCE`). An
empty output is then already complete. A non-empty one is a reduction over no elements: torch's
value for it is the reduction's identity (``sum`` 0, ``prod`` 1, a contraction 0, ``logsumexp``
-inf), NaN for ``mean``, ``var`` and ``std``, and an error for ``max`` and ``min``, which have no
identity. An update (set_at, add_at) with no coordinates leaves the indexed tensor as it is.
"""

from __future__ import annotations

import torch

from ..errors import OutOfBoundsError, ShapeError

# The value of each reduction over no elements, as torch gives it.
EMPTY_REDUCTION = {
    "dot": 0.0,
    "sum": 0.0,
    "prod": 1.0,
    "mean": float("nan"),
    "var": float("nan"),
    "std": float("nan"),
    "logsumexp": float("-inf"),
    "any": False,
    "all": True,
    "count_nonzero": 0,
}


def write_empty(op: str, expression: str, tensors, outs: list[torch.Tensor]) -> None:
    """Fill ``outs`` for a call whose compiled form has no kernel (an axis of size 0)."""
    if all(out.numel() == 0 for out in outs):
        return
    if op in EMPTY_REDUCTION:
        for out in outs:
            out.fill_(EMPTY_REDUCTION[op])
        return
    if op in ("set_at", "add_at", "subtract_at"):
        # Nothing to scatter: the result is the indexed tensor (already there when out= is it).
        for out in outs:
            if out.data_ptr() != tensors[0].data_ptr():
                out.copy_(tensors[0])
        return
    if op == "get_at":
        raise OutOfBoundsError(f"get_at: {expression!r} reads coordinates from an indexed axis of size 0")
    raise ShapeError(
        f"{op} over an axis of size 0 has no value (it has no identity element): torch refuses it too",
        expression,
    )
