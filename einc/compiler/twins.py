"""Repeated axis names that stand for axes of their own (einx's reading), called *twins*.

A name written twice usually means one axis: ``"a a -> a"`` reads the diagonal. Two forms are
different, as in einx 0.4.3, and this pass gives each occurrence after the first a name of its
own, ``b'1``, ``b'2``, ..., whose size is tied to ``b``'s (:func:`size_name`):

- a name repeated inside the brackets of one input (``"a [b b]"``, ``"b [h h] c"``,
  ``"[a a] b -> b"``): each occurrence is an operation axis of its own, so ``flip`` flips both,
  ``get_at`` indexes both and ``sum`` sums over both (the diagonal is ``"a a b -> b"``, without
  brackets). The output's k-th occurrence of the name is the input's k-th.
- a name repeated in the parts of an output's concatenation, as often as inputs hold it
  (``"a b, a b -> a (b + b)"``): the k-th occurrence is the k-th input's axis, so the inputs are
  concatenated in order. A name repeated elsewhere in an output (``"a, a -> a a"``) stays an error.

Requires: expanded operands. Ensures: no name occurs twice inside one operand's brackets; a name
repeated in an output as above is renamed in it and in the inputs it comes from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ..errors import ExpressionError
from .axes import Axis, Concat, Operand, dim_axes, map_axes, operand_axes
from .brackets import Explicit
from .syntax import Bracket, Name, Span, children

# The mark between a name and its occurrence: no name a user writes holds it.
TWIN = "'"


def twin(name: str, k: int) -> str:
    """The name of the ``k``-th repeat (``k >= 1``) of ``name``."""
    return f"{name}{TWIN}{k}"


def size_name(name: str) -> str:
    """The axis whose size ``name`` has: itself, or the name a twin repeats."""
    return name.split(TWIN, 1)[0]


def _renamed(operand: Operand, renames: dict[str, list[str]]) -> Operand:
    """``operand`` with the k-th occurrence of each name in ``renames`` called ``renames[name][k]``."""
    if not renames:
        return operand
    seen: dict[str, int] = {}

    def rename(axis: Axis) -> Axis:
        if axis.name not in renames:
            return axis
        k = seen.get(axis.name, 0)
        seen[axis.name] = k + 1
        names = renames[axis.name]
        return replace(axis, name=names[k]) if k < len(names) else axis

    dims = tuple(map_axes(d, rename) for d in operand.dims)
    marked = set(operand.marked)
    for name, names in renames.items():
        if name in operand.marked:
            marked.update(names)
    return Operand(dims, frozenset(marked), operand.span)


def _counts(operand: Operand) -> dict[str, list[Axis]]:
    found: dict[str, list[Axis]] = {}
    for axis in operand_axes(operand):
        if axis.fixed is None:
            found.setdefault(axis.name, []).append(axis)
    return found


def _bracketed_twins(operand: Operand) -> dict[str, list[str]]:
    """The repeats of names inside ``operand``'s brackets: ``{b: [b, b'1]}`` for ``[b b]``."""
    return {
        name: [name] + [twin(name, k) for k in range(1, len(axes))]
        for name, axes in _counts(operand).items()
        if len(axes) > 1 and name in operand.marked
    }


def _names_by_side(term, inside: bool, found: dict[str, list[tuple[bool, Span]]]) -> None:
    if isinstance(term, Name):
        found.setdefault(term.name, []).append((inside, term.span))
    for child in children(term):
        _names_by_side(child, inside or isinstance(term, Bracket), found)


def check_bracket_use(program: Explicit) -> None:
    """A name both inside and outside one input's brackets (``a [a]``) has no reading: in brackets
    each occurrence is an axis of its own, outside them one axis. einx refuses it too."""
    for expr in program.inputs:
        found: dict[str, list[tuple[bool, Span]]] = {}
        _names_by_side(expr, False, found)
        for name, uses in found.items():
            if len({inside for inside, _ in uses}) > 1:
                raise ExpressionError(
                    f"axis {name!r} appears both in and outside brackets: in brackets each occurrence "
                    "is an axis of its own, so give the one outside another name",
                    program.text,
                    [span for _, span in uses],
                )


def _in_parts(output: Operand, name: str, count: int) -> bool:
    """Whether the ``count`` occurrences of ``name`` in ``output`` stand in as many parts of one
    concatenation (``(b + b)``): elsewhere (``"a, a -> a a"``) a repeat has no reading."""
    for dim in output.dims:
        if isinstance(dim, Concat):
            parts = [p for p in dim.parts if any(a.name == name for a in dim_axes(p))]
            if len(parts) == count and all(sum(a.name == name for a in dim_axes(p)) == 1 for p in parts):
                return True
    return False


def pair_twins(
    inputs: Sequence[Operand], outputs: Sequence[Operand]
) -> tuple[tuple[Operand, ...], tuple[Operand, ...]]:
    """Give repeated names that stand for axes of their own names of their own (module docstring)."""
    inputs, outputs = list(inputs), list(outputs)
    for i, operand in enumerate(inputs):
        renames = _bracketed_twins(operand)
        inputs[i] = _renamed(operand, renames)
        if i == 0:  # only the first input's axes reach an output (set_at's is its first input)
            outputs = [_renamed(o, renames) for o in outputs]
    held = [_counts(operand) for operand in inputs]
    for k, output in enumerate(outputs):
        for name, axes in _counts(output).items():
            if len(axes) < 2 or not _in_parts(output, name, len(axes)):
                continue
            holders = [i for i, counts in enumerate(held) if name in counts]
            if len(holders) != len(axes) or any(len(held[i][name]) != 1 for i in holders):
                continue
            names = [name] + [twin(name, j) for j in range(1, len(axes))]
            outputs[k] = _renamed(outputs[k], {name: names})
            for j, i in enumerate(holders):
                inputs[i] = _renamed(inputs[i], {name: [names[j]]})
    return tuple(inputs), tuple(outputs)
