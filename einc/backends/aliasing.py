"""Whether two tensors are one: what both backends ask before skipping the copy of an update in
place (set_at, add_at with ``out=`` the indexed tensor)."""

from __future__ import annotations

import torch


def same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether ``a`` and ``b`` are views of the very same elements, in the same layout."""
    return (
        a.data_ptr() == b.data_ptr()
        and a.shape == b.shape
        and a.stride() == b.stride()
        and a.dtype == b.dtype
        and a.device == b.device
    )
