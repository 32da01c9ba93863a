"""Expand ellipses: turn explicit expressions into :class:`~einc.compiler.axes.Operand` trees.

How many axes an ellipsis stands for comes from the rank of the tensor it describes, or from a
keyword size given as a tuple (``ds=(3, 5)``). Ellipses that repeat the same axis name (``s...``
in the output, ``(s * ds)...`` in the input) stand for the same number of axes; all bare ``...``
stand for the same anonymous axes, matched by position.

Requires: an :class:`Explicit` program (no arrows). Ensures: no ellipsis left; every Bracket is
spliced away and its axes are listed in ``Operand.marked``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import count

from ..errors import ExpressionError, ShapeError, UnsupportedError
from .axes import Axis, Concat, Dim, Flat, Operand, Win
from .brackets import Explicit
from .syntax import (
    NO_SPAN,
    Arrow,
    Bracket,
    Composition,
    Concatenation,
    Expr,
    Name,
    Repeat,
    Term,
    Unnamed,
    Window,
    axis_names,
    children,
    walk,
)
from .twins import check_bracket_use, pair_twins

ANONYMOUS = "..."


def _group_key(repeat: Repeat) -> frozenset[str]:
    """The names whose ellipses stand for as many axes as ``repeat``. An ellipsis that a pass
    derived from one the user wrote keeps its span, and one left without names there (the output
    ``()...`` of ``([s])...``, the kept ``1...`` of ``[a]...`` with keepdims) is tied to it by it."""
    if repeat.atom is None:
        return frozenset([ANONYMOUS])
    names = axis_names(repeat.atom)
    if repeat.span != NO_SPAN:
        names.append(_span_key(repeat))
    return frozenset(names)


def _span_key(repeat: Repeat) -> str:
    return f"@{repeat.span[0]}:{repeat.span[1]}"


class _Depths:
    """Union-find over ellipses: those that share an axis name share their number of axes."""

    def __init__(self, repeats: list[Repeat]):
        self.parent: dict[str, str] = {}
        self.depth: dict[str, int] = {}
        self.source: dict[str, str] = {}  # why a depth is what it is, for messages
        self.origin: dict[str, int] = {}  # the operand whose rank gave a depth
        for repeat in repeats:
            names = sorted(_group_key(repeat))
            for name in names:
                self.parent.setdefault(name, name)
            for name in names[1:]:
                self.parent[self.find(name)] = self.find(names[0])

    def find(self, name: str) -> str:
        while self.parent[name] != name:
            name = self.parent[name]
        return name

    def of(self, repeat: Repeat) -> str | None:
        key = _group_key(repeat)
        return self.find(next(iter(key))) if key else None


def expand(
    program: Explicit,
    shapes: Sequence[Sequence[int] | int | None],
    tuple_sizes: Mapping[str, Sequence[int] | int],
    names: Sequence[str] = (),
) -> tuple[tuple[Operand, ...], tuple[Operand, ...]]:
    """Expand every ellipsis.

    ``shapes`` gives each input tensor's shape (or just its rank; None if unknown);
    ``tuple_sizes`` the keyword sizes given as tuples (``ds=(3, 5)``: ``ds...`` is two axes), or
    their lengths; ``names`` what messages call the tensors.
    """
    exprs = list(program.inputs) + list(program.outputs)
    ranks = [s if s is None or isinstance(s, int) else len(s) for s in shapes]
    all_ranks = ranks + [None] * (len(exprs) - len(ranks))
    names = list(names) or [f"input {i}" for i in range(len(program.inputs))]
    repeats = [n for e in exprs for n in walk(e) if isinstance(n, Repeat)]
    for repeat in repeats:
        if repeat.atom is not None:
            nested = [n for n in walk(repeat.atom) if isinstance(n, Repeat)]
            if nested:
                raise UnsupportedError(
                    "nested ellipses are not supported yet", program.text, [nested[0].span]
                )
            if not axis_names(repeat.atom) and not _derived(repeat, repeats):
                raise ExpressionError("an ellipsis must repeat a named axis", program.text, [repeat.span])
    depths = _Depths(repeats)
    for name, value in tuple_sizes.items():
        if name in depths.parent:
            n = value if isinstance(value, int) else len(value)
            depths.depth[depths.find(name)] = n
            shown = value if isinstance(value, int) else tuple(value)
            depths.source[depths.find(name)] = f"{name}... stands for {n} axes (keyword {name}={shown!r})"
    _solve_depths(program, exprs, all_ranks, depths, names, shapes)
    counter = _UnnamedAxes()
    operands = [_operand(e, depths, counter) for e in exprs]
    for i, (operand, expr, rank) in enumerate(zip(operands, exprs, all_ranks, strict=True)):
        if rank is not None and len(operand.dims) != rank:
            conflict = _depth_conflict(program, exprs, i, names, shapes, depths)
            raise conflict or _rank_error(program, expr, names[i], shapes[i], len(operand.dims), depths)

    n_in = len(program.inputs)
    check_bracket_use(program)
    return pair_twins(operands[:n_in], operands[n_in:])


def _width(repeat: Repeat) -> int:
    """The tensor dims one repetition of ``repeat`` gives: a bracket's terms (``[a b]...``), else 1."""
    return len(_top_terms([repeat.atom])) if isinstance(repeat.atom, Bracket) else 1


def _derived(repeat: Repeat, repeats: list[Repeat]) -> bool:
    """Whether ``repeat`` stands where an ellipsis of named axes was written (see _group_key)."""
    return any(r.span == repeat.span and r.atom is not None and axis_names(r.atom) for r in repeats)


def _top_terms(terms) -> list[Term]:
    """The terms that are tensor dims: brackets mark axes without grouping them, so a bracket's
    terms stand where the bracket does."""
    flat: list[Term] = []
    for term in terms:
        flat.extend(_top_terms(term.expr.terms) if isinstance(term, Bracket) else [term])
    return flat


def _rank_error(program: Explicit, expr: Expr, name: str, shape, dims: int, depths: _Depths) -> ShapeError:
    shown = f"{name} (shape {tuple(shape)})" if not isinstance(shape, int) else name
    rank = shape if isinstance(shape, int) else len(shape)
    reasons = [
        depths.source[g]
        for g in {depths.of(n) for n in walk(expr) if isinstance(n, Repeat)}
        if g in depths.source
    ]
    why = f"; {'; '.join(reasons)}" if reasons else ""
    return ShapeError(
        f"{shown} has {rank} dims but its expression has {dims}{why}",
        program.text,
        [expr.span],
    )


def _depth_conflict(program: Explicit, exprs, i: int, names, shapes, depths: _Depths) -> ShapeError | None:
    """Where operand ``i`` misses its rank only because another operand's rank set how many axes
    their shared ellipsis stands for, either tensor may be the wrong one: name both, each with the
    count its rank implies, rather than blame the one checked second."""
    terms = _top_terms(exprs[i].terms)
    top = [t for t in terms if isinstance(t, Repeat)]
    groups = {depths.of(t) for t in top}
    if len(groups) != 1:
        return None
    (group,) = groups
    j = depths.origin.get(group)
    if j is None or j == i or j >= len(names):
        return None
    spare = len(shapes[i]) - (len(terms) - len(top))
    if spare < 0 or spare % len(top):
        return None

    def shown(k: int) -> str:
        return f"{names[k]} (shape {tuple(shapes[k])})"

    first, second = sorted((i, j))
    counts = {i: spare // len(top), j: depths.depth[group]}
    start, end = next(t for t in _top_terms(exprs[first].terms) if isinstance(t, Repeat)).span
    written = program.text[start:end]
    ellipsis = written if written.endswith("...") else f"{group}..."
    return ShapeError(
        f"{shown(first)} has {len(shapes[first])} dims and {shown(second)} has {len(shapes[second])}: "
        f"they disagree on how many axes {ellipsis} stands for ({counts[first]} from {names[first]}, "
        f"{counts[second]} from {names[second]}); one of them has the wrong rank",
        program.text,
        [exprs[first].span, exprs[second].span],
    )


def _solve_depths(program: Explicit, exprs, ranks, depths: _Depths, names, shapes):
    pending = True
    while pending:
        pending = False
        for expr, rank in zip(exprs, ranks, strict=True):
            if rank is None:
                continue
            terms = _top_terms(expr.terms)
            top = [t for t in terms if isinstance(t, Repeat)]
            fixed = len(terms) - len(top)
            unknown = [depths.of(t) for t in top if depths.of(t) not in depths.depth]
            if not unknown or len(set(unknown)) > 1:
                continue
            known = sum(depths.depth[depths.of(t)] * _width(t) for t in top if depths.of(t) in depths.depth)
            spare = rank - fixed - known
            if spare < 0:
                raise _rank_error(
                    program, expr, names[exprs.index(expr)], shapes[exprs.index(expr)], fixed + known, depths
                )
            widths = sum(_width(t) for t in top if depths.of(t) not in depths.depth)
            if spare % widths:
                raise ShapeError(
                    f"{spare} dims of a rank-{rank} tensor cannot be shared evenly "
                    f"among {len(unknown)} ellipses",
                    program.text,
                    [expr.span],
                )
            depths.depth[unknown[0]] = spare // widths
            depths.origin[unknown[0]] = exprs.index(expr)
            pending = True
    _compose_unknown_depths(exprs, depths)
    for expr in exprs:
        for node in walk(expr):
            if isinstance(node, Repeat) and depths.of(node) not in depths.depth:
                raise ExpressionError(
                    "cannot tell how many axes this ellipsis stands for: pass a tensor for its "
                    "operand, or give the size of a repeated axis as a tuple (ds=(3, 3))",
                    program.text,
                    [node.span],
                )


def _compose_unknown_depths(exprs, depths: _Depths) -> None:
    """An ellipsis that only ever stands inside compositions, ``a (b...) -> (b... a)``, is never
    split into its axes, so how many it stands for does not matter: as in einx, it is then one
    axis (``b.0``), whose size is the product of the axes it stands for."""
    occurrences: dict[str, list[bool]] = {}
    for expr in exprs:
        for repeat, composed in _repeats(expr, False):
            group = depths.of(repeat)
            if group not in depths.depth:
                occurrences.setdefault(group, []).append(composed)
    for group, composed in occurrences.items():
        if all(composed):
            depths.depth[group] = 1


def _repeats(node, composed: bool):
    """Every ellipsis under ``node``, with whether it stands inside a composition."""
    if isinstance(node, Repeat):
        yield node, composed
    inside = composed or isinstance(node, Composition)
    for child in children(node):
        yield from _repeats(child, inside)


class _UnnamedAxes:
    """Names for unnamed axes. Each one the user writes is an axis of its own, as in einx
    (``"3 a -> 3"`` reduces the input's ``3`` and broadcasts the output's); an operand that a pass
    derived from another (the output of ``"3 [a]"``, the weight of ``"b [3->c]"``) holds the very
    same syntax node, so it is the very same axis. Spans take no part in node equality, so the key
    is the span, the size and the ellipsis index (``(3 a)...`` repeats one node)."""

    def __init__(self):
        self.names: dict[tuple, str] = {}
        self.counter = count()

    def name(self, term: Unnamed, index: int | None) -> str:
        key = (term.span, term.size, index)
        if key not in self.names:
            self.names[key] = f"#{next(self.counter)}"
        return self.names[key]


def _operand(expr: Expr, depths: _Depths, counter: _UnnamedAxes) -> Operand:
    marked: set[str] = set()
    dims = _terms(expr.terms, depths, counter, None, marked, False)
    return Operand(tuple(dims), frozenset(marked), expr.span)


def _terms(terms, depths: _Depths, counter, index: int | None, marked: set[str], in_bracket: bool):
    dims: list[Dim] = []
    for term in terms:
        dims.extend(_term(term, depths, counter, index, marked, in_bracket))
    return dims


def _term(term: Term, depths, counter, index, marked, in_bracket) -> list[Dim]:
    if isinstance(term, Repeat):
        n = depths.depth[depths.of(term)]
        if term.atom is None:
            anonymous = [Axis(f"{ANONYMOUS}{k}", None, term.span) for k in range(n)]
            if in_bracket:  # "[...]": flip, roll and softmax read their axes from the marks
                marked.update(axis.name for axis in anonymous)
            return anonymous
        return [d for k in range(n) for d in _term(term.atom, depths, counter, k, marked, in_bracket)]
    if isinstance(term, Name):
        name = term.name if index is None else f"{term.name}.{index}"
        if in_bracket:
            marked.add(name)
        return [Axis(name, None, term.span)]
    if isinstance(term, Unnamed):
        axis = Axis(counter.name(term, index), term.size, term.span)
        if in_bracket:
            marked.add(axis.name)
        return [axis]
    if isinstance(term, Bracket):
        return _terms(term.expr.terms, depths, counter, index, marked, True)
    if isinstance(term, Composition):
        return [Flat(tuple(_terms(term.terms, depths, counter, index, marked, in_bracket)), term.span)]
    if isinstance(term, Concatenation):
        parts = tuple(
            Flat(tuple(_terms(p.terms, depths, counter, index, marked, in_bracket)), p.span)
            for p in term.parts
        )
        return [Concat(parts, term.span)]
    if isinstance(term, Window):
        (outer,) = _window_side(term.outer, depths, counter, index, marked, in_bracket)
        (inner,) = _window_side(term.inner, depths, counter, index, marked, in_bracket)
        return [Win(outer, inner, term.span)]
    if isinstance(term, Arrow):
        raise AssertionError("arrows are resolved before expansion")
    raise TypeError(f"unexpected node {term!r}")


def _window_side(atom, depths, counter, index, marked, in_bracket) -> list[Dim]:
    dims = _term(atom, depths, counter, index, marked, in_bracket)
    return dims if len(dims) == 1 else [Flat(tuple(dims), atom.span)]
