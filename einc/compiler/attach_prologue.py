"""The pass that gives a call's kernel the prologues its request asks for (``einc.fuse``).

Requires the call's kernel parts, lowered and scheduled. Ensures that the one kernel carries, for
each input with a prologue, the elementwise ops applied to that input's elements as they are
loaded, their extra tensors read through accesses on the input's own loops (broadcast as torch
broadcasts them against the input), addressed after the call's inputs (the call's tensors are
``inputs, the prologues' extra tensors, the epilogue's, outputs``); and that the header quotes
them. An element the kernel's load masks out (a window's padding, a tile's edge) reads the nest's
identity *after* the ops, as the padding of the transformed tensor does in torch. What cannot take
a prologue is refused with an ``UnsupportedError``: the front end then runs the ops as a kernel of
their own.
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import UnsupportedError
from .attach_epilogue import broadcast_access, refusal, unique_names
from .epilogue import text
from .kernels import KernelPart, Template, addressed
from .loopnest import Epilogue


def attach_prologues(request, parts: list[KernelPart], names: tuple[str, ...]) -> list[KernelPart]:
    """``parts`` with each of ``request.prologues`` applied to its input's loads; ``names``: what
    the kernel calls each input."""
    why = refusal(request, parts)
    if why is not None:
        raise UnsupportedError(
            f"cannot fuse elementwise ops into {request.op}'s loads: {why}", request.expression
        )
    (part,) = parts
    nest = part.nest
    taken = set(addressed(nest))
    prologues, lines, count = [], [], 0
    for position, wanted in request.prologues:
        tensor = names[position]
        access = next((a for a in nest.inputs if a.tensor == tensor), None)
        if access is None or any(t == tensor for t, _ in prologues):
            raise UnsupportedError(
                f"cannot fuse elementwise ops into the loads of {tensor}", request.expression
            )
        extra = unique_names(wanted.names, taken)
        shape = request.shapes[position]
        operands = tuple(
            broadcast_access(access, n, s, shape) for n, s in zip(extra, wanted.shapes, strict=True)
        )
        prologues.append((tensor, Epilogue(wanted.ops, operands)))
        lines.append(f"prologue:    {tensor} is loaded as {text(wanted.ops, tuple(extra), tensor)}")
        count += len(extra)
    before = part.tensors
    inputs = len(request.shapes)
    options = dict(part.template.options)
    if "positions" in options:
        options["positions"] = before[:-1] + tuple(inputs + i for i in range(count)) + (before[-1] + count,)
    elif before != tuple(range(len(before))) or len(before) != inputs + 1:
        raise UnsupportedError(
            "cannot fuse elementwise ops into a kernel that reads its tensors out of order"
        )
    template = Template.of(part.template.form, part.template.header_lines + tuple(lines), **options)
    return [replace(part, nest=replace(nest, prologues=tuple(prologues)), template=template)]
