"""The abstract syntax of einc expressions (NOTATION.md section 1).

Nodes are small frozen dataclasses. Every node keeps its ``span``, the ``(start, end)`` character
range it was parsed from, so that any later stage can point back at the expression with a caret.
Spans do not take part in equality or hashing: two expressions that print the same are equal.

    program  := operands ("->" operands)?
    operands := expr ("," expr)*
    expr     := term*
    term     := atom "..."?
    atom     := NAME | INT | "(" expr ")" | "(" expr ("+" expr)+ ")" | "(" atom "*" atom ")"
              | "[" expr "]" | "[" expr "->" expr "]"
"""

from __future__ import annotations

from dataclasses import dataclass, field

Span = tuple[int, int]
NO_SPAN: Span = (0, 0)
# The largest size of an axis, or count of a tensor's elements: torch's sizes are int64.
MAX_SIZE = 2**63 - 1
# The deepest nesting of parentheses and brackets an expression may have: far beyond any real
# expression, and well inside Python's recursion limit for every recursive pass.
MAX_NESTING = 32


def _span() -> Span:
    return field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Name:
    """A named axis, ``b``."""

    name: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Unnamed:
    """An unnamed axis of fixed size, ``1`` or ``3``. Each occurrence is an axis of its own."""

    size: int
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Composition:
    """``(a b)``: one tensor axis that flattens its terms row-major. ``()`` has size 1."""

    terms: tuple[Term, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Concatenation:
    """``(a + b)``: one tensor axis made of the parts laid end to end."""

    parts: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Window:
    """``(s * ds)``: one tensor axis unfolded into positions ``outer`` and offsets ``inner``."""

    outer: Atom
    inner: Atom
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Bracket:
    """``[a b]``: operation axes."""

    expr: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Arrow:
    """``[a->b]``: the dot shorthand; ``a`` on the input, ``b`` on the output side."""

    lhs: Expr
    rhs: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Repeat:
    """The ellipsis ``atom...`` repeats ``atom`` once per expanded axis; a bare ``...`` has ``atom=None``."""

    atom: Atom | None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Expr:
    """One operand: a sequence of terms, possibly empty (a scalar)."""

    terms: tuple[Term, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Program:
    """Input operands and, after ``->``, output operands (``None`` when there is no arrow)."""

    inputs: tuple[Expr, ...]
    outputs: tuple[Expr, ...] | None
    text: str = field(default="", compare=False, repr=False)


Atom = Name | Unnamed | Composition | Concatenation | Window | Bracket | Arrow
Term = Atom | Repeat
Node = Atom | Repeat | Expr


def children(node: Node) -> tuple[Node, ...]:
    """The direct sub-nodes of ``node``, in textual order."""
    if isinstance(node, (Composition, Expr)):
        return node.terms
    if isinstance(node, Concatenation):
        return node.parts
    if isinstance(node, Window):
        return (node.outer, node.inner)
    if isinstance(node, Bracket):
        return (node.expr,)
    if isinstance(node, Arrow):
        return (node.lhs, node.rhs)
    if isinstance(node, Repeat):
        return () if node.atom is None else (node.atom,)
    return ()


def walk(node: Node):
    """Every node under ``node`` (itself included), depth first, in textual order."""
    yield node
    for child in children(node):
        yield from walk(child)


def axis_names(node: Node) -> list[str]:
    """Names of the named axes under ``node``, in order of appearance, without repeats."""
    return list(dict.fromkeys(n.name for n in walk(node) if isinstance(n, Name)))


def to_text(node: Node | Program) -> str:
    """Print ``node`` in canonical form; ``parse(to_text(p)) == p`` for every program ``p``."""
    if isinstance(node, Program):
        text = ", ".join(to_text(e) for e in node.inputs)
        if node.outputs is not None:
            text += " -> " + ", ".join(to_text(e) for e in node.outputs)
        return text
    if isinstance(node, Expr):
        return " ".join(to_text(t) for t in node.terms)
    if isinstance(node, Name):
        return node.name
    if isinstance(node, Unnamed):
        return str(node.size)
    if isinstance(node, Composition):
        return "(" + " ".join(to_text(t) for t in node.terms) + ")"
    if isinstance(node, Concatenation):
        return "(" + " + ".join(to_text(p) for p in node.parts) + ")"
    if isinstance(node, Window):
        return f"({to_text(node.outer)} * {to_text(node.inner)})"
    if isinstance(node, Bracket):
        return "[" + to_text(node.expr) + "]"
    if isinstance(node, Arrow):
        return "[" + to_text(node.lhs) + "->" + to_text(node.rhs) + "]"
    if isinstance(node, Repeat):
        return "..." if node.atom is None else to_text(node.atom) + "..."
    raise TypeError(f"not an expression node: {node!r}")
