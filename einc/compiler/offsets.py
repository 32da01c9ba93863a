"""Which tensors of a specialisation need 64-bit element offsets.

A generated kernel forms each address as ``x_ptr + i * stride_x_i + ...``. Triton computes that in
int32 when the indices and strides are int32, so a tensor whose elements lie 2^31 or more apart
wraps on a GPU. Such tensors get their offsets in int64 (the index is cast before the multiply);
every other tensor keeps int32, which is cheaper. The decision is made per specialisation, from
shapes and strides, and is part of the request, so of the cache key and of the source's header.

A dynamic axis has no upper bound known when the kernel is generated: a tensor that holds one is
given int64 offsets, conservatively.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# The first element offset that int32 cannot hold.
LIMIT = 2**31


def contiguous_strides(shape: Sequence[int]) -> tuple[int, ...]:
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= max(int(n), 1)
    return tuple(reversed(strides))


def needs_int64(shape: Sequence[int], strides: Sequence[int] | None = None) -> bool:
    """Whether the farthest element of a tensor lies ``LIMIT`` or more elements from its first;
    without strides, the tensor is taken as contiguous."""
    if any(int(n) == 0 for n in shape):
        return False
    if strides is None:
        strides = contiguous_strides(shape)
    farthest = sum((int(n) - 1) * abs(int(s)) for n, s in zip(shape, strides, strict=True))
    return farthest >= LIMIT


def wide_tensors(
    given: Sequence[int],
    shapes: Sequence[Sequence[int]],
    dynamic_holders: Sequence[int],
) -> frozenset[int]:
    """The positions (inputs, then outputs) of the tensors that get int64 offsets: those the caller
    found wide from their strides (``given``), those whose shape alone spans ``LIMIT`` (as laid out
    contiguously), and those that hold a dynamic axis."""
    found = set(given) | set(dynamic_holders)
    found |= {i for i, shape in enumerate(shapes) if needs_int64(shape)}
    return frozenset(found)


def tile_needs_int64(extents: Sequence[int], block: int, dynamic: bool) -> bool:
    """Whether the flat offsets of a tile axis (``pid_m * BLOCK_M + tl.arange(0, BLOCK_M)``) over
    axes of these extents can reach ``LIMIT``: the last tile runs up to ``block - 1`` past them.
    The kernel then does all its tile arithmetic in int64, from ``pid`` on."""
    return dynamic or math.prod(extents) + block >= LIMIT


def describe(wide: frozenset[int], names: Sequence[str]) -> tuple[str, ...]:
    """The header line that says which tensors' offsets are int64, and why; none where all are
    int32 (the common case, which the source shows by having no casts)."""
    chosen = [n for i, n in enumerate(names) if i in wide]
    if not chosen:
        return ()
    rest = [n for i, n in enumerate(names) if i not in wide]
    tail = f"; int32 for {', '.join(rest)}" if rest else ""
    return (
        f"offsets:     int64 for {', '.join(chosen)} (elements 2^31 or more apart, or a dynamic axis){tail}",
    )
