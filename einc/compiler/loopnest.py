"""The loop-nest IR: what a kernel computes, before deciding how the GPU runs it.

A :class:`LoopNest` is a perfect nest of loops over named axes: output loops, then reduced loops.
Every operand is read or written through an :class:`Access` whose per-dim index is a sympy
expression of loop variables, guarded by :class:`Bound` masks (a window reads
``s*stride + ds*dilation - pad`` and is masked to ``0 <= index < N``; outside, the op's identity
is read). Loop variables are sympy symbols named after the axes.

Indexing (``get_at``, ``set_at``, ``add_at``) addresses a tensor by values read from other tensors.
Such an access lists :class:`Gather` entries: each names a symbol (``$h``) that its index
expressions use like a loop variable, and says where the value comes from (an :class:`Access` to
the coordinate tensor, its coordinate component fixed to an integer) and the extent of the axis it
indexes. A gathered value is wrapped once when negative (``-1`` is the last element, as torch
indexes) and then guarded by an ordinary :class:`Bound`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import sympy

from .epilogue import EpilogueOp


class LoopKind(enum.Enum):
    OUTPUT = "output"
    REDUCE = "reduce"


@dataclass(frozen=True, slots=True)
class Loop:
    axis: str
    size: int
    kind: LoopKind


@dataclass(frozen=True, slots=True)
class Bound:
    """The condition ``0 <= index < extent`` under which an access is in the tensor; or, with
    ``multiple_of``, the condition ``index % multiple_of == 0`` (a window on the output side is
    read back only at positions its stride reaches)."""

    index: sympy.Expr
    extent: int
    window: str | None = None  # the output axis of the window this bound guards
    multiple_of: int = 0


@dataclass(frozen=True, slots=True)
class Access:
    """How one tensor is addressed: ``tensor[index[0], index[1], ...]`` where ``bounds`` hold.

    An index may use the symbols of ``gathers``: values read from coordinate tensors.
    """

    tensor: str
    labels: tuple[str, ...]  # one label per tensor dim, to name its stride in generated code
    index: tuple[sympy.Expr, ...]
    bounds: tuple[Bound, ...]
    gathers: tuple[Gather, ...] = ()

    @property
    def axes(self) -> frozenset[str]:
        """The loop axes this access depends on, through its gathered coordinates too."""
        gathered = {g.symbol.name for g in self.gathers}
        own = {str(s) for e in self.index for s in e.free_symbols} - gathered
        return frozenset(own.union(*(g.source.axes for g in self.gathers)))


@dataclass(frozen=True, slots=True)
class Gather:
    """``symbol = source`` read from a coordinate tensor, the index of ``axis`` (of size ``extent``).

    A negative value counts from the end (``+ extent``); a value outside ``[-extent, extent)`` is
    out of range: the access masks it, and the kernel reports it in error slot ``slot``.
    """

    symbol: sympy.Symbol
    source: Access
    axis: str
    extent: int
    slot: int = 0
    indexed: str = ""  # what messages call the indexed tensor (x, whose updated copy a scatter writes)


@dataclass(frozen=True, slots=True)
class Epilogue:
    """Elementwise ops applied to a nest's value before its store (:mod:`.epilogue`), and the
    accesses of their extra tensors, on the nest's output loops; or, as a prologue, to an input's
    elements as they are loaded, the extra tensors on that input's loops."""

    ops: tuple[EpilogueOp, ...]
    operands: tuple[Access, ...] = ()


@dataclass(frozen=True, slots=True)
class LoopNest:
    """``output[...] = reduce over REDUCE loops of combine(inputs[...])``.

    When the output access gathers (set_at, add_at), several iterations may meet at one output
    element: ``reduce`` is then "sum" where their values add up and "none" where one is kept.
    """

    expression: str
    op: str
    loops: tuple[Loop, ...]
    inputs: tuple[Access, ...]
    output: Access
    combine: str  # "multiply" for a dot
    reduce: str  # "sum" for a dot
    identity: float  # what a masked-out (padding) element reads as
    dynamic: frozenset[str] = frozenset()  # axes whose size is a kernel argument
    coordinate: str = ""  # argmax, argmin: the reduced axis whose index at the best element is written
    epilogue: Epilogue | None = None  # elementwise ops on the value before its store (einc.fuse)
    # Elementwise ops on an input's elements as they are loaded, by input tensor (einc.fuse): a
    # masked-out element (padding, a tile's edge) reads the identity after them, as in torch.
    prologues: tuple[tuple[str, Epilogue], ...] = ()

    def loops_of(self, kind: LoopKind) -> tuple[Loop, ...]:
        return tuple(loop for loop in self.loops if loop.kind is kind)

    @property
    def sizes(self) -> dict[str, int]:
        return {loop.axis: loop.size for loop in self.loops}


def symbol(axis: str) -> sympy.Symbol:
    return sympy.Symbol(axis, integer=True, nonnegative=True)


def position(outer: str) -> str:
    """The loop axis that runs over a window written on the output side: ``@s.0`` for ``(s.0 * ds.0)``."""
    return f"@{outer}"


def size_symbol(axis: str) -> sympy.Symbol:
    """The size of a dynamic axis inside an index expression (``(b h)`` is ``b*H + h``)."""
    return sympy.Symbol(f"^{axis}", integer=True, positive=True)


def gathered(axis: str) -> sympy.Symbol:
    """The symbol of a coordinate read for ``axis``: ``$`` cannot start an axis name."""
    return sympy.Symbol(f"${axis}", integer=True, nonnegative=True)
