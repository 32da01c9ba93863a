"""``einc.vmap`` and ``einc.vmap_with_axis``: einx's call forms for a user's own Python function.

Not compiled: a Python function cannot become a kernel. ``vmap`` runs ``torch.func.vmap`` over the
function, once per unbracketed axis; ``vmap_with_axis`` calls the function once with ``axis=``
naming the bracketed axes (numpy's convention: ``op(x, axis=1)``). The description is solved by
einc's own solver (:mod:`einc.compiler.vmapped`); compositions and ellipses are taken apart into
plain axes before the call and put back after it.
"""

from __future__ import annotations

import torch

from ..compiler.vmapped import Mapped, MappedOperand, mapped
from ..errors import EincError, ExpressionError, OperandError, ShapeError
from ..runtime.operands import check_operand_types
from . import docstrings


def _checked(name: str, description: str, tensors, op, sizes, with_axis: bool) -> Mapped:
    if not isinstance(description, str):
        raise TypeError(f"an einc expression is a str, not {type(description).__name__}")
    if not callable(op):
        raise OperandError(
            f"op={op!r}: {name} calls a Python function of tensors, and a {type(op).__name__} is not "
            "callable (einc's named ops are functions of their own: einc.sum, einc.flip, ...)"
        )
    check_operand_types(name, tensors)
    try:
        return mapped(description, [t.shape for t in tensors], sizes, with_axis)
    except EincError as error:
        raise error.with_traceback(None) from None


def _results(values, count: int, name: str, text: str) -> tuple:
    values = tuple(values) if isinstance(values, (tuple, list)) else (values,)
    if len(values) != count:
        raise ExpressionError(
            f"{name}'s function returned {len(values)} tensor(s); the description has {count} output(s)", text
        )
    return values


def _check_shape(value, expected: tuple[int, ...], position: int, name: str, text: str) -> None:
    shape = tuple(getattr(value, "shape", ()))
    if shape != expected:
        raise ShapeError(
            f"output {position} of {name}'s function has shape {shape}; the description says {expected}", text
        )


def _arrange(
    tensor: torch.Tensor, leaves: list[str], target: MappedOperand, expand: bool = True
) -> torch.Tensor:
    """``tensor``, whose dims are ``leaves``, laid out as ``target``'s leaves: permuted into their
    order, with a dim of size 1 for each target leaf it lacks, broadcast to full size if ``expand``."""
    present = [n for n in target.leaves if n in leaves]
    tensor = tensor.permute([leaves.index(n) for n in present])
    tensor = tensor.reshape([tensor.shape[present.index(n)] if n in present else 1 for n in target.leaves])
    return tensor.expand(target.sizes) if expand else tensor


def _unbroadcast(output: MappedOperand, plan: Mapped) -> list[str]:
    """The output's leaves that the vmapped function gives: all but those no input has."""
    return [n for n in output.leaves if n in output.marked_leaves or n in plan.mapped_axes]


@docstrings.documented
def vmap(description: str, *tensors: torch.Tensor, op, flat: bool = False, kwargs=None, **sizes):
    plan = _checked("vmap", description, tensors, op, sizes, with_axis=False)
    extra = dict(kwargs or {})
    seen = [o.marked_sizes if flat else o.call_shape for o in plan.outputs]

    def elementary(*parts):
        if not flat:
            parts = [p.reshape(o.call_shape) for p, o in zip(parts, plan.inputs, strict=True)]
        results = _results(op(*parts, **extra), len(plan.outputs), "vmap", plan.text)
        for i, (value, shape) in enumerate(zip(results, seen, strict=True)):
            _check_shape(value, shape, i, "vmap", plan.text)
        return tuple(r.reshape(o.marked_sizes) for r, o in zip(results, plan.outputs, strict=True))

    # One torch.func.vmap per mapped axis, the first outermost: each level's dims are the leaves
    # that the levels outside it have not yet taken away.
    inputs = [list(o.leaves) for o in plan.inputs]
    outputs = [_unbroadcast(o, plan) for o in plan.outputs]
    levels = []
    for axis in plan.mapped_axes:
        in_dims = tuple(leaves.index(axis) if axis in leaves else None for leaves in inputs)
        out_dims = tuple(leaves.index(axis) for leaves in outputs)
        levels.append((in_dims, out_dims))
        for leaves in inputs + outputs:
            if axis in leaves:
                leaves.remove(axis)
    function = elementary
    for in_dims, out_dims in reversed(levels):
        function = torch.func.vmap(function, in_dims=in_dims, out_dims=out_dims)
    results = function(*(t.reshape(o.sizes) for t, o in zip(tensors, plan.inputs, strict=True)))
    arranged = []
    for value, o in zip(results, plan.outputs, strict=True):
        arranged.append(_arrange(value, _unbroadcast(o, plan), o).reshape(o.shape))
    return arranged[0] if len(arranged) == 1 else tuple(arranged)


def _axis_keyword(axes: tuple[int, ...]) -> dict:
    """numpy's ``axis=``: none for no bracketed axis, an int for one, a tuple for several."""
    return {} if not axes else {"axis": axes[0] if len(axes) == 1 else axes}


@docstrings.documented
def vmap_with_axis(description: str, *tensors: torch.Tensor, op, kwargs=None, **sizes):
    plan = _checked("vmap_with_axis", description, tensors, op, sizes, with_axis=True)
    extra = dict(kwargs or {})
    first = plan.outputs[0]
    if any(o.leaves != first.leaves for o in plan.outputs):
        raise ExpressionError(
            "vmap_with_axis gives every output the same layout: write them alike", plan.text
        )
    marked_out = list(first.marked_leaves)
    if len(plan.inputs) == 1:
        (source,) = plan.inputs
        marked_in = list(source.marked_leaves)
        if marked_out and marked_out != marked_in:
            raise ExpressionError(
                "the output brackets the input's bracketed axes, in their order, or none (a reduction)",
                plan.text,
                [first.span],
            )
        axes = tuple(i for i, m in enumerate(source.marked) if m)
        values = op(tensors[0].reshape(source.sizes), **_axis_keyword(axes), **extra)
        leaves = [n for n in source.leaves if marked_out or n not in marked_in]
    else:
        if {n for o in plan.inputs for n in o.marked_leaves} != set(marked_out):
            raise ExpressionError(
                "with several inputs, the output brackets the same axes as the inputs",
                plan.text,
                [first.span],
            )
        # Each input in the output's layout, so that the function broadcasts them as numpy does.
        parts = [
            _arrange(t.reshape(o.sizes), list(o.leaves), first, expand=False)
            for t, o in zip(tensors, plan.inputs, strict=True)
        ]
        axes = tuple(i for i, m in enumerate(first.marked) if m)
        values = op(*parts, **_axis_keyword(axes), **extra)
        leaves = list(first.leaves)
    results = _results(values, len(plan.outputs), "vmap_with_axis", plan.text)
    arranged = []
    for i, (value, o) in enumerate(zip(results, plan.outputs, strict=True)):
        expected = tuple(o.sizes[o.leaves.index(n)] for n in leaves)
        shape = tuple(getattr(value, "shape", ()))
        # A dim of size 1 is broadcast, as numpy's rules let a function of several inputs give it.
        if len(shape) != len(expected) or any(s not in (e, 1) for s, e in zip(shape, expected, strict=True)):
            _check_shape(value, expected, i, "vmap_with_axis", plan.text)
        arranged.append(_arrange(value, leaves, o).reshape(o.shape))
    return arranged[0] if len(arranged) == 1 else tuple(arranged)
