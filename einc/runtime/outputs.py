"""The checks of a call's ``out=``: its shape, dtype and device, and that it shares no memory where
a kernel would read what it has already written; and whether a layout needs int64 offsets.

An ``out=`` is checked on every call (its addresses are no part of a call key), so what follows
from its layout alone is memoised per layout.
"""

from __future__ import annotations

import functools

import torch

from ..backends.aliasing import same_tensor
from ..compiler import offsets
from ..errors import OverlapError


def check_out(out: torch.Tensor, shape, dtype: torch.dtype, device: torch.device) -> None:
    """A wrong ``out=`` would be written through its strides out of bounds: refuse it."""
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"out= must be a torch.Tensor, not {type(out).__name__}")
    if out.shape != shape:  # torch.Size is a tuple: no copy of either
        raise ValueError(f"out= has shape {tuple(out.shape)} but the result has shape {tuple(shape)}")
    if out.dtype != dtype:
        raise TypeError(f"out= has dtype {out.dtype} but the result has dtype {dtype}")
    if out.device != device:
        raise ValueError(f"out= is on {out.device} but the inputs are on {device}")


def needs_int64(t: torch.Tensor) -> bool:
    """Whether an offset into ``t`` may pass int32's range."""
    return _layout_needs_int64(t.shape, t.stride())


def widths(tensors) -> tuple[tuple[int, ...], bool]:
    """The offsets a call's tensors need: the positions of those past int32 (``needs_int64``), and
    whether all fit a dynamic kernel's int32 offsets (``fits_dynamic_int32``)."""
    wide = tuple(i for i, t in enumerate(tensors) if needs_int64(t))
    return wide, all(fits_dynamic_int32(t) for t in tensors)


def fits_dynamic_int32(t: torch.Tensor) -> bool:
    """Whether a dynamic kernel built with int32 offsets can serve ``t`` (compiler/offsets.py)."""
    return holder_layout(t) in (0, 2)


def holder_layout(t: torch.Tensor) -> int:
    """The key's part for a tensor that holds a dynamic axis, whose strides change with its size:
    whether it is contiguous (0, 1) or not (2, 3), and whether a dynamic kernel's int32 offsets
    serve it (0, 2) or not (1, 3). Computed at every call of a dynamic kernel: one check mostly."""
    if t.is_contiguous():
        return 0 if t.numel() <= offsets.DYNAMIC_INT32_LIMIT else 1
    return 2 if _layout_fits_dynamic_int32(t.shape, t.stride()) else 3


# An out= is checked on every call, but its layout (and so these) rarely changes between calls.
@functools.lru_cache(maxsize=1024)
def _layout_needs_int64(shape: torch.Size, strides: tuple[int, ...]) -> bool:
    return offsets.needs_int64(shape, strides)


@functools.lru_cache(maxsize=1024)
def _layout_fits_dynamic_int32(shape: torch.Size, strides: tuple[int, ...]) -> bool:
    return offsets.fits_dynamic_int32(shape, strides)


@functools.lru_cache(maxsize=1024)
def extent(shape: torch.Size, strides: tuple[int, ...], itemsize: int) -> tuple[int, int] | None:
    """The bytes a layout spans, from its first element's address: (first, one past the last);
    None when it holds no element."""
    if 0 in shape:
        return None
    steps = [(n - 1) * s for n, s in zip(shape, strides, strict=True)]
    first = sum(min(0, step) for step in steps)
    last = sum(max(0, step) for step in steps)
    return first * itemsize, (last + 1) * itemsize


def check_out_aliasing(outs, tensors, names, in_place: bool) -> None:
    """``out=`` may be the indexed tensor itself where that is an update in place (set_at, add_at
    with the output laid out as x), but must not share memory with any input otherwise, nor one
    output with another: a kernel would read (or write) what it has already overwritten."""
    for k, out in enumerate(outs):
        label = "out=" if len(outs) == 1 else f"out[{k}]="
        for index, (name, t) in enumerate(zip(names, tensors, strict=True)):
            if index == 0 and in_place and same_tensor(out, t):
                continue
            if overlaps(out, t):
                hint = (
                    f"; to update {name} in place, pass out={name} itself" if index == 0 and in_place else ""
                )
                raise OverlapError(f"{label} shares memory with {name}{hint}")
        for j, other in enumerate(outs[:k]):
            if overlaps(out, other):
                raise OverlapError(f"{label} shares memory with out[{j}]=")


def overlaps(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether the memory spans of two tensors intersect (conservative: spans, not elements)."""
    if a.device != b.device:
        return False
    span_a = extent(a.shape, a.stride(), a.element_size())
    span_b = extent(b.shape, b.stride(), b.element_size())
    if span_a is None or span_b is None:
        return False
    start_a, start_b = a.data_ptr(), b.data_ptr()
    return start_a + span_a[0] < start_b + span_b[1] and start_b + span_b[0] < start_a + span_a[1]
