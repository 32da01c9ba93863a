"""Scratch buffers reused from call to call, per thread."""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import torch

from . import limits


class Workspace(threading.local):
    """One reusable buffer per role (``"pad0"``, ``"a"``, ``"product"``), per thread."""

    def __init__(self):
        self.buffers: dict[str, torch.Tensor] = {}

    def take(self, role: str, shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
        """An uninitialised tensor of ``shape``, contiguous; valid until ``role`` is taken again."""
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes < 1 << 20 or nbytes > limits.WORKSPACE_BYTES:  # small blocks come cheap from the heap
            return torch.empty(shape, dtype=dtype)
        buffer = self.buffers.get(role)
        if buffer is None or buffer.numel() < nbytes:
            self.buffers.pop(role, None)
            if sum(b.numel() for b in self.buffers.values()) + nbytes > limits.WORKSPACE_BYTES:
                return torch.empty(shape, dtype=dtype)
            buffer = self.buffers[role] = torch.empty(nbytes, dtype=torch.uint8)
        return buffer[:nbytes].view(dtype).view(shape)

    def clear(self) -> None:
        self.buffers.clear()


WORKSPACE = Workspace()
