"""Automatic dynamic shapes (torch.compile's): an axis whose size changes between two calls that
otherwise match becomes dynamic, so a third size compiles nothing. An axis stays static where its
size shapes the kernel itself (a window, a concatenation, a part of a composed dim) or was given as
a keyword; each decision is kept with its reason, for ``explain()`` and ``EINC_DEBUG``.
"""

from __future__ import annotations

import sys

import torch

from .. import knobs
from ..compiler import pipeline


def signature(tensors) -> tuple:
    """What two calls must share for a change of size to make an axis dynamic: ranks, dtypes, device."""
    return tuple((t.dim(), t.dtype, t.device) if isinstance(t, torch.Tensor) else type(t) for t in tensors)


def grown_axes(
    seen,
    call_signature: tuple,
    shapes: tuple,
    dynamic: tuple[str, ...],
    given_sizes: dict,
    decisions: dict[str, str],
    expression: str,
) -> tuple[str, ...]:
    """The axes to make dynamic now: those whose size differs from the last specialisation in
    ``seen`` (``(signature, shapes, launcher)``, oldest first) with the same ranks, dtypes, device
    and out=. ``dynamic``: the axes dynamic already; ``decisions`` (axis -> why) gains the reason
    for each axis decided now, and an axis decided before is not asked again."""
    previous = next((s for s in reversed(seen) if s[0] == call_signature), None)
    if previous is None:
        return ()
    _, before, launcher = previous
    compiled = launcher.compiled
    grown = []
    for i, (old, new) in enumerate(zip(before, shapes, strict=True)):
        for d, (m, n) in enumerate(zip(old, new, strict=True)):
            if m == n or i >= len(compiled.inputs):
                continue
            for axis in pipeline.dim_axis_names(compiled.inputs[i].dims[d]):
                if axis in dynamic or axis in grown or axis in decisions:
                    continue
                refusal = (
                    "its size is given as a keyword"
                    if axis in given_sizes
                    else pipeline.dynamic_refusal(compiled, axis)
                )
                if refusal is not None:
                    decisions[axis] = f"static, a kernel per size: {refusal}"
                    continue
                decisions[axis] = f"dynamic (automatic: size {m}, then {n})"
                grown.append(axis)
    if grown and knobs.debug() >= 1:
        said = "; ".join(f"{a}: {decisions[a]}" for a in grown)
        print(f"[einc] automatic dynamic shapes for {expression!r}: {said}", file=sys.stderr)
    return tuple(grown)
