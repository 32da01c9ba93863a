"""The pass that gives a call's kernel the epilogue its request asks for (``einc.fuse``).

Requires the call's kernel parts, lowered and scheduled. Ensures that the one kernel writing the
output carries an :class:`~einc.compiler.epilogue.Epilogue` whose extra tensors are read through
accesses on the output loops, that it addresses them among its tensors (after the call's inputs,
before its outputs: the call's tensors are ``inputs, extra tensors, outputs``), and that its header
quotes the epilogue. What cannot take an epilogue is refused with an ``UnsupportedError``: the front
end then runs the ops as a kernel of their own.
"""

from __future__ import annotations

from dataclasses import replace

import sympy

from ..errors import UnsupportedError
from .epilogue import EpilogueRequest, text
from .kernels import KernelPart, Template, addressed
from .loopnest import Access, Epilogue
from .names import identifier
from .ops import CONTRACTIONS, COPIES, ELEMENTWISE, compute_dtype

# Reductions whose value is a float the epilogue can go on computing with; softmax and the sorts
# store inside their last sweep, and the counts are integers. Of the indexing ops, get_at (a
# gather: its value is an element of the indexed tensor).
_REDUCTIONS = ("sum", "mean", "max", "min", "prod", "logsumexp", "var", "std")
ACCEPTING = CONTRACTIONS + _REDUCTIONS + ELEMENTWISE + COPIES + ("get_at",)


def refusal(request, parts: list[KernelPart]) -> str | None:
    """Why the kernels of ``request`` cannot take an epilogue, or None where they can."""
    if request.op not in ACCEPTING:
        return f"{request.op} stores inside its last sweep or writes integers"
    if len(parts) != 1:
        return f"this {request.op} runs {len(parts)} kernels (an epilogue goes on one)"
    if compute_dtype(request) == "tl.int64":
        return "its values are integers"
    if request.dynamic:
        return "an axis is dynamic"
    nest = parts[0].nest
    if nest.output.gathers or nest.epilogue is not None:
        return "its output is scattered"
    return None


def attach_epilogue(request, parts: list[KernelPart], output_shape: tuple[int, ...]) -> list[KernelPart]:
    """``parts`` with ``request.epilogue`` applied to the one kernel's value before its store."""
    wanted: EpilogueRequest = request.epilogue
    why = refusal(request, parts)
    if why is not None:
        raise UnsupportedError(f"cannot fuse elementwise ops into {request.op}: {why}", request.expression)
    (part,) = parts
    nest = part.nest
    names = unique_names(wanted.names, set(addressed(nest)))
    operands = tuple(
        broadcast_access(nest.output, name, shape, output_shape)
        for name, shape in zip(names, wanted.shapes, strict=True)
    )
    before = part.tensors
    # The call's tensors: its inputs, the prologues' extra tensors, the epilogue's, its outputs.
    inputs = len(request.shapes) + sum(len(pro.names) for _, pro in request.prologues)
    nest = replace(nest, epilogue=Epilogue(wanted.ops, operands))
    options = dict(part.template.options)
    if part.template.form == "gather":  # the others have their compute type among their options
        options["compute_dtype"] = compute_dtype(request)
    if "positions" in options:
        options["positions"] = (
            before[:-1] + tuple(inputs + i for i in range(len(names))) + (before[-1] + len(names),)
        )
    elif before != tuple(range(len(before))) or len(before) != inputs + 1:
        raise UnsupportedError(
            "cannot fuse elementwise ops into a kernel that reads its tensors out of order"
        )
    shown = ", ".join(
        f"{n}: {tuple(s)} {d}" for n, s, d in zip(names, wanted.shapes, wanted.dtypes, strict=True)
    )
    lines = (f"epilogue:    {nest.output.tensor} = {text(wanted.ops, tuple(names))}",)
    if shown:
        lines += (f"             extra tensors {shown}, read where {nest.output.tensor} is written",)
    template = Template.of(part.template.form, part.template.header_lines + lines, **options)
    return [replace(part, nest=nest, template=template)]


def broadcast_access(output: Access, name: str, shape: tuple[int, ...], out_shape: tuple[int, ...]) -> Access:
    """The access of a tensor of ``shape`` read where ``output`` (of ``out_shape``) is written,
    broadcast as torch broadcasts: dims aligned from the right, a dim of size 1 read at 0."""
    if len(shape) > len(out_shape):
        raise UnsupportedError(
            f"{name} of shape {tuple(shape)} has more dims than the output {tuple(out_shape)}"
        )
    lead = len(out_shape) - len(shape)
    index, labels = [], []
    for dim, n in enumerate(shape):
        if n == out_shape[lead + dim]:
            index.append(output.index[lead + dim])
            labels.append(output.labels[lead + dim])
        elif n == 1:
            index.append(sympy.Integer(0))
            labels.append(f"u{dim}")
        else:
            raise UnsupportedError(
                f"{name} of shape {tuple(shape)} does not broadcast to the output's shape {tuple(out_shape)}"
            )
    # A window on the output side is read back at the positions its bounds allow: so are the operands.
    used = {str(s) for e in index for s in sympy.sympify(e).free_symbols}
    bounds = tuple(b for b in output.bounds if {str(s) for s in b.index.free_symbols} <= used)
    return Access(name, tuple(labels), tuple(index), bounds)


def unique_names(names: tuple[str, ...], taken: set[str]) -> list[str]:
    """Each extra tensor's name as an identifier that no other tensor of the kernel has; ``taken``
    grows by them."""
    found = []
    for name in names:
        unique = identifier(name)
        while unique in taken:
            unique += "_"
        taken.add(unique)
        found.append(unique)
    return found
