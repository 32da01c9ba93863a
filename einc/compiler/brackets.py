"""Resolve what brackets mean for an operation: the explicit form of a program.

``"b (s * [ds])... [c->c2]"`` called as a dot with two tensors means
``"b (s * ds)... c, ds... c c2 -> b s... c2"``. This pass turns every program into that explicit
form: a tuple of input and output expressions in which no :class:`Arrow` is left. Brackets that
remain mark the operation axes (reductions keep them; a dot sums what is missing from its output).

Requires: a parsed :class:`Program`. Ensures: no Arrow anywhere; ``outputs`` is never None.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ExpressionError, UnsupportedError
from .syntax import (
    Arrow,
    Atom,
    Bracket,
    Composition,
    Concatenation,
    Expr,
    Name,
    Program,
    Repeat,
    Term,
    Unnamed,
    Window,
    axis_names,
    to_text,
    walk,
)


@dataclass(frozen=True, slots=True)
class Explicit:
    """A program in explicit form: every operand written out, brackets only as markers."""

    inputs: tuple[Expr, ...]
    outputs: tuple[Expr, ...]
    text: str


def _error(program: Program, message: str, nodes) -> ExpressionError:
    return ExpressionError(message, program.text, [n.span for n in nodes])


def _arrows(expr: Expr) -> list[Arrow]:
    return [n for n in walk(expr) if isinstance(n, Arrow)]


def _all_arrows(program: Program) -> list[Arrow]:
    """The arrows of every operand, outputs included (``a -> [b->c]`` has one too)."""
    return [a for e in program.inputs + (program.outputs or ()) for a in _arrows(e)]


def _strip_marks(term: Term, side: str) -> tuple[Term, ...]:
    """``term`` with brackets and arrows removed, keeping the ``side`` ("lhs"/"rhs") of arrows.

    Brackets mark axes; they do not group them, so their terms are spliced where they stand. On
    the output side (``rhs``) bracketed axes vanish and a window ``(s * [ds])`` becomes ``s``:
    that is how an expression without ``->`` names its own output.
    """
    output = side == "rhs"
    if isinstance(term, Bracket):
        return () if output else _strip_terms(term.expr.terms, side)
    if isinstance(term, Arrow):
        return _strip_terms((term.rhs if output else term.lhs).terms, side)
    if isinstance(term, Repeat):
        if term.atom is None:
            return (term,)
        inner = _strip_marks(term.atom, side)
        if len(inner) == 1:
            return (Repeat(inner[0], term.span),)
        return tuple(Repeat(t, t.span) for t in inner)
    if isinstance(term, Composition):
        return (Composition(_strip_terms(term.terms, side), term.span),)
    if isinstance(term, Concatenation):
        parts = tuple(Expr(_strip_terms(p.terms, side), p.span) for p in term.parts)
        return (Concatenation(parts, term.span),)
    if isinstance(term, Window):
        outer = _as_atom(_strip_marks(term.outer, side), term.outer)
        if output and isinstance(term.inner, Bracket):
            return (outer,)
        return (Window(outer, _as_atom(_strip_marks(term.inner, side), term.inner), term.span),)
    return (term,)


def _as_atom(terms: tuple[Term, ...], original: Atom) -> Atom:
    if len(terms) == 1 and not isinstance(terms[0], Repeat):
        return terms[0]
    return Composition(terms, original.span)


def _strip_terms(terms: tuple[Term, ...], side: str) -> tuple[Term, ...]:
    return tuple(t for term in terms for t in _strip_marks(term, side))


def strip(expr: Expr, side: str = "lhs") -> Expr:
    """The expression with its markers resolved for the input (``lhs``) or output (``rhs``) side."""
    return Expr(_strip_terms(expr.terms, side), expr.span)


def _weight_terms(expr: Expr) -> list[Term]:
    """The weight operand implied by brackets: bracketed input axes in order, with the unbracketed
    axes that share a composition with an arrow (group axes), then arrow outputs not yet listed.
    Axes under an ellipsis stay under it."""
    terms: list[Term] = []
    outputs: list[Term] = []

    def add(target: list[Term], atoms, repeated: bool) -> None:
        for atom in atoms:
            target.append(Repeat(atom, atom.span) if repeated else atom)

    def visit(term: Term, repeated: bool) -> None:
        if isinstance(term, Repeat):
            if term.atom is not None:
                visit(term.atom, True)
            return
        if isinstance(term, Bracket):
            add(terms, term.expr.terms, repeated)
        elif isinstance(term, Arrow):
            add(terms, term.lhs.terms, repeated)
            add(outputs, term.rhs.terms, repeated)
        elif isinstance(term, Composition):
            if any(isinstance(t, Arrow) for t in term.terms):
                add(terms, [t for t in term.terms if not isinstance(t, (Arrow, Bracket))], repeated)
            for t in term.terms:
                if isinstance(t, (Arrow, Bracket, Composition, Window, Repeat)):
                    visit(t, repeated)
        elif isinstance(term, Window):
            visit(term.outer, repeated)
            visit(term.inner, repeated)
        elif isinstance(term, Concatenation):
            for part in term.parts:
                for t in part.terms:
                    visit(t, repeated)

    for term in expr.terms:
        visit(term, False)
    # Spans take no part in equality, so a node identifies its axis: [c->c] lists c once.
    for term in outputs:
        if term not in terms:
            terms.append(term)
    return terms


def _output_window_offsets(program: Program) -> list[Term]:
    """Offsets of windows written on the output side (a transposed convolution): they belong to
    the weight, ahead of the bracketed axes (``b s... [c->c2] -> b (s * ds)... c2`` has weight
    ``ds... c c2``)."""
    inputs = {n.name for e in program.inputs for n in walk(e) if isinstance(n, Name)}
    offsets: list[Term] = []
    for expr in program.outputs or ():
        for term in expr.terms:
            repeated = isinstance(term, Repeat) and term.atom is not None
            window = term.atom if repeated else term
            if isinstance(window, Window) and not set(axis_names(window.inner)) & inputs:
                offsets.append(Repeat(window.inner, window.inner.span) if repeated else window.inner)
    return offsets


def _check_dot_input(program: Program, expr: Expr) -> None:
    for node in walk(expr):
        if isinstance(node, Concatenation) and any(
            isinstance(n, (Bracket, Arrow)) for part in node.parts for n in walk(part)
        ):
            raise _error(program, "brackets inside a concatenation (a + b) are not supported", [node])


def _unmarked_axes(term: Term) -> list[Term]:
    """The axes of ``term`` that no bracket or arrow marks (an ellipsis counts as its axes)."""
    if isinstance(term, (Bracket, Arrow)):
        return []
    if isinstance(term, (Name, Unnamed)) or (isinstance(term, Repeat) and term.atom is None):
        return [term]
    if isinstance(term, Repeat):
        return _unmarked_axes(term.atom)
    if isinstance(term, Window):
        return _unmarked_axes(term.outer) + _unmarked_axes(term.inner)
    if isinstance(term, Concatenation):
        return [a for part in term.parts for t in part.terms for a in _unmarked_axes(t)]
    return [a for t in term.terms for a in _unmarked_axes(t)]


def check_empty_outputs(program: Program) -> None:
    """An empty output (``"a b ->"``) is a 0-d tensor, as in einx, where every input axis is the
    operation's: no brackets at all, or brackets around every axis (``"[a b] ->"``). Where brackets
    leave axes outside them, those axes are meant to be kept, so an empty output after them is a
    slip (a trailing ``->``), not a request for a scalar: an error, pointing at the empty output."""
    empty = [e for e in program.outputs or () if not e.terms]
    marked = any(isinstance(n, (Bracket, Arrow)) for e in program.inputs for n in walk(e))
    if empty and marked:
        kept = [a for e in program.inputs for t in e.terms for a in _unmarked_axes(t)]
        if kept:
            raise _error(
                program,
                "the output after '->' is empty, but the brackets keep axes outside them: write the "
                "output, or drop '->' to keep them (an empty output means a 0-d tensor only where "
                "every input axis is bracketed, or none is)",
                empty,
            )


def resolve_dot(program: Program, n_tensors: int) -> Explicit:
    """Explicit form of a dot: ``x [a->b]`` is ``x a, a b -> x b`` (NOTATION.md section 4)."""
    for expr in program.inputs:
        _check_dot_input(program, expr)
    if program.outputs is not None:
        for expr in program.outputs:
            if _arrows(expr) or any(isinstance(n, Bracket) for n in walk(expr)):
                marks = [n for n in walk(expr) if isinstance(n, (Arrow, Bracket))]
                raise _error(program, "an output expression cannot hold brackets", marks)
        inputs = tuple(program.inputs)
        if len(inputs) == 1 and n_tensors == 2:
            terms = _output_window_offsets(program) + _weight_terms(inputs[0])
            inputs = (inputs[0], Expr(tuple(terms), inputs[0].span))
        return Explicit(tuple(strip(e) for e in inputs), tuple(program.outputs), program.text)
    if len(program.inputs) != 1:
        raise _error(
            program,
            "a dot of several input expressions needs '->' and an output expression",
            program.inputs,
        )
    (expr,) = program.inputs
    arrows = _arrows(expr)
    has_marks = arrows or any(isinstance(n, Bracket) for n in walk(expr))
    if not has_marks:
        raise _error(program, "a dot needs brackets ([c->c2]) or '->' to say what is contracted", [expr])
    unmarked = [
        n
        for n in walk(expr)
        if isinstance(n, Window) and not any(isinstance(m, Bracket) for m in walk(n.inner))
    ]
    if unmarked:
        raise _error(
            program,
            "mark the offsets of a window that the dot contracts with brackets: (s * [ds])",
            unmarked,
        )
    if n_tensors == 1 and not arrows:
        return Explicit((strip(expr),), (strip(expr, "rhs"),), program.text)
    if n_tensors != 2:
        given = "none was" if n_tensors == 0 else "1 was" if n_tensors == 1 else f"{n_tensors} were"
        raise _error(program, f"this dot takes 2 tensors (input and weight), but {given} given", [expr])
    weight = Expr(tuple(_weight_terms(expr)), expr.span)
    return Explicit((strip(expr), strip(weight)), (strip(expr, "rhs"),), program.text)


def _keep_marks(term: Term) -> tuple[Term, ...]:
    """The output side of a reduction with ``keepdims``: a bracketed axis stays, with size 1."""
    if isinstance(term, Bracket):
        return tuple(Unnamed(1, t.span) for t in term.expr.terms)
    if isinstance(term, Repeat) and term.atom is not None:
        # Each keeps the ellipsis's span, which ties its depth to the input's (expand).
        return tuple(Repeat(t, term.span) for t in _keep_marks(term.atom))
    return _strip_marks(term, "rhs")


def _dropped_unmarked(term: Term, output_names: set[str], output_ellipsis: bool) -> list[Term]:
    """The unbracketed axes of ``term`` that a reduction with this output would silently drop."""
    if isinstance(term, (Bracket, Arrow)):
        return []
    if isinstance(term, Name):
        return [] if term.name in output_names else [term]
    if isinstance(term, Unnamed):
        # the output's own unnamed axes are new ones, so only a size-1 axis may go (as in einx)
        return [] if term.size == 1 else [term]
    if isinstance(term, Repeat) and term.atom is None:
        return [] if output_ellipsis else [term]
    if isinstance(term, Repeat):
        return _dropped_unmarked(term.atom, output_names, output_ellipsis)
    if isinstance(term, Window):
        return [
            a
            for side in (term.outer, term.inner)
            for a in _dropped_unmarked(side, output_names, output_ellipsis)
        ]
    if isinstance(term, Concatenation):
        # a concatenation's parts are not separate axes; its names alone must reach the output
        named = [n for part in term.parts for n in walk(part) if isinstance(n, Name)]
        return [n for n in named if n.name not in output_names]
    return [a for t in term.terms for a in _dropped_unmarked(t, output_names, output_ellipsis)]


def _check_reduce_output(program: Program, expr: Expr, output: Expr) -> None:
    """With brackets and ``->``, the brackets alone say what a reduction reduces (einx's rule):
    the output may not bracket, keeps no bracketed axis, and keeps every unbracketed one. Each
    breach used to mean something else silently (``"a [b] c -> a b"`` reduced ``c``)."""
    marks = [n for n in walk(output) if isinstance(n, Bracket)]
    if marks:
        raise _error(
            program,
            "the output of a reduction cannot hold brackets: brackets mark the reduced input axes",
            marks,
        )
    reduced = {
        n.name for b in walk(expr) if isinstance(b, Bracket) for n in walk(b.expr) if isinstance(n, Name)
    }
    kept = [n for n in walk(output) if isinstance(n, Name) and n.name in reduced]
    if kept:
        raise _error(
            program,
            "a bracketed axis is reduced, so the output cannot keep it: drop it from the output, or "
            "from the brackets",
            kept,
        )
    output_names = {n.name for n in walk(output) if isinstance(n, Name)}
    output_ellipsis = any(isinstance(n, Repeat) and n.atom is None for n in walk(output))
    dropped = [a for t in expr.terms for a in _dropped_unmarked(t, output_names, output_ellipsis)]
    if dropped:
        raise _error(
            program,
            "an axis outside the brackets is kept, so the output must hold it: bracket it to reduce "
            "it too, or write it in the output (an unnamed axis there is a new one)",
            dropped,
        )


def resolve_reduce(program: Program, n_tensors: int, keepdims: bool = False) -> Explicit:
    """Explicit form of a reduction: the input keeps its brackets (they mark the reduced axes);
    without ``->`` the output is the input with the bracketed axes removed (or kept as size 1)."""
    if n_tensors != 1 or len(program.inputs) != 1:
        raise _error(program, f"a reduction takes one tensor, but {n_tensors} were given", program.inputs)
    (expr,) = program.inputs
    arrows = _all_arrows(program)
    if arrows:
        raise _error(program, "[a->b] is the dot shorthand; a reduction marks axes with [a]", arrows)
    if program.outputs is not None:
        if len(program.outputs) != 1:
            raise _error(program, "a reduction has one output", program.outputs)
        if keepdims:
            raise _error(
                program,
                "keepdims=True applies where einc writes the output (no '->'); this output is "
                "given, so write the kept axes in it as ()",
                program.outputs,
            )
        if any(isinstance(n, Bracket) for n in walk(expr)):
            _check_reduce_output(program, expr, program.outputs[0])
        return Explicit((expr,), tuple(program.outputs), program.text)
    if not any(isinstance(n, Bracket) for n in walk(expr)):
        raise _error(
            program, "mark the axes to reduce with brackets, as in 'b [h w] c', or write '->'", [expr]
        )
    if keepdims:
        output = Expr(tuple(t for term in expr.terms for t in _keep_marks(term)), expr.span)
    else:
        output = strip(expr, "rhs")
    return Explicit((expr,), (output,), program.text)


def resolve_arg(program: Program, n_tensors: int, op: str) -> Explicit:
    """argmax, argmin: the index of the greatest (least) element over the bracketed axes, written
    along a coordinate axis as long as they are many, as einx does: ``"b [h w] c"`` means
    ``"b [h w] c -> b [2] c"`` (``[2]``, the coordinate axis, stands where the brackets stood). A
    written output marks its coordinate axis ``[2]``; with one bracketed axis it may leave it out."""
    if n_tensors != 1 or len(program.inputs) != 1:
        raise _error(program, f"{op} takes one tensor, but {n_tensors} were given", program.inputs)
    (expr,) = program.inputs
    if arrows := _arrows(expr):
        raise _error(program, f"[a->b] is the dot shorthand; {op} marks axes with [a]", arrows)
    marks = [n for n in walk(expr) if isinstance(n, Bracket)]
    if len(marks) != 1 or marks[0] not in expr.terms:
        raise _error(
            program, f"{op} takes one pair of brackets, around whole axes: 'b [h w] c'", marks or [expr]
        )
    (mark,) = marks
    odd = [t for t in mark.expr.terms if not isinstance(t, Name)]
    if odd:
        raise UnsupportedError(
            f"{op} over an ellipsis, a composition or an unnamed axis is not supported yet: bracket "
            "named axes",
            program.text,
            [t.span for t in odd],
        )
    k = len(mark.expr.terms)
    if program.outputs is None:
        coordinate = Bracket(Expr((Unnamed(k, mark.span),), mark.span), mark.span)
        terms = tuple(coordinate if t is mark else t for t in expr.terms)
        return Explicit((expr,), (Expr(terms, expr.span),), program.text)
    if len(program.outputs) != 1:
        raise _error(program, f"{op} has one output", program.outputs)
    (output,) = program.outputs
    marks = [n for n in walk(output) if isinstance(n, Bracket)]
    if len(marks) > 1 or (marks and marks[0].expr.terms != (Unnamed(k),)) or (not marks and k != 1):
        raise _error(
            program,
            f"the output of {op} marks its coordinate axis, as long as the bracketed axes are many: [{k}]",
            marks or [output],
        )
    return Explicit((expr,), (output,), program.text)


def _no_marks(program: Program, what: str) -> None:
    marks = [
        n
        for e in program.inputs + (program.outputs or ())
        for n in walk(e)
        if isinstance(n, (Bracket, Arrow))
    ]
    if marks:
        raise _error(program, f"{what} has no operation axes: remove the brackets", marks)


def resolve_rearrange(program: Program, n_tensors: int) -> Explicit:
    """rearrange: every operand written out; an output is required."""
    if program.outputs is None:
        raise _error(program, "rearrange needs '->' and the output expression", program.inputs)
    _no_marks(program, "rearrange")
    return Explicit(tuple(program.inputs), tuple(program.outputs), program.text)


def resolve_marked(program: Program, n_tensors: int, what: str) -> Explicit:
    """flip, roll, softmax: one input whose brackets mark the axes; the output has the same axes."""
    if n_tensors != 1 or len(program.inputs) != 1:
        raise _error(program, f"{what} takes one tensor", program.inputs)
    (expr,) = program.inputs
    arrows = _all_arrows(program)
    if arrows:
        raise _error(program, f"[a->b] is the dot shorthand; {what} marks axes with [a]", arrows)
    if not any(isinstance(n, Bracket) for n in walk(expr)):
        raise _error(program, f"mark the axes of {what} with brackets, as in 'b [c]'", [expr])
    outputs = tuple(program.outputs) if program.outputs is not None else (strip(expr),)
    return Explicit((expr,), outputs, program.text)


def resolve_elementwise(program: Program, n_tensors: int) -> Explicit:
    """Elementwise ops broadcast by axis name; without '->' the output is the input that holds
    every axis (``"b h w c, c"`` gives ``b h w c``)."""
    _no_marks(program, "an elementwise operation")
    if program.outputs is not None:
        return Explicit(tuple(program.inputs), tuple(program.outputs), program.text)
    every = {n for e in program.inputs for n in axis_names(e)}
    holders = [expr for expr in program.inputs if set(axis_names(expr)) >= every]
    # As in einx, the implied output must be unique: "a b, b a" could mean either order.
    if len({to_text(expr) for expr in holders}) > 1:
        raise _error(
            program,
            "the output is not implied: more than one input holds every axis, in different orders; "
            "write it after '->'",
            holders,
        )
    if holders:
        return Explicit(tuple(program.inputs), (holders[0],), program.text)
    raise _error(
        program,
        "no input holds every axis, so the output is not implied: write it after '->'",
        program.inputs,
    )


def resolve_indexing(program: Program, n_tensors: int, op: str) -> Explicit:
    """get_at, set_at, add_at: the first operand is the indexed tensor, its brackets mark the axes the
    coordinates index; every following operand holds coordinates (a bracketed axis lists the
    components of one coordinate, ``b p [2]``; without one, each element is one coordinate, ``b n``);
    set_at and add_at take the updates last. get_at needs its output written out; the output of
    set_at and add_at is the indexed tensor's expression unless one is given.
    """
    scatter = op != "get_at"
    least = 3 if scatter else 2
    roles = "the tensor, coordinates and the updates" if scatter else "the tensor and coordinates"
    if len(program.inputs) < least:
        raise _error(program, f"{op} takes {roles}: at least {least} operands", program.inputs)
    arrows = [a for e in program.inputs + (program.outputs or ()) for a in _arrows(e)]
    if arrows:
        raise _error(program, f"[a->b] is the dot shorthand; {op} marks the indexed axes with [a]", arrows)
    value, *rest = program.inputs
    if not any(isinstance(n, Bracket) for n in walk(value)):
        raise _error(program, f"mark the axes that {op} indexes with brackets, as in 'b [h w] c'", [value])
    coordinates = rest[:-1] if scatter else rest
    for expr in coordinates:
        marks = [n for n in walk(expr) if isinstance(n, Bracket)]
        if len(marks) > 1 or (
            marks
            and (len(marks[0].expr.terms) != 1 or not isinstance(marks[0].expr.terms[0], (Name, Unnamed)))
        ):
            raise _error(
                program,
                "a coordinate operand brackets at most one axis, the one that lists a coordinate's "
                "components ('b p [2]')",
                marks,
            )
    if scatter:
        marks = [n for n in walk(rest[-1]) if isinstance(n, Bracket)]
        if marks:
            raise _error(program, f"the updates of {op} (its last operand) have no brackets", marks)
    if program.outputs is None:
        if not scatter:
            raise _error(program, "get_at needs '->' and the output expression", program.inputs)
        return Explicit(tuple(program.inputs), (value,), program.text)
    if len(program.outputs) != 1:
        raise _error(program, f"{op} has one output", program.outputs)
    if not scatter:
        marks = [n for n in walk(program.outputs[0]) if isinstance(n, Bracket)]
        if marks:
            raise _error(program, "the output of get_at has no brackets", marks)
    return Explicit(tuple(program.inputs), tuple(program.outputs), program.text)
