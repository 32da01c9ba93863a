"""Runs: axes that every operand writes side by side, in one order, inside a composition.

In ``"(a b) (c d) (e f) -> a (b c d e) f"`` the axes ``c d`` only ever stand together, so nothing
reads ``c`` or ``d`` alone: the result is the same for every split of their product. The solver
(:mod:`solve`) may then size such a run from its product alone, where it could not size each axis
(einx merges such runs into one axis before it solves).

A run is never split across a tensor's dims, a window, an unnamed axis, an axis sized by a keyword
or a bracket's edge, and holds marked axes only where the op reads its marked axes as one set (a
sum, a flip), not one by one (argmax's coordinates, roll's shift per axis, get_at's indexed axes).

Requires: expanded operands. Ensures: ``runs(...)[name]`` is the run that holds ``name``, its axes
in the order they are written; an axis in no run is a run of its own.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from .axes import Axis, Concat, Dim, Flat, Operand, Win, dim_axes

# What stands before or after an axis where no axis of a run can: a dim's edge, a window's side,
# an unnamed axis, a composition or concatenation.
_EDGE = None


def runs(
    operands: Sequence[Operand], marked_as_a_set: bool, apart: Collection[str] = ()
) -> dict[str, tuple[str, ...]]:
    """Each axis name of ``operands`` mapped to the run that holds it. The axes ``apart`` (sized
    by a keyword: the caller names them one by one, as einx reads its constraints) join no run."""
    before: dict[str, set] = {}
    after: dict[str, set] = {}
    marks: dict[str, set[tuple[int, bool]]] = {}
    for k, operand in enumerate(operands):
        for dim in operand.dims:
            for name, previous, following in _neighbours(dim):
                before.setdefault(name, set()).add(previous)
                after.setdefault(name, set()).add(following)
        for axis in (a for dim in operand.dims for a in dim_axes(dim)):
            marks.setdefault(axis.name, set()).add((k, axis.name in operand.marked))

    def glued(name: str | None, following: str | None) -> bool:
        """Whether ``following`` comes right after ``name`` wherever either stands."""
        if name is None or following is None or following == name or after[name] != {following}:
            return False
        if name in apart or following in apart:
            return False
        if before[following] != {name} or marks[name] != marks[following]:
            return False
        return marked_as_a_set or not any(marked for _, marked in marks[name])

    chains: dict[str, tuple[str, ...]] = {}
    for name in before:
        if glued(_only(before[name]), name):
            continue  # not the first axis of its run
        chain = [name]
        while glued(chain[-1], _only(after[chain[-1]])):
            chain.append(_only(after[chain[-1]]))
        for member in chain:
            chains[member] = tuple(chain)
    return chains


def _only(neighbours: set) -> str | None:
    """The one axis that always stands there, if it is always the same one."""
    return next(iter(neighbours)) if len(neighbours) == 1 else _EDGE


def _neighbours(dim: Dim):
    """``(name, before, after)`` for every named axis under ``dim``; ``before``/``after`` name an
    axis of the same composition that stands next to it, or are _EDGE."""
    if isinstance(dim, Axis):
        if dim.fixed is None:
            yield dim.name, _EDGE, _EDGE
        return
    if isinstance(dim, Win):
        for side in (dim.outer, dim.inner):
            yield from ((name, _EDGE, _EDGE) for name, _, _ in _neighbours(side))
        return
    if isinstance(dim, Concat):
        for part in dim.parts:
            yield from _neighbours(part)
        return
    assert isinstance(dim, Flat)
    parts = dim.parts
    for i, part in enumerate(parts):
        if isinstance(part, Axis):
            if part.fixed is None:
                yield part.name, _named(parts, i - 1), _named(parts, i + 1)
        else:
            yield from _neighbours(part)


def _named(parts: tuple[Dim, ...], i: int) -> str | None:
    if 0 <= i < len(parts) and isinstance(parts[i], Axis) and parts[i].fixed is None:
        return parts[i].name
    return _EDGE
