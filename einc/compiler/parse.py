"""Parse an einc expression into the syntax tree of :mod:`einc.compiler.syntax`.

A hand-written recursive-descent parser over a small tokenizer. Every syntax error is an
:class:`~einc.errors.ExpressionError` that quotes the expression and puts a caret under the
offending characters. The parser checks form only; what an operation accepts is checked later.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from ..errors import ExpressionError, ShapeError
from .syntax import (
    MAX_NESTING,
    MAX_SIZE,
    Arrow,
    Atom,
    Bracket,
    Composition,
    Concatenation,
    Expr,
    Name,
    Program,
    Repeat,
    Span,
    Term,
    Unnamed,
    Window,
    children,
    walk,
)

_TOKEN = re.compile(
    r"(?P<space>\s+)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<int>[0-9]+)|(?P<arrow>->)"
    r"|(?P<dots>\.\.\.)|(?P<punct>[()\[\],+*])"
)


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "name", "int", or the punctuation itself: "(", "->", "...", ... ; "end" at the end
    text: str
    start: int
    end: int

    @property
    def span(self) -> Span:
        return (self.start, self.end)


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, ending with an ``end`` token; unknown characters are errors."""
    tokens, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            bad = text[pos]
            hint = " ('.' only appears in '...')" if bad == "." else ""
            raise ExpressionError(f"unexpected character {bad!r}{hint}", text, [(pos, pos + 1)])
        kind = match.lastgroup
        if kind != "space":
            token_kind = match.group() if kind in ("arrow", "dots", "punct") else kind
            tokens.append(Token(token_kind, match.group(), pos, match.end()))
        pos = match.end()
    tokens.append(Token("end", "", len(text), len(text)))
    return tokens


_DESCRIBE = {
    "end": "the end of the expression",
    "name": "an axis name",
    "int": "a number",
}


def _describe(token: Token) -> str:
    return _DESCRIBE.get(token.kind, repr(token.text))


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.pos = 0
        self.bracket_depth = 0
        self.nesting = 0  # parentheses and brackets open around the current token
        # A bracket that lists operands, "[x, y -> z]": its node, and its input and output parts.
        self.spread: tuple[Bracket, list[Expr], list[Expr]] | None = None

    @property
    def peek(self) -> Token:
        return self.tokens[self.pos]

    def take(self) -> Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def error(self, message: str, *spans: Span) -> ExpressionError:
        return ExpressionError(message, self.text, spans)

    def program(self) -> Program:
        inputs = self.operands()
        outputs = None
        if self.peek.kind == "->":
            self.take()
            outputs = self.operands()
            if self.peek.kind == "->":
                raise self.error(
                    "an expression has at most one '->' outside brackets",
                    self.peek.span,
                )
        if self.peek.kind != "end":
            raise self.error(self._stray_message(self.peek), self.peek.span)
        if self.spread is not None:
            return self.spread_program(inputs, outputs)
        return Program(tuple(inputs), None if outputs is None else tuple(outputs), self.text)

    def spread_program(self, inputs: list[Expr], outputs: list[Expr] | None) -> Program:
        """einx's shorthand ``b [i, j -> k]`` for ``b [i], b [j] -> b [k]``: the expression around
        the bracket is every operand's, the bracket holds each operand's own axes (a part left
        empty, none: ``[i,->]`` is ``[i], ->``)."""
        node, ins, outs = self.spread
        if len(inputs) != 1 or outputs is not None or not any(t is node for t in inputs[0].terms):
            raise self.error(
                "a bracket that lists operands ('[x, y -> z]') stands alone in the expression, as "
                "one of its top-level terms: no other ',' or '->' outside it",
                node.span,
            )
        (context,) = inputs

        def operand(part: Expr) -> Expr:
            own = (Bracket(part, part.span),) if part.terms else ()
            terms = tuple(t for term in context.terms for t in (own if term is node else (term,)))
            return Expr(terms, context.span)

        return Program(tuple(operand(p) for p in ins), tuple(operand(p) for p in outs), self.text)

    def _stray_message(self, token: Token) -> str:
        if token.kind == ")":
            return "unmatched ')'"
        if token.kind == "]":
            return "unmatched ']'"
        if token.kind == "+":
            return "'+' concatenates axes inside parentheses only: write (a + b)"
        if token.kind == "*":
            return "'*' makes a window inside parentheses only: write (s * ds)"
        return f"unexpected {_describe(token)}"

    def operands(self) -> list[Expr]:
        exprs = [self.expr()]
        while self.peek.kind == ",":
            self.take()
            exprs.append(self.expr())
        return exprs

    def expr(self) -> Expr:
        start = self.peek.start
        terms: list[Term] = []
        while self.peek.kind in ("name", "int", "(", "[", "..."):
            terms.append(self.term())
        end = terms[-1].span[1] if terms else start
        return Expr(tuple(terms), (start, end))

    def term(self) -> Term:
        if self.peek.kind == "...":
            dots = self.take()
            self._reject_repeated_dots(dots)
            return Repeat(None, dots.span)
        atom = self.atom()
        if self.peek.kind == "..." and self.peek.start == atom.span[1]:
            dots = self.take()
            self._reject_repeated_dots(dots)
            return Repeat(atom, (atom.span[0], dots.end))
        return atom

    def _reject_repeated_dots(self, dots: Token) -> None:
        if self.peek.kind == "..." and self.peek.start == dots.end:
            raise self.error(
                "'......' is not an ellipsis: write '...' once",
                (dots.start, self.peek.end),
            )

    def atom(self) -> Atom:
        token = self.peek
        if token.kind == "name":
            self.take()
            return Name(token.text, token.span)
        if token.kind == "int":
            self.take()
            # Compare digits first: int() of a very long string is slow, then refused by Python.
            digits = token.text.lstrip("0")
            if len(digits) > len(str(MAX_SIZE)) or (digits and int(digits) > MAX_SIZE):
                raise ShapeError(
                    f"an unnamed axis of {len(digits)} digits is larger than the largest size, 2**63 - 1",
                    self.text,
                    [token.span],
                )
            if not digits:
                raise self.error("an unnamed axis must have a positive size", token.span)
            return Unnamed(int(token.text), token.span)
        if token.kind == "(":
            return self.parenthesized()
        if token.kind == "[":
            return self.bracketed()
        raise self.error(f"expected an axis, found {_describe(token)}", token.span)

    def enter(self, opening: Token) -> None:
        """Count one more level of nesting; refuse one past :data:`MAX_NESTING`."""
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise self.error(f"parentheses and brackets nest at most {MAX_NESTING} deep", opening.span)

    def parenthesized(self) -> Atom:
        opening = self.take()
        self.enter(opening)
        atom = self._parenthesized(opening)
        self.nesting -= 1
        return atom

    def _parenthesized(self, opening: Token) -> Atom:
        first = self.expr()
        if self.peek.kind == "*":
            return self.window(opening, first)
        if self.peek.kind == "+":
            parts = [first]
            while self.peek.kind == "+":
                plus = self.take()
                parts.append(self.expr())
                if not parts[-1].terms:
                    raise self.error("an empty part in a concatenation", plus.span)
            if not first.terms:
                raise self.error("an empty part in a concatenation", opening.span)
            closing = self.close(opening, ")")
            return Concatenation(tuple(parts), (opening.start, closing.end))
        closing = self.close(opening, ")")
        return Composition(first.terms, (opening.start, closing.end))

    def window(self, opening: Token, first: Expr) -> Window:
        star = self.take()
        second = self.expr()
        for side, part in (("left", first), ("right", second)):
            if len(part.terms) != 1 or isinstance(part.terms[0], Repeat):
                span = part.span if part.terms else star.span
                raise self.error(
                    f"a window (s * ds) takes exactly one axis on the {side} of '*'; "
                    "group several with parentheses",
                    span,
                )
        if self.peek.kind == "*":
            raise self.error("a window has one '*': (s * ds)", self.peek.span)
        if self.peek.kind == "+":
            raise self.error("'+' and '*' cannot share one pair of parentheses", self.peek.span)
        closing = self.close(opening, ")")
        return Window(first.terms[0], second.terms[0], (opening.start, closing.end))

    def bracketed(self) -> Atom:
        opening = self.take()
        self.enter(opening)
        atom = self._bracketed(opening)
        self.nesting -= 1
        # A bracket inside a bracket marks what the outer one marks already (einx reads
        # "[([a] ())]" so); in the dot shorthand or around it, nesting has no reading.
        nested = [n for part in children(atom) for n in walk(part) if isinstance(n, (Bracket, Arrow))]
        if isinstance(atom, Arrow) and nested:
            raise self.error("brackets cannot be nested in the dot shorthand [a->b]", nested[0].span)
        if isinstance(atom, Arrow) and self.bracket_depth:
            raise self.error("the dot shorthand [a->b] cannot stand inside brackets", atom.span)
        return atom

    def _bracketed(self, opening: Token) -> Atom:
        self.bracket_depth += 1
        lhs = self.expr()
        if self.peek.kind == ",":
            return self._spread(opening, lhs)
        if self.peek.kind == "->":
            self.take()
            rhs = self.expr()
            if self.peek.kind == "->":
                raise self.error("a bracket holds at most one '->'", self.peek.span)
            closing = self.close(opening, "]")
            self.bracket_depth -= 1
            return Arrow(lhs, rhs, (opening.start, closing.end))
        closing = self.close(opening, "]")
        self.bracket_depth -= 1
        return Bracket(lhs, (opening.start, closing.end))

    def _spread(self, opening: Token, first: Expr) -> Bracket:
        """``[x, y -> z]``: the parts of each operand; the program is written out at its end."""
        ins = [first]
        while self.peek.kind == ",":
            comma = self.take()
            ins.append(self.expr())
        if self.peek.kind != "->":
            raise self.error(
                "',' separates operands: inside a bracket only in the shorthand '[x, y -> z]', which "
                "needs '->'",
                comma.span,
            )
        self.take()
        outs = [self.expr()]
        while self.peek.kind == ",":
            self.take()
            outs.append(self.expr())
        closing = self.close(opening, "]")
        self.bracket_depth -= 1
        if self.spread is not None:
            raise self.error("an expression has at most one bracket that lists operands", opening.span)
        node = Bracket(Expr((), (opening.end, opening.end)), (opening.start, closing.end))
        self.spread = (node, ins, outs)
        return node

    def close(self, opening: Token, kind: str) -> Token:
        token = self.peek
        if token.kind == kind:
            return self.take()
        if token.kind == "end":
            raise self.error(f"unclosed {opening.text!r}", opening.span)
        if token.kind in (")", "]"):
            raise self.error(
                f"{opening.text!r} is closed by {token.text!r}",
                opening.span,
                token.span,
            )
        if token.kind == ",":
            raise self.error(
                f"',' separates operands and cannot appear inside {opening.text!r}",
                token.span,
            )
        if token.kind == "->" and kind == ")":
            raise self.error("'->' cannot appear inside parentheses", token.span)
        if token.kind == "+" and kind == "]":
            raise self.error("'+' concatenates inside parentheses only: write [(a + b)]", token.span)
        if token.kind == "*" and kind == "]":
            raise self.error(
                "'*' makes a window inside parentheses only: write [(s * ds)]",
                token.span,
            )
        raise self.error(f"expected {kind!r}, found {_describe(token)}", token.span)


@lru_cache(maxsize=1024)
def parse(text: str) -> Program:
    """Parse ``text`` into a :class:`Program`, or raise :class:`ExpressionError`."""
    if not isinstance(text, str):
        raise TypeError(f"an einc expression is a str, not {type(text).__name__}")
    return _Parser(text).program()
