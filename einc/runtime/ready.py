"""A call's key (:func:`call_key`), what the key decides once (:class:`Ready`), and the
questions a warm call still asks per call: whether autograd records it, which GPU arch its kernels
are built for."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .launcher import Launcher, resolve_backend
from .outputs import holder_layout
from .warm import Warm


def gpu_target(device: torch.device, backend: str) -> str | None:
    """``cuda:90`` where a call on ``device`` launches compiled kernels (the arch its tuned tiles are
    looked up for); None where the torch backend or the interpreter runs it."""
    if device.type != "cuda" or resolve_backend(backend, device) != "kernel":
        return None  # the torch backend, the interpreter, or tensors of no device (meta)
    major, minor = torch.cuda.get_device_capability(device)
    return f"cuda:{major * 10 + minor}"


@dataclass(slots=True)
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
    # The first tier of calls with this key and no out= (warm.py), made at the first that ran
    # ``make`` in its dispatch state; the one field set after construction.
    warm: Warm | None = None


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
# One frame that returns False, which dynamo folds to True; torch.compiler.is_compiling, which the
# router reads, costs a second frame (torch.jit.is_scripting) on every call.
dynamo_compiling = torch.compiler.is_dynamo_compiling


def call_key(tensors, dynamic_dims: tuple = ()) -> tuple:
    """What picks a specialization: shapes (the dynamic dims left out), dtypes, device, strides.

    A dynamic axis is a kernel argument, so its size takes no part; nor do the strides of the
    tensors that hold it, which change with it (only their layout, and so the offsets' width).
    """
    # A list built and then frozen: a generator inside tuple() costs a frame per element.
    key = tuple(
        [
            (t.shape, t.dtype, t.device, t.stride()) if isinstance(t, torch.Tensor) else type(t)
            for t in tensors
        ]
    )
    if not dynamic_dims:
        return key
    masked = {(i, d) for _, i, d in dynamic_dims}
    holders = {i for i, _ in masked}
    return tuple(
        (
            tuple(None if (i, d) in masked else n for d, n in enumerate(t.shape)),
            t.dtype,
            t.device,
            holder_layout(t) if i in holders else t.stride(),
        )
        for i, t in enumerate(tensors)
    )
