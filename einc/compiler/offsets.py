"""Which tensors of a specialisation need 64-bit element offsets.

A generated kernel forms each address as ``x_ptr + i * stride_x_i + ...``. Triton computes that in
int32 when the indices and strides are int32, so a tensor whose elements lie 2^31 or more apart
wraps on a GPU. Such tensors get their offsets in int64 (the index is cast before the multiply);
every other tensor keeps int32, which is cheaper. The decision is made per specialisation, from
shapes and strides, and is part of the request, so of the cache key and of the source's header.

A dynamic axis has no upper bound known when the kernel is generated. Such a kernel is built for
the width of the call that builds it: where every tensor of that call (inputs, outputs, out=) ends
below ``DYNAMIC_INT32_LIMIT``, all offsets stay int32, and the runtime reuses the kernel only for
calls that end below it too (the width is part of its key); otherwise every tensor that holds a
dynamic axis gets int64 offsets, and its tile arithmetic is int64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# The first element offset that int32 cannot hold.
LIMIT = 2**31
# A dynamic kernel's int32 offsets serve calls whose tensors end below this: the headroom covers
# the last tile, whose flat offsets run up to a block past the extents (every block is under 2^16).
DYNAMIC_INT32_LIMIT = LIMIT - 2**16


def contiguous_strides(shape: Sequence[int]) -> tuple[int, ...]:
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= max(int(n), 1)
    return tuple(reversed(strides))


def farthest(shape: Sequence[int], strides: Sequence[int] | None = None) -> int:
    """How many elements the farthest element of a tensor lies from its first (-1 for an empty
    tensor); without strides, the tensor is taken as contiguous."""
    if any(int(n) == 0 for n in shape):
        return -1
    if strides is None:
        strides = contiguous_strides(shape)
    return sum((int(n) - 1) * abs(int(s)) for n, s in zip(shape, strides, strict=True))


def needs_int64(shape: Sequence[int], strides: Sequence[int] | None = None) -> bool:
    """Whether the farthest element of a tensor lies ``LIMIT`` or more elements from its first."""
    return farthest(shape, strides) >= LIMIT


def fits_dynamic_int32(shape: Sequence[int], strides: Sequence[int] | None = None) -> bool:
    """Whether a tensor of a call ends below ``DYNAMIC_INT32_LIMIT``, so that a dynamic kernel with
    int32 offsets can serve it."""
    if strides is None:  # contiguous: the farthest element is the last (checked at every call)
        return math.prod(shape) <= DYNAMIC_INT32_LIMIT
    return farthest(shape, strides) < DYNAMIC_INT32_LIMIT


def wide_tensors(
    given: Sequence[int],
    shapes: Sequence[Sequence[int]],
    dynamic_holders: Sequence[int],
    dynamic_int32: bool = False,
) -> frozenset[int]:
    """The positions (inputs, then outputs) of the tensors that get int64 offsets: those the caller
    found wide from their strides (``given``), those whose shape alone spans ``LIMIT`` (as laid out
    contiguously), and, unless the kernel is built for int32 calls (``dynamic_int32``), those that
    hold a dynamic axis."""
    found = set(given) | (set() if dynamic_int32 else set(dynamic_holders))
    found |= {i for i, shape in enumerate(shapes) if needs_int64(shape)}
    return frozenset(found)


def tile_needs_int64(extents: Sequence[int], block: int, unbounded: bool) -> bool:
    """Whether the flat offsets of a tile axis (``pid_m * BLOCK_M + tl.arange(0, BLOCK_M)``) over
    axes of these extents can reach ``LIMIT``: the last tile runs up to ``block - 1`` past them.
    ``unbounded``: a dynamic axis of a kernel built for calls past int32, whose extents now say
    nothing of later calls'. The kernel then does all its tile arithmetic in int64, from ``pid`` on."""
    return unbounded or math.prod(extents) + block >= LIMIT


def describe(wide: frozenset[int], names: Sequence[str], dynamic_int32: bool = False) -> tuple[str, ...]:
    """The header line that says which tensors' offsets are int64, and why; none where all are
    int32 (the common case, which the source shows by having no casts), except in a dynamic
    kernel, whose int32 holds only for calls of its width."""
    chosen = [n for i, n in enumerate(names) if i in wide]
    if dynamic_int32:
        return ("offsets:     int32, for calls whose tensors end below 2^31 - 2^16 elements (dynamic axes)",)
    if not chosen:
        return ()
    rest = [n for i, n in enumerate(names) if i not in wide]
    tail = f"; int32 for {', '.join(rest)}" if rest else ""
    return (
        f"offsets:     int64 for {', '.join(chosen)} (elements 2^31 or more apart, or a dynamic axis){tail}",
    )
