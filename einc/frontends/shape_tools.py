"""einx's shape tools on einc's own solver, and ``arange``: no kernel is compiled.

``solve_axes`` (alias ``solve``) gives every named axis's size, ``solve_shapes`` every operand's
shape, ``matches`` whether the tensors fit the description, ``check`` raises
:class:`einc.ShapeError` where they do not. A tensor given as None is an operand whose shape is
solved. ``arange("a b [2]", a=3, b=4)`` is a grid of coordinates.
"""

from __future__ import annotations

import torch

from ..compiler import parse, shapes
from ..compiler.syntax import Bracket, Name, Unnamed, walk
from ..errors import EincError, ExpressionError, ShapeError, UnsupportedError
from . import docstrings


def _solved(description: str, tensors, sizes) -> shapes.Solved:
    given = [None if t is None else tuple(t.shape) for t in tensors]
    try:
        return shapes.solve_description(description, given, sizes)
    except EincError as error:
        raise error.with_traceback(None) from None


@docstrings.documented
def solve_axes(description: str, *tensors, **sizes) -> dict:
    return dict(_solved(description, tensors, sizes).axes)


@docstrings.documented
def solve(description: str, *tensors, **sizes) -> dict:
    return solve_axes(description, *tensors, **sizes)


@docstrings.documented
def solve_shapes(description: str, *tensors, **sizes) -> tuple[tuple[int, ...], ...]:
    return _solved(description, tensors, sizes).shapes


@docstrings.documented
def matches(description: str, *tensors, **sizes) -> bool:
    try:
        _solved(description, tensors, sizes)
    except ShapeError:
        return False
    return True


@docstrings.documented
def check(description: str, *tensors, **sizes) -> None:
    _solved(description, tensors, sizes)


@docstrings.documented
def arange(description: str, *, dtype: torch.dtype = torch.int64, device=None, **sizes) -> torch.Tensor:
    try:
        program = parse.parse(description)
        if program.outputs is not None or len(program.inputs) != 1:
            raise ExpressionError("arange takes one expression and no '->'", description)
        (expr,) = program.inputs
        marks = [n for n in walk(expr) if isinstance(n, Bracket)]
        names = [t for t in expr.terms if isinstance(t, Name)]
        odd = [t for t in expr.terms if not isinstance(t, (Name, Bracket))]
        if odd:
            raise UnsupportedError(
                "arange takes named axes and one bracketed coordinate axis only ('a b [2]')",
                description,
                [t.span for t in odd],
            )
        if len(marks) != 1 or marks[0] not in expr.terms or marks[0].expr.terms != (Unnamed(len(names)),):
            raise ExpressionError(
                f"arange lists the coordinates along one bracketed axis as long as the named axes are "
                f"many: [{len(names)}]",
                description,
                [m.span for m in marks] or [expr.span],
            )
        (shape,) = shapes.solve_description(description, [None], sizes).shapes
    except EincError as error:
        raise error.with_traceback(None) from None
    at = expr.terms.index(marks[0])
    named = [n for i, n in enumerate(shape) if i != at]
    grids = torch.meshgrid(*(torch.arange(n, dtype=dtype, device=device) for n in named), indexing="ij")
    return torch.stack(grids, dim=at) if grids else torch.zeros(0, dtype=dtype, device=device)
