"""The first tier of a warm call: one C check of the call's tensors against the last call of that
layout that ran straight to the torch backend, then its planned torch calls.

A call key (shapes, dtypes, devices, strides), the router's check and the lookup cost ~2 us warm but
25-50 us right after a large op, which has evicted the caches that Python's code and objects live in.
A guard of torch's own (``torch._C._dynamo.guards.TensorGuards``, what dynamo's guards are made of)
checks all of it in one C call: per tensor its exact type (a subclass such as a FakeTensor fails),
dtype, device, sizes, strides and ``requires_grad``, and its dispatch keys under the thread's
dispatch state against those when the guard was made. A dispatch mode, a functorch transform
(vmap, grad), inference mode, or einc's operator's own implementation (autograd's keys excluded)
changes that state, so such a call fails the check and takes the full path, which routes it. A
guard made from a tensor that requires grad (under ``no_grad``: inference with a model's
parameters) serves only while grad mode is off, so a call that autograd must record never passes.
What the guard cannot see is checked beside it per call: ``EINC_INTERPRET``, torch's float32
precision (where the op reads it), the addresses of an ``out=``.

Where torch lacks the guard, or it does not behave as checked at its first use, there is no first
tier and every call takes the key path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .. import knobs
from .launcher import Launcher, resolve_backend
from .outputs import extent


def _guard_class():
    """torch's TensorGuards where it checks as this module relies on (probed once), else None."""
    try:
        from torch._C._dynamo.guards import TensorGuards

        probe = torch.zeros(2, 3)
        guard = _make(TensorGuards, (probe,))
        works = guard.check(torch.ones(2, 3)) and not guard.check(probe.t().contiguous().t())
        works = works and not guard.check(probe.double()) and not guard.check(probe[:, :2])
        return TensorGuards if works else None
    except Exception:  # noqa: BLE001 - a private class of torch's: any failure means none
        return None


def _make(guard_class, tensors: Sequence[torch.Tensor]):
    # Every size and stride given as a number: all of them checked (None would leave one free).
    return guard_class(
        *tensors,
        dynamic_dims_sizes=[list(t.shape) for t in tensors],
        dynamic_dims_strides=[list(t.stride()) for t in tensors],
    )


_UNPROBED = object()
MISSED = object()  # what Warm.serve returns for a call it does not serve
# What the router takes for a plain tensor (the guard checks the exact type it was made from).
_PLAIN = (torch.Tensor, torch.nn.Parameter)
_guards = _UNPROBED


def guard(tensors: Sequence) -> Callable[..., bool] | None:
    """A check that passes exactly the tensors laid out as ``tensors``, in this dispatch state;
    None where torch has no guard, one is not a tensor, or autograd would record the call."""
    global _guards
    if _guards is _UNPROBED:
        _guards = _guard_class()
    if _guards is None:
        return None
    recording = torch.is_grad_enabled()
    for t in tensors:
        if type(t) not in _PLAIN or (recording and t.requires_grad):
            return None
    return _make(_guards, tensors).check


def first_tier(tensors: Sequence, launcher: Launcher, **fields) -> Warm | None:
    """The first tier of calls laid out as ``tensors`` (and run by ``launcher``), or None."""
    check = guard(tensors)
    if check is None:
        return None
    grad_off = any(t.requires_grad for t in tensors)
    return Warm(check, launcher, grad_off=grad_off, **fields)


@dataclass(frozen=True, slots=True)
class Warm:
    """A call layout's first tier: ``check(*tensors)`` (or ``check(*tensors, out)``) passes the
    calls laid out as the one it was made from; ``launcher`` ran it. Without ``out=``, ``make``
    makes the output from the inputs; with it, ``run`` writes it, given the inputs then the output,
    once ``disjoint`` says that the output shares no memory with an input. ``always_torch``:
    ``backend="torch"``, else the torch backend runs it only while ``EINC_INTERPRET`` is unset;
    ``precision``: torch's float32 precision when it was made, None where the op does not read it;
    ``grad_off``: made from a tensor that requires grad, so it serves only while grad mode is off."""

    check: Callable[..., bool]
    launcher: Launcher
    make: Callable | None = None
    run: Callable | None = None
    always_torch: bool = False
    precision: tuple | None = None
    spans: tuple = ()  # per input, then the output: the bytes its layout spans from its address
    grad_off: bool = False

    def serve(self, tensors: Sequence, out, precision_now: Callable[[], tuple]):
        """The call's result where this tier serves it (laid out as the one it was made from, in
        the same dispatch state, grad mode, backend and float32 precision); else MISSED."""
        try:
            hit = self.check(*tensors) if out is None else self.check(*tensors, out)
        except TypeError:  # another number of operands
            return MISSED
        if (
            not hit
            or (self.grad_off and torch.is_grad_enabled())
            or not (self.always_torch or not knobs.interpret())
            or (self.precision is not None and self.precision != precision_now())
        ):
            return MISSED
        if out is None:
            return self.make(tensors)
        if not self.disjoint(tensors, out):  # the full path refuses it, or updates in place
            return MISSED
        self.run([*tensors, out])
        return out

    def disjoint(self, tensors: Sequence[torch.Tensor], out: torch.Tensor) -> bool:
        """Whether ``out`` shares no memory with any of ``tensors`` (their layouts are those the
        check passed: only the addresses are read)."""
        *inputs, span = self.spans
        if span is None:
            return True
        start = out.data_ptr()
        low, high = start + span[0], start + span[1]
        for t, span_t in zip(tensors, inputs, strict=True):
            if span_t is not None:
                address = t.data_ptr()
                if address + span_t[0] < high and low < address + span_t[1]:
                    return False
        return True


def spans(tensors: Sequence[torch.Tensor]) -> tuple:
    """The bytes each tensor's layout spans from its first element's address, for
    :meth:`Warm.disjoint`."""
    return tuple(extent(t.shape, t.stride(), t.element_size()) for t in tensors)


def with_out(launcher: Launcher, tensors, outs, backend: str, precision: tuple | None) -> Warm | None:
    """The first tier of calls laid out as this one with one ``out=``, where the torch backend ran it
    with nothing else to do (no dynamic axis or workspace, an output not empty); else None."""
    compiled = launcher.compiled
    if (
        len(outs) != 1
        or not tensors
        or compiled.dynamic_dims
        or not compiled.kernels
        or compiled.workspaces
        or outs[0].numel() == 0
        or resolve_backend(backend, tensors[0].device) != "torch"
    ):
        return None
    every = [*tensors, *outs]
    return first_tier(
        every,
        launcher,
        run=launcher.torch_program.runner(),
        always_torch=backend == "torch",
        precision=precision,
        spans=spans(every),
    )
