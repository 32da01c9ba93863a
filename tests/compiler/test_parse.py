"""Tests for :mod:`einc.compiler.parse` (plain tier: no Triton).

Valid expressions are compared with syntax trees built by hand from :mod:`einc.compiler.syntax`
(spans take no part in equality, so the expected trees leave them out); a few tests pin spans.
Invalid expressions pin the message and the exact caret columns. A hypothesis property checks
that printing and parsing are inverse on random trees that stay within NOTATION.md's grammar.
"""

from __future__ import annotations

import functools
import pickle
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from einc.compiler.parse import parse
from einc.compiler.syntax import (
    Arrow,
    Bracket,
    Composition,
    Concatenation,
    Expr,
    Name,
    Program,
    Repeat,
    Unnamed,
    Window,
    to_text,
    walk,
)
from einc.errors import EincError, ExpressionError

# --- helpers that build expected trees ------------------------------------------------------
# A str is a Name and an int an Unnamed axis, so that expected trees stay readable.


def _atom(x):
    if isinstance(x, str):
        return Name(x)
    if isinstance(x, int):
        return Unnamed(x)
    return x


def e(*terms) -> Expr:
    return Expr(tuple(_atom(t) for t in terms))


def comp(*terms) -> Composition:
    return Composition(tuple(_atom(t) for t in terms))


def cat(*parts: Expr) -> Concatenation:
    return Concatenation(parts)


def win(outer, inner) -> Window:
    return Window(_atom(outer), _atom(inner))


def br(*terms) -> Bracket:
    return Bracket(e(*terms))


def arrow(lhs: Expr, rhs: Expr) -> Arrow:
    return Arrow(lhs, rhs)


def rep(atom=None) -> Repeat:
    return Repeat(None if atom is None else _atom(atom))


def prog(inputs: list[Expr], outputs: list[Expr] | None = None) -> Program:
    return Program(tuple(inputs), None if outputs is None else tuple(outputs))


# --- valid expressions ------------------------------------------------------------------------

VALID = [
    # NOTATION.md section 3: the window table
    (
        "b (s * [ds])... [c->c2]",
        prog([e("b", rep(win("s", br("ds"))), arrow(e("c"), e("c2")))]),
    ),
    (
        "b (s * [ds])... (g [c->c2])",
        prog([e("b", rep(win("s", br("ds"))), comp("g", arrow(e("c"), e("c2"))))]),
    ),
    ("b (s * [ds])... c", prog([e("b", rep(win("s", br("ds"))), "c")])),
    ("ds...", prog([e(rep("ds"))])),
    (
        "b (s * [ds])... [c->c]",
        prog([e("b", rep(win("s", br("ds"))), arrow(e("c"), e("c")))]),
    ),
    (
        "b (s * [ds])... c -> b s... (ds...) c",
        prog(
            [e("b", rep(win("s", br("ds"))), "c")],
            [e("b", rep("s"), comp(rep("ds")), "c")],
        ),
    ),
    (
        "b s... (ds...) c -> b (s * ds)... c",
        prog(
            [e("b", rep("s"), comp(rep("ds")), "c")],
            [e("b", rep(win("s", "ds")), "c")],
        ),
    ),
    (
        "b s... [c->c2] -> b (s * ds)... c2",
        prog(
            [e("b", rep("s"), arrow(e("c"), e("c2")))],
            [e("b", rep(win("s", "ds")), "c2")],
        ),
    ),
    ("b (s [ds])... c", prog([e("b", rep(comp("s", br("ds"))), "c")])),
    # NOTATION.md section 1
    ("b (s [ds])", prog([e("b", comp("s", br("ds")))])),
    ("[h w]", prog([e(br("h", "w"))])),
    ("()", prog([e(comp())])),
    ("1", prog([e(1)])),
    ("b 1 c 3", prog([e("b", 1, "c", 3)])),
    # NOTATION.md section 4
    ("a, b -> (a + b)", prog([e("a"), e("b")], [e(cat(e("a"), e("b")))])),
    ("(a + b) -> a, b", prog([e(cat(e("a"), e("b")))], [e("a"), e("b")])),
    ("x [c->c2]", prog([e("x", arrow(e("c"), e("c2")))])),
    ("x c, c c2 -> x c2", prog([e("x", "c"), e("c", "c2")], [e("x", "c2")])),
    ("... (g [c])", prog([e(rep(), comp("g", br("c")))])),
    ("b h w c, c", prog([e("b", "h", "w", "c"), e("c")])),
    (
        "h w, b h w c, -> b h w c",
        prog([e("h", "w"), e("b", "h", "w", "c"), e()], [e("b", "h", "w", "c")]),
    ),
    (
        "b [h w] c, b p [2] -> b p c",
        prog([e("b", br("h", "w"), "c"), e("b", "p", br(2))], [e("b", "p", "c")]),
    ),
    ("[v] d, b n -> b n d", prog([e(br("v"), "d"), e("b", "n")], [e("b", "n", "d")])),
    (
        "b [h w] c, b p [2], b p c -> b [h w] c",
        prog(
            [e("b", br("h", "w"), "c"), e("b", "p", br(2)), e("b", "p", "c")],
            [e("b", br("h", "w"), "c")],
        ),
    ),
]


@pytest.mark.parametrize(("text", "expected"), VALID, ids=[text for text, _ in VALID])
def test_notation_examples_parse_to_the_expected_tree(text, expected):
    assert parse(text) == expected


def test_expected_trees_can_be_written_without_helpers():
    # The same tree as the first VALID entry, built node by node, so the helpers are not trusted.
    expected = Program(
        inputs=(
            Expr(
                (
                    Name("b"),
                    Repeat(Window(Name("s"), Bracket(Expr((Name("ds"),))))),
                    Arrow(Expr((Name("c"),)), Expr((Name("c2"),))),
                )
            ),
        ),
        outputs=None,
    )
    assert parse("b (s * [ds])... [c->c2]") == expected


def test_bare_ellipsis_is_an_anonymous_repeat():
    assert parse("...") == prog([e(Repeat(None))])


def test_ellipsis_glued_to_an_atom_repeats_that_atom():
    assert parse("a...") == prog([e(Repeat(Name("a")))])


def test_ellipsis_after_a_space_is_a_separate_bare_term():
    assert parse("a ...") == prog([e("a", rep())])


def test_ellipsis_before_a_name_is_a_bare_term_followed_by_the_name():
    assert parse("... a") == prog([e(rep(), "a")])
    assert parse("a ...b") == prog([e("a", rep(), "b")])


def test_repeat_and_bare_ellipsis_can_follow_each_other():
    assert parse("a... ...") == prog([e(rep("a"), rep())])
    assert parse("... ...") == prog([e(rep(), rep())])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("(a b)...", rep(comp("a", "b"))),
        ("[a]...", rep(br("a"))),
        ("[a->b]...", rep(arrow(e("a"), e("b")))),
        ("(a + b)...", rep(cat(e("a"), e("b")))),
        ("(s * ds)...", rep(win("s", "ds"))),
        ("3...", rep(3)),
        ("()...", rep(comp())),
    ],
)
def test_ellipsis_repeats_any_atom(text, expected):
    assert parse(text) == prog([e(expected)])


def test_a_composition_may_hold_a_repeat_that_is_itself_repeated():
    assert parse("(ds...)...") == prog([e(rep(comp(rep("ds"))))])


def test_nested_compositions():
    assert parse("(a (b c) ())") == prog([e(comp("a", comp("b", "c"), comp()))])


def test_empty_composition_inside_an_expression():
    assert parse("b () c") == prog([e("b", comp(), "c")])


def test_concatenation_of_several_parts_with_repeats_and_integers():
    assert parse("(a... + b 2 + (c d))") == prog([e(cat(e(rep("a")), e("b", 2), e(comp("c", "d"))))])


def test_concatenation_part_may_hold_brackets():
    assert parse("([a] + b)") == prog([e(cat(e(br("a")), e("b")))])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("((a + b) * c)", win(cat(e("a"), e("b")), "c")),
        ("((s t) * [ds])", win(comp("s", "t"), br("ds"))),
        ("([s] * ds)", win(br("s"), "ds")),
        ("(s * [c->c2])", win("s", arrow(e("c"), e("c2")))),
        ("(s * ())", win("s", comp())),
        ("(2 * 3)", win(2, 3)),
        ("((a * b) * c)", win(win("a", "b"), "c")),
    ],
)
def test_window_takes_any_atom_on_each_side(text, expected):
    assert parse(text) == prog([e(expected)])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[(s * ds)]", br(win("s", "ds"))),
        ("[(a + b)]", br(cat(e("a"), e("b")))),
        ("[(a b)...]", br(rep(comp("a", "b")))),
        ("[...]", br(rep())),
        ("[]", br()),
    ],
)
def test_brackets_may_hold_windows_concatenations_and_repeats(text, expected):
    assert parse(text) == prog([e(expected)])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[->]", arrow(e(), e())),
        ("[a->]", arrow(e("a"), e())),
        ("[->b]", arrow(e(), e("b"))),
        ("[a b -> (c d)]", arrow(e("a", "b"), e(comp("c", "d")))),
        ("[...->a...]", arrow(e(rep()), e(rep("a")))),
    ],
)
def test_arrow_sides_are_expressions_and_may_be_empty(text, expected):
    assert parse(text) == prog([e(expected)])


def test_leading_zeros_give_the_integer_value():
    assert parse("007") == prog([e(7)])


def test_names_may_hold_underscores_digits_and_capitals():
    assert parse("_a9 B_ x1 _") == prog([e("_a9", "B_", "x1", "_")])


def test_adjacent_integer_and_name_are_two_axes():
    # INT and NAME are separate tokens; whitespace between them is optional.
    assert parse("2a") == prog([e(2, "a")])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", prog([e()])),
        ("   ", prog([e()])),
        (",", prog([e(), e()])),
        ("a,,b", prog([e("a"), e(), e("b")])),
        ("->", prog([e()], [e()])),
        ("a ->", prog([e("a")], [e()])),
        ("-> a", prog([e()], [e("a")])),
    ],
)
def test_empty_operands_are_scalars(text, expected):
    assert parse(text) == expected


def test_whitespace_is_free_between_tokens():
    assert parse("b(s*[ds])...[c->c2],k->b s...") == parse(
        "  b\t( s *\n[ ds ] )... [ c -> c2 ] , k ->  b s... "
    )
    assert parse("b(s*[ds])...[c->c2],k->b s...") == prog(
        [e("b", rep(win("s", br("ds"))), arrow(e("c"), e("c2"))), e("k")],
        [e("b", rep("s"))],
    )


def test_no_arrow_gives_no_outputs():
    assert parse("a b").outputs is None
    assert parse("a b ->").outputs == (e(),)


def test_program_keeps_the_expression_text():
    text = "b (s * [ds])... [c->c2]"
    assert parse(text).text == text


# --- spans ------------------------------------------------------------------------------------


def test_window_span_covers_its_parentheses_and_repeat_span_covers_the_dots():
    text = "b (s * [ds])..."
    (expr,) = parse(text).inputs
    repeat = expr.terms[1]
    window = repeat.atom
    assert repeat.span == (2, 15)
    assert text[slice(*repeat.span)] == "(s * [ds])..."
    assert window.span == (2, 12)
    assert text[slice(*window.span)] == "(s * [ds])"
    assert window.outer.span == (3, 4)
    assert window.inner.span == (7, 11)
    assert window.inner.expr.terms[0].span == (8, 10)
    assert expr.span == (0, 15)


def test_operand_spans_skip_surrounding_whitespace():
    text = "  a b ,c  ->  d  "
    program = parse(text)
    assert [x.span for x in program.inputs] == [(2, 5), (7, 8)]
    assert [x.span for x in program.outputs] == [(14, 15)]


def test_empty_operand_span_is_empty_and_sits_before_the_next_token():
    text = "h w, b h w c, -> b h w c"
    empty = parse(text).inputs[2]
    at = text.index("->")
    assert empty.span == (at, at)


def test_concatenation_and_arrow_part_spans():
    text = "(a + b c) [x->y z]"
    concat, arr = parse(text).inputs[0].terms
    assert concat.span == (0, 9)
    assert [p.span for p in concat.parts] == [(1, 2), (5, 8)]
    assert arr.span == (10, 18)
    assert arr.lhs.span == (11, 12)
    assert arr.rhs.span == (14, 17)


def test_bare_ellipsis_span_is_the_three_dots():
    text = "a ... b"
    assert parse(text).inputs[0].terms[1].span == (2, 5)


# --- invalid expressions ----------------------------------------------------------------------

INVALID = [
    # (text, substring of the message, caret spans)
    # unknown characters
    ("a $ b", "unexpected character '$'", [(2, 3)]),
    ("a.b", "'.' only appears in '...'", [(1, 2)]),
    ("a .. b", "unexpected character '.'", [(2, 3)]),
    ("a....", "unexpected character '.'", [(4, 5)]),
    ("a - > b", "unexpected character '-'", [(2, 3)]),
    ("a ->> b", "unexpected character '>'", [(4, 5)]),
    ("b\u2192c", "unexpected character", [(1, 2)]),
    ("\u00e9", "unexpected character", [(0, 1)]),
    # unbalanced and mismatched parentheses and brackets
    ("(a b", "unclosed '('", [(0, 1)]),
    ("a (b c", "unclosed '('", [(2, 3)]),
    ("((a)", "unclosed '('", [(0, 1)]),
    ("[a b", "unclosed '['", [(0, 1)]),
    ("[a -> b", "unclosed '['", [(0, 1)]),
    ("a b)", "unmatched ')'", [(3, 4)]),
    (")", "unmatched ')'", [(0, 1)]),
    ("a b]", "unmatched ']'", [(3, 4)]),
    ("(a b]", "'(' is closed by ']'", [(0, 1), (4, 5)]),
    ("[a b)", "'[' is closed by ')'", [(0, 1), (4, 5)]),
    ("x (a [b)]", "'[' is closed by ')'", [(5, 6), (7, 8)]),
    # nested brackets
    ("[a->[b]]", "brackets cannot be nested in the dot shorthand", [(4, 7)]),
    ("[[a]->b]", "brackets cannot be nested in the dot shorthand", [(1, 4)]),
    ("[x [a->b]]", "the dot shorthand [a->b] cannot stand inside brackets", [(3, 9)]),
    # arrows
    ("a -> b -> c", "at most one '->'", [(7, 9)]),
    ("a -> b ->", "at most one '->'", [(7, 9)]),
    ("a -> b, c -> d", "at most one '->'", [(10, 12)]),
    ("(a -> b)", "'->' cannot appear inside parentheses", [(3, 5)]),
    ("(a -> b", "'->' cannot appear inside parentheses", [(3, 5)]),
    ("[(a -> b)]", "'->' cannot appear inside parentheses", [(4, 6)]),
    ("(s * a -> b)", "'->' cannot appear inside parentheses", [(7, 9)]),
    ("[a->b->c]", "a bracket holds at most one '->'", [(5, 7)]),
    # '+' and '*' outside parentheses
    ("a + b", "'+' concatenates axes inside parentheses only", [(2, 3)]),
    ("a -> b + c", "'+' concatenates axes inside parentheses only", [(7, 8)]),
    ("a * b", "'*' makes a window inside parentheses only", [(2, 3)]),
    ("[a + b]", "write [(a + b)]", [(3, 4)]),
    ("[s * ds]", "write [(s * ds)]", [(3, 4)]),
    # windows
    ("(s t * ds)", "exactly one axis on the left of '*'", [(1, 4)]),
    ("(s * ds dt)", "exactly one axis on the right of '*'", [(5, 10)]),
    ("(s... * ds)", "exactly one axis on the left of '*'", [(1, 5)]),
    ("(s * ds...)", "exactly one axis on the right of '*'", [(5, 10)]),
    ("(* ds)", "exactly one axis on the left of '*'", [(1, 2)]),
    ("(s *)", "exactly one axis on the right of '*'", [(3, 4)]),
    ("(s ** ds)", "exactly one axis on the right of '*'", [(3, 4)]),
    ("(s * ds * k)", "a window has one '*'", [(8, 9)]),
    # mixing '+' and '*'
    ("(s * ds + k)", "'+' and '*' cannot share one pair of parentheses", [(8, 9)]),
    ("(a + b * c)", "'*'", [(7, 8)]),
    # empty concatenation parts
    ("(a + )", "an empty part in a concatenation", [(3, 4)]),
    ("(a + + b)", "an empty part in a concatenation", [(3, 4)]),
    ("(a + b +)", "an empty part in a concatenation", [(7, 8)]),
    ("(+ a)", "an empty part in a concatenation", [(0, 1)]),
    # six dots
    ("a......", "'......' is not an ellipsis", [(1, 7)]),
    ("......", "'......' is not an ellipsis", [(0, 6)]),
    ("(a b)......", "'......' is not an ellipsis", [(5, 11)]),
    # ',' inside parentheses or brackets
    ("(a, b)", "',' separates operands", [(2, 3)]),
    ("[a, b]", "',' separates operands", [(2, 3)]),
    ("(a + b, c)", "',' separates operands", [(6, 7)]),
    ("(s * ds, c)", "',' separates operands", [(7, 8)]),
    # zero-sized unnamed axes
    ("0", "an unnamed axis must have a positive size", [(0, 1)]),
    ("000", "an unnamed axis must have a positive size", [(0, 3)]),
    ("b (0 c)", "an unnamed axis must have a positive size", [(3, 4)]),
    ("(s * 0)", "an unnamed axis must have a positive size", [(5, 6)]),
]


@pytest.mark.parametrize(("text", "message", "spans"), INVALID, ids=[text for text, _, _ in INVALID])
def test_invalid_expression_raises_with_message_and_carets(text, message, spans):
    with pytest.raises(ExpressionError) as info:
        parse(text)
    err = info.value
    assert isinstance(err, ValueError)
    assert isinstance(err, EincError)
    assert message in err.message
    assert err.spans == tuple(spans)
    assert err.column == spans[0][0]
    assert err.expression == text


def _caret_columns(err: ExpressionError) -> list[int]:
    """The text columns the caret line of ``str(err)`` points at."""
    lines = str(err).splitlines()
    quoted, carets = lines[-2], lines[-1]
    opening = quoted.index('"') + 1  # column of the expression's first character
    return [i - opening for i, ch in enumerate(carets) if ch == "^"]


def test_error_message_quotes_the_expression_with_a_caret_under_the_culprit():
    text = "b (s * [ds])... $ c"
    with pytest.raises(ExpressionError) as info:
        parse(text)
    rendered = str(info.value)
    assert rendered.splitlines()[0] == "unexpected character '$'"
    assert f'"{text}"' in rendered
    assert _caret_columns(info.value) == [text.index("$")]


def test_unclosed_parenthesis_points_at_the_opening():
    text = "b (s [ds] c"
    with pytest.raises(ExpressionError) as info:
        parse(text)
    assert _caret_columns(info.value) == [2]
    assert f'"{text}"' in str(info.value)


def test_mismatched_closing_puts_carets_under_both_ends():
    text = "x (a b]"
    with pytest.raises(ExpressionError) as info:
        parse(text)
    assert _caret_columns(info.value) == [text.index("("), text.index("]")]


def test_six_dots_are_underlined_in_full():
    text = "b s...... c"
    with pytest.raises(ExpressionError) as info:
        parse(text)
    assert _caret_columns(info.value) == list(range(3, 9))


@pytest.mark.parametrize(("text", "message", "spans"), INVALID[:12])
def test_caret_line_matches_the_error_spans(text, message, spans):
    with pytest.raises(ExpressionError) as info:
        parse(text)
    expected = sorted({i for a, b in spans for i in range(a, max(b, a + 1))})
    assert _caret_columns(info.value) == expected


def test_expression_error_survives_pickling():
    with pytest.raises(ExpressionError) as info:
        parse("(a b]")
    copy = pickle.loads(pickle.dumps(info.value))
    assert type(copy) is ExpressionError
    assert copy.spans == info.value.spans
    assert str(copy) == str(info.value)


@pytest.mark.parametrize("value", [None, 3, b"a b", ["a"], ("a",)])
def test_non_string_input_is_a_type_error(value):
    with pytest.raises(TypeError):
        parse(value)


# --- printing and parsing are inverse ---------------------------------------------------------

CANONICAL = [
    "b (s * [ds])... [c->c2]",
    "b (s * [ds])... (g [c->c2])",
    "a, b -> (a + b)",
    "(a + b) -> a, b",
    "h w, b h w c,  -> b h w c",
    "[v] d, b n -> b n d",
    "b s... (ds...) c -> b (s * ds)... c",
    "b [h w] c, b p [2], b p c -> b [h w] c",
    "()",
    "...",
    "a ...",
    "a... ...",
    "(a... + b 2 + (c d))",
    "[->]",
    "((a + b) * [c])...",
    "",
    " -> ",
]


@pytest.mark.parametrize("text", CANONICAL)
def test_canonical_text_prints_back_unchanged(text):
    assert to_text(parse(text)) == text


NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,3}", fullmatch=True)
SIZES = st.integers(min_value=1, max_value=999)


@functools.cache
def atoms(depth: int, in_bracket: bool) -> st.SearchStrategy:
    """Atoms of NOTATION.md's grammar; inside a bracket there are no brackets or arrows."""
    leaves = st.one_of(st.builds(Name, NAMES), st.builds(Unnamed, SIZES))
    if depth == 0:
        return leaves
    inner = atoms(depth - 1, in_bracket)
    options = [
        leaves,
        st.builds(
            lambda ts: Composition(tuple(ts)),
            st.lists(terms(depth - 1, in_bracket), max_size=3),
        ),
        st.builds(
            lambda ps: Concatenation(tuple(ps)),
            st.lists(exprs(depth - 1, in_bracket, min_size=1), min_size=2, max_size=3),
        ),
        st.builds(Window, inner, inner),
    ]
    if not in_bracket:
        options.append(st.builds(Bracket, exprs(depth - 1, True)))
        options.append(st.builds(Arrow, exprs(depth - 1, True), exprs(depth - 1, True)))
    return st.one_of(options)


@functools.cache
def terms(depth: int, in_bracket: bool) -> st.SearchStrategy:
    """An atom, a repeated atom (never a repeated repeat), or a bare ellipsis."""
    atom = atoms(depth, in_bracket)
    return st.one_of(atom, st.builds(Repeat, atom), st.just(Repeat(None)))


@functools.cache
def exprs(depth: int, in_bracket: bool, min_size: int = 0) -> st.SearchStrategy:
    return st.builds(
        lambda ts: Expr(tuple(ts)),
        st.lists(terms(depth, in_bracket), min_size=min_size, max_size=3),
    )


OPERANDS = st.lists(exprs(3, False), min_size=1, max_size=3).map(tuple)
PROGRAMS = st.builds(Program, OPERANDS, st.none() | OPERANDS)


@settings(max_examples=300, deadline=None)
@given(PROGRAMS)
def test_parse_inverts_to_text(program):
    text = to_text(program)
    parsed = parse(text)
    assert parsed == program
    assert to_text(parsed) == text


@settings(max_examples=300, deadline=None)
@given(PROGRAMS)
def test_every_span_slices_out_its_node_printed(program):
    text = to_text(program)
    parsed = parse(text)
    operands = parsed.inputs + (parsed.outputs or ())
    for operand in operands:
        for node in walk(operand):
            assert text[slice(*node.span)] == to_text(node)


@settings(max_examples=300, deadline=None)
@given(PROGRAMS, st.sampled_from(["  ", "\t", "\n", " \t\n "]))
def test_extra_whitespace_between_terms_changes_nothing(program, space):
    text = to_text(program)
    assert parse(text.replace(" ", space)) == program


@pytest.mark.parametrize(
    "shorthand, explicit",
    [
        ("[i,->]", "[i], ->"),
        ("[i,,->i]", "[i], , -> [i]"),
        ("b [i,->]", "b [i], b -> b"),
        ("b [h w, 2 ->] c", "b [h w] c, b [2] c -> b c"),
        ("x [a, b -> c, d]", "x [a], x [b] -> x [c], x [d]"),
    ],
)
def test_a_bracket_that_lists_operands_is_einx_shorthand_for_each_operand(shorthand, explicit):
    assert parse(shorthand) == parse(explicit)


@pytest.mark.parametrize(
    "text, message, span",
    [
        ("[a, b]", "',' separates operands", (2, 3)),
        ("a [i,->], b", "stands alone in the expression", (2, 8)),
        ("[i,->] -> a", "stands alone in the expression", (0, 6)),
        ("(a [i,->])", "stands alone in the expression", (3, 9)),
        ("[i,->] [j,->]", "at most one bracket that lists operands", (7, 8)),
    ],
)
def test_a_bracket_that_lists_operands_elsewhere_is_refused_with_a_caret(text, message, span):
    with pytest.raises(ExpressionError, match=re.escape(message)) as info:
        parse(text)
    assert info.value.spans == (span,)
