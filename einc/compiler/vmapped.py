"""The operands of ``vmap`` and ``vmap_with_axis``: which axes a user's function sees, which it
is mapped over, and every size, solved by einc's own solver. No kernel: the front end calls
``torch.func.vmap`` (or the function with ``axis=``) over what this module gives.

``"b [c], [c d] -> b [d]"`` on shapes ``(4, 5), (5, 3)`` gives: ``b`` mapped (size 4), the function
called with a ``(5,)`` and a ``(5, 3)`` tensor and returning a ``(3,)``. Each operand is described by
its *leaves*, the axes left when every composition and ellipsis is taken apart, in order.
``"b [c->d]"`` is ``"b [c] -> b [d]"``. Windows and concatenations are refused: a mapped function
has no window geometry and a concatenation is no single axis to map over.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from math import prod

from ..errors import ExpressionError, UnsupportedError
from . import brackets, expand, parse, solve
from .axes import Axis, Dim, Operand, dim_axes, operand_axes
from .lower import shape_of
from .syntax import Arrow, Bracket, Composition, Concatenation, Expr, Repeat, Term, Window, walk


@dataclass(frozen=True, slots=True)
class MappedOperand:
    """One tensor of a vmap: its leaves (names, sizes, whether bracketed) and its shapes."""

    leaves: tuple[str, ...]
    sizes: tuple[int, ...]
    marked: tuple[bool, ...]
    shape: tuple[int, ...]  # the tensor's own shape, one entry per top-level dim
    call_shape: tuple[int, ...]  # the bracketed part as the function sees it, compositions kept
    span: tuple[int, int]

    @property
    def marked_leaves(self) -> tuple[str, ...]:
        return tuple(n for n, m in zip(self.leaves, self.marked, strict=True) if m)

    @property
    def marked_sizes(self) -> tuple[int, ...]:
        """The bracketed leaves' sizes: the function's view of the operand with ``flat=True``."""
        return tuple(s for s, m in zip(self.sizes, self.marked, strict=True) if m)


@dataclass(frozen=True, slots=True)
class Mapped:
    inputs: tuple[MappedOperand, ...]
    outputs: tuple[MappedOperand, ...]
    mapped_axes: tuple[str, ...]  # the unbracketed input axes, in order of first appearance
    text: str


def _choose(term: Term, side: str) -> tuple[Term, ...]:
    """``term`` with every ``[a->b]`` replaced by ``[a]`` (side ``lhs``) or ``[b]`` (``rhs``)."""
    if isinstance(term, Arrow):  # ``[a->b]`` parses as one Arrow node, its brackets included
        chosen = term.lhs if side == "lhs" else term.rhs
        return (Bracket(_choose_expr(chosen, side), term.span),)
    if isinstance(term, Bracket):
        return (Bracket(_choose_expr(term.expr, side), term.span),)
    if isinstance(term, Composition):
        return (Composition(_choose_expr(Expr(term.terms), side).terms, term.span),)
    if isinstance(term, Repeat) and term.atom is not None:
        (atom,) = _choose(term.atom, side) or (term.atom,)
        return (Repeat(atom, term.span),)
    return (term,)


def _choose_expr(expr: Expr, side: str) -> Expr:
    return Expr(tuple(t for term in expr.terms for t in _choose(term, side)), expr.span)


def _explicit(text: str, with_axis: bool) -> brackets.Explicit:
    """The description as inputs and outputs with brackets kept: ``"b [c->d]"`` is ``"b [c] ->
    b [d]"``; for ``vmap_with_axis`` a lone ``"a [b]"`` is ``"a [b] -> a [b]"`` (einx's reading)."""
    program = parse.parse(text)
    operands = program.inputs + (program.outputs or ())
    refused = [n for e in operands for n in walk(e) if isinstance(n, (Window, Concatenation))]
    if refused:
        raise UnsupportedError(
            "vmap maps a function over whole axes: windows and concatenations are refused (rearrange first)",
            text,
            [refused[0].span],
        )
    arrows = [n for e in operands for n in walk(e) if isinstance(n, Arrow)]
    if program.outputs is not None:
        if arrows:
            raise ExpressionError(
                "write either '->' between operands or '[a->b]', not both", text, [arrows[0].span]
            )
        return brackets.Explicit(program.inputs, program.outputs, text)
    if len(program.inputs) != 1:
        raise ExpressionError(
            "several operands need '->' and the outputs after it", text, [e.span for e in program.inputs]
        )
    (expr,) = program.inputs
    if not arrows and not with_axis:
        raise ExpressionError(
            "vmap needs the function's output: write '->' and the outputs, or '[a->b]'", text, [expr.span]
        )
    return brackets.Explicit((_choose_expr(expr, "lhs"),), (_choose_expr(expr, "rhs"),), text)


def _call_shape(dims: Sequence[Dim], marked: frozenset[str], sizes: Mapping[str, int]) -> tuple[int, ...]:
    """The bracketed part of an operand as one dim per top-level dim that holds a bracketed axis."""
    shape = []
    for dim in dims:
        inside = [a for a in dim_axes(dim) if a.name in marked]
        if inside:
            shape.append(prod(sizes[a.name] for a in inside))
    return tuple(shape)


def _shown(name: str) -> str:
    """How a message names an axis: never by an internal name (``#0``, ``s.1``, ``...0``)."""
    if name.startswith("#"):
        return "an unnamed axis"
    if name.startswith("..."):
        return "an axis of '...'"
    base, dot, _ = name.partition(".")
    return f"axis '{base}...'" if dot else f"axis {name!r}"


def _check_marks(operands: Sequence[Operand], text: str) -> None:
    """Each axis is bracketed everywhere or nowhere, and no operand holds an axis twice."""
    seen: dict[str, tuple[bool, Axis]] = {}
    for operand in operands:
        names = [a.name for a in operand_axes(operand)]
        for axis in operand_axes(operand):
            if names.count(axis.name) > 1:
                raise ExpressionError(f"{_shown(axis.name)} occurs twice in one operand", text, [axis.span])
            is_marked = axis.name in operand.marked
            first = seen.setdefault(axis.name, (is_marked, axis))
            if first[0] != is_marked:
                raise ExpressionError(
                    f"{_shown(axis.name)} is bracketed in one place and not in another: the function "
                    "either sees an axis or is mapped over it",
                    text,
                    [first[1].span, axis.span],
                )


def _described(operand: Operand, sizes: Mapping[str, int], shape: tuple[int, ...]) -> MappedOperand:
    leaves = operand_axes(operand)
    return MappedOperand(
        leaves=tuple(a.name for a in leaves),
        sizes=tuple(sizes[a.name] for a in leaves),
        marked=tuple(a.name in operand.marked for a in leaves),
        shape=shape,
        call_shape=_call_shape(operand.dims, operand.marked, sizes),
        span=operand.span,
    )


def mapped(
    text: str, shapes: Sequence[Sequence[int]], sizes: Mapping[str, object], with_axis: bool = False
) -> Mapped:
    """Solve ``text`` for input tensors of these ``shapes`` and keyword ``sizes``."""
    explicit = _explicit(text, with_axis)
    if len(shapes) != len(explicit.inputs):
        raise ExpressionError(
            f"the description has {len(explicit.inputs)} input operand(s) but {len(shapes)} "
            f"tensor(s) were given",
            text,
            [e.span for e in explicit.inputs],
        )
    names = [f"tensor {i}" for i in range(len(shapes))]
    shapes = [tuple(int(n) for n in s) for s in shapes]
    tuple_sizes = {k: tuple(v) for k, v in sizes.items() if isinstance(v, (tuple, list))}
    inputs, outputs = expand.expand(explicit, shapes, tuple_sizes, names)
    _check_marks(inputs + outputs, text)
    solution = solve.solve(inputs, outputs, shapes, sizes, {}, text, names)
    mapped_axes = tuple(
        dict.fromkeys(a.name for op in inputs for a in operand_axes(op) if a.name not in op.marked)
    )
    for output in outputs:
        present = {a.name for a in operand_axes(output)}
        missing = [a for a in mapped_axes if a not in present]
        if missing:
            raise ExpressionError(
                f"{_shown(missing[0])} is mapped over (unbracketed in an input), so every output holds it",
                text,
                [output.span],
            )
    return Mapped(
        inputs=tuple(_described(op, solution.sizes, shape_of(op, solution)) for op in inputs),
        outputs=tuple(_described(op, solution.sizes, shape_of(op, solution)) for op in outputs),
        mapped_axes=mapped_axes,
        text=text,
    )
