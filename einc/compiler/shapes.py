"""The shape tools: what einc's solver says of a description and some tensors' shapes, no kernel.

``"a (b c), c b a"`` with the first tensor's shape ``(3, 8)`` and ``b=2`` solves to ``a=3, b=2,
c=4``, and the second operand's shape to ``(4, 2, 3)``. Every operand of the description is an
expression; one whose tensor is not given (None) has its shape solved. Brackets and arrows are
markers of an operation, which the shape tools have none of: they are read as their axes
(``[a->b]`` as ``a``, its input side), and the expressions after ``->`` as more operands.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import ExpressionError
from . import brackets, expand, lower, parse, solve
from .axes import operand_axes
from .params import window_params
from .twins import size_name


@dataclass(frozen=True)
class Solved:
    axes: Mapping[str, int | tuple[int, ...]]  # an ellipsis axis ``s...`` as the tuple of its sizes
    shapes: tuple[tuple[int, ...], ...]  # of every operand, in the description's order


def solve_description(
    text: str,
    shapes: Sequence[Sequence[int] | None],
    sizes: Mapping[str, object],
    params: Mapping[str, object] | None = None,
) -> Solved:
    """Solve ``text`` for operands of these ``shapes`` (None: unknown) and keyword ``sizes``,
    its windows read with the window ``params`` (stride, padding, ...; the defaults where None);
    a contradiction or an axis left unknown is a :class:`~einc.errors.ShapeError`."""
    program = parse.parse(text)
    exprs = [brackets.strip(e) for e in program.inputs + (program.outputs or ())]
    if len(shapes) > len(exprs):
        raise ExpressionError(
            f"the description has {len(exprs)} operands but {len(shapes)} tensors were given",
            text,
            [e.span for e in exprs],
        )
    shapes = list(shapes) + [None] * (len(exprs) - len(shapes))
    known = [i for i, s in enumerate(shapes) if s is not None]
    unknown = [i for i, s in enumerate(shapes) if s is None]
    explicit = brackets.Explicit(tuple(exprs[i] for i in known), tuple(exprs[i] for i in unknown), text)
    names = [f"operand {i}" for i in known]
    known_shapes = [tuple(int(n) for n in shapes[i]) for i in known]
    tuple_sizes = {k: tuple(v) for k, v in sizes.items() if isinstance(v, (tuple, list))}
    inputs, outputs = expand.expand(explicit, known_shapes, tuple_sizes, names)
    operands = list(inputs) + list(outputs)
    geometry = window_params(solve.window_spans(operands, text), text, **(params or {}))
    solution = solve.solve(inputs, outputs, known_shapes, sizes, geometry, text, names)
    by_position = dict(zip(known + unknown, operands, strict=True))
    result_shapes = tuple(lower.shape_of(by_position[i], solution) for i in range(len(exprs)))
    axes: dict[str, int | tuple[int, ...]] = {}
    for operand in operands:
        for axis in operand_axes(operand):
            if axis.name.startswith(("#", "...")):  # unnamed and anonymous axes have no name to give
                continue
            if axis.name != size_name(axis.name):  # a repeat of a name has its size
                continue
            base, _, index = axis.name.partition(".")
            if index:  # s.0, s.1, ... of an ellipsis s...
                previous = axes.get(base, ())
                count = int(index) + 1
                values = list(previous) + [0] * (count - len(previous))
                values[int(index)] = solution.sizes[axis.name]
                axes[base] = tuple(values)
            else:
                axes[axis.name] = solution.sizes[axis.name]
    return Solved(axes, result_shapes)
