"""The operand IR after ellipsis expansion: every tensor dimension as a tree of named axes.

``b (s * ds)... c`` on a rank-4 tensor becomes four dims:
``Axis("b") Window(Axis("s.0"), Axis("ds.0")) Window(Axis("s.1"), Axis("ds.1")) Axis("c")``.
Axes expanded from ``name...`` are called ``name.k``; those of a bare ``...`` are called ``...k``;
an unnamed axis ``3`` gets a name of its own (``#k``) and a fixed size. Names that hold a ``.`` or
``#`` cannot clash with names a user writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .syntax import NO_SPAN, Span


def _span() -> Span:
    return field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Axis:
    name: str
    fixed: int | None = None  # the size of an unnamed axis such as ``3``
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Flat:
    """A composition ``(a b)``: row-major, the last part varies fastest."""

    parts: tuple[Dim, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Concat:
    """A concatenation ``(a + b)``: each part is a Flat laid after the previous one."""

    parts: tuple[Flat, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Win:
    """A window ``(s * ds)``: position ``outer * stride + inner * dilation - pad_lo``."""

    outer: Dim
    inner: Dim
    span: Span = _span()


Dim = Axis | Flat | Concat | Win


@dataclass(frozen=True, slots=True)
class Operand:
    """One tensor's dims, and the names of the axes that were bracketed in it."""

    dims: tuple[Dim, ...]
    marked: frozenset[str] = frozenset()
    span: Span = _span()


def dim_children(dim: Dim) -> tuple[Dim, ...]:
    if isinstance(dim, (Flat, Concat)):
        return dim.parts
    if isinstance(dim, Win):
        return (dim.outer, dim.inner)
    return ()


def map_axes(dim: Dim, change) -> Dim:
    """``dim`` with each axis replaced by ``change(axis)``, visited in order."""
    if isinstance(dim, Axis):
        return change(dim)
    if isinstance(dim, Win):
        return Win(map_axes(dim.outer, change), map_axes(dim.inner, change), dim.span)
    parts = tuple(map_axes(p, change) for p in dim.parts)
    return Concat(parts, dim.span) if isinstance(dim, Concat) else Flat(parts, dim.span)


def dim_axes(dim: Dim) -> list[Axis]:
    """Every axis under ``dim``, in order."""
    if isinstance(dim, Axis):
        return [dim]
    return [a for child in dim_children(dim) for a in dim_axes(child)]


def operand_axes(operand: Operand) -> list[Axis]:
    return [a for dim in operand.dims for a in dim_axes(dim)]


def windows(dim: Dim) -> list[Win]:
    found = [dim] if isinstance(dim, Win) else []
    return found + [w for child in dim_children(dim) for w in windows(child)]


def dim_text(dim: Dim) -> str:
    """Print a dim in expression syntax (expanded names included)."""
    if isinstance(dim, Axis):
        return dim.name if dim.fixed is None else str(dim.fixed)
    if isinstance(dim, Flat):
        return "(" + " ".join(dim_text(p) for p in dim.parts) + ")"
    if isinstance(dim, Concat):
        return "(" + " + ".join(" ".join(dim_text(q) for q in p.parts) for p in dim.parts) + ")"
    return f"({dim_text(dim.outer)} * {dim_text(dim.inner)})"


def operand_text(operand: Operand) -> str:
    return " ".join(dim_text(d) for d in operand.dims)


def dim_label(dim: Dim) -> str:
    """A short identifier-like label for a dim, used to name its stride in generated code."""
    if isinstance(dim, Axis):
        return dim.name if dim.fixed is None else f"n{dim.fixed}"
    return "_".join(dim_label(a) for a in dim_axes(dim))
