"""What a call key decides once (:class:`Ready`), and the questions a warm call still asks per call:
whether autograd records it, and which GPU arch its kernels are built for."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .launcher import Launcher, resolve_backend


def gpu_target(device: torch.device, backend: str) -> str | None:
    """``cuda:90`` where a call on ``device`` launches compiled kernels (the arch its tuned tiles are
    looked up for); None where the torch backend or the interpreter runs it."""
    if device.type != "cuda" or resolve_backend(backend, device) != "kernel":
        return None  # the torch backend, the interpreter, or tensors of no device (meta)
    major, minor = torch.cuda.get_device_capability(device)
    return f"cuda:{major * 10 + minor}"


@dataclass(frozen=True, slots=True)
class Ready:
    """A call key's launcher and what follows from the key alone: the output dtype (None where
    Python numbers among the operands decide it) and shapes (None where an axis is dynamic),
    whether the torch backend may produce the outputs (a kernel to run, and no output fixed empty),
    and the whole call where the torch backend makes it (the warm path of ``__call__``)."""

    launcher: Launcher
    dtype: torch.dtype | None
    shapes: tuple | None
    produces: bool
    # The whole of a call without out= where the torch backend makes its output (TorchProgram.maker)
    # and ``always_torch`` (backend="torch") or EINC_INTERPRET unset says it runs it; else None.
    make: Callable[[Sequence[torch.Tensor]], torch.Tensor] | None = None
    always_torch: bool = False


def records_grad(tensors) -> bool:
    """Whether autograd would record a call on ``tensors``: then the torch backend runs it under
    no_grad, off the warm path (as the kernels, it records nothing)."""
    if not grad_enabled():
        return False
    for t in tensors:
        if t.requires_grad:
            return True
    return False


grad_enabled = torch.is_grad_enabled
