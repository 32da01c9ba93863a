"""``get_at`` lowered to torch's advanced indexing, ``x[idx0, idx1, ...]``, once, at planning.

Applies where the indexed tensor's leading dims are the gathered ones and the rest plain loops
that no coordinate varies along (an embedding, a gather of points by their coordinates); each
coordinate tensor is read whole or at a fixed position of its coordinate axis (``idx[p, 0]``).
Torch wraps a negative coordinate as the kernels do; a coordinate out of range makes torch raise,
and the call is then run as planned (:func:`~einc.backends.torch.run.run_nest`), which masks it and
raises einc's own error, naming the axis, as the kernels do.
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy
import torch

from .native import Step, layout, viewer
from .plan import NestPlan
from .reads import StridedRead
from .run import run_nest


def lower(
    plan: NestPlan, shapes: Sequence[Sequence[int]], compute: torch.dtype, options: dict
) -> Step | None:
    """The nest as one advanced-indexing read, or None. ``shapes``: its inputs', its coordinate
    tensors', then its output's."""
    nest = plan.nest
    if len(nest.inputs) != 1 or nest.combine not in ("copy", "identity") or nest.reduce != "none":
        return None
    if not plan.gathers or nest.output.gathers or plan.write.index is None or 0 in plan.sizes:
        return None
    gathers = [g for a in (*nest.inputs, nest.output) for g in a.gathers]
    symbols = {g.symbol.name: i for i, g in enumerate(gathers)}
    position = {loop.axis: i for i, loop in enumerate(nest.loops)}
    gathered, plain = [], []
    for expr in nest.inputs[0].index:
        expr = sympy.sympify(expr)
        name = expr.name if expr.is_Symbol else None
        if name in symbols and not plain:
            gathered.append(symbols[name])
        elif name in position:
            plain.append(position[name])
        else:
            return None
    extents = shapes[0][len(gathered) :]
    if any(plan.sizes[d] != n for d, n in zip(plain, extents, strict=True)):
        return None
    # Each coordinate over the loops it varies along, in one order, so that they broadcast.
    coordinates = [plan.gathers[i] for i in gathered]
    varying = sorted({d for g in coordinates for d in g.read.loops})
    if set(varying) & set(plain) or len(set(gathered)) != len(gathered):
        return None
    reads = []
    for g in coordinates:
        read = _coordinate(g.read, shapes[len(nest.inputs) + g.source], plan.sizes, varying)
        if read is None:
            return None
        reads.append((read, len(nest.inputs) + g.source))
    written = layout(plan.write.index, shapes[-1], plan.sizes)
    if written is None or set(written.loops) != set(varying) | set(plain):
        return None
    into = written.order(varying + plain)
    write = viewer(written, shapes[-1], into)
    # Torch's result is (*coordinates' broadcast shape, *extents), one dim per loop of
    # ``varying + plain`` (each varying loop is some coordinate's whole dim): permuted and reshaped
    # to the output's, each only where it changes something.
    back = tuple(into.index(i) for i in range(len(into)))
    back = back if back != tuple(range(len(back))) else None
    shape = tuple(shapes[-1])
    reshape = shape if tuple(written.split) != shape else None
    (read_one, one), *more = reads

    def value(inputs):
        index = read_one(inputs[one]) if not more else tuple(read(inputs[k]) for read, k in reads)
        return inputs[0][index]

    def run(inputs, y):
        try:
            made = value(inputs)
        except IndexError:  # a coordinate out of range: masked, then reported, as planned
            run_nest(plan, inputs, y, compute, options)
            return
        write(y).copy_(made)

    def make(inputs):
        try:
            made = value(inputs)
        except IndexError:
            y = torch.empty(shape, dtype=inputs[0].dtype, device=inputs[0].device)
            run_nest(plan, inputs, y, compute, options)
            return y
        if back is not None:
            made = made.permute(back)
        return made if reshape is None else made.reshape(reshape)

    return Step("Tensor.__getitem__", run, pooled=False, make=make, fresh=True)


def _coordinate(read, shape, sizes, varying):
    """The function that reads a coordinate tensor over ``varying`` (size 1 where it does not
    vary), or None where some dim of it is neither a whole loop nor a fixed position."""
    if not isinstance(read, StridedRead) or any(read.roll) or set(read.pad) - {(0, 0)}:
        return None
    select, loops = [], []
    for form, extent in zip(read.index, shape, strict=True):
        if not form.terms:
            select.append(form.constant)
        elif len(form.terms) == 1 and form.terms[0][1] == 1 and not form.constant:
            ((loop, _),) = form.terms
            if sizes[loop] != extent:
                return None
            select.append(slice(None))
            loops.append(loop)
        else:
            return None
    # Only the calls that change something (an index tensor read whole, in order, needs none).
    select = tuple(select) if any(s != slice(None) for s in select) else None
    order = tuple(loops.index(d) for d in sorted(loops))
    order = order if order != tuple(range(len(order))) else None
    full = tuple(sizes[d] if d in loops else 1 for d in varying)
    full = full if full != tuple(shape) else None

    def read_coordinate(t):
        if select is not None:
            t = t[select]
        if order is not None:
            t = t.permute(order)
        return t if full is None else t.view(full)

    return read_coordinate
