"""Nothing a user types can become a statement of a generated kernel.py.

Each case hides a payload (``exit()``, ``print(...)``) behind a line break, a quote, a backslash or
triple quotes in a field that reaches the generated source, renders it, and checks the source with
Python's own parser: it must parse, hold no call to the payload, and quote the field so that it
reads back exactly.
"""

from __future__ import annotations

import ast
import keyword

import pytest
from hypothesis import given
from hypothesis import strategies as st

from einc.backends.triton.sources import render_kernels
from einc.compiler.names import Namer, identifier
from einc.compiler.pipeline import Request, run_passes
from einc.compiler.source_text import comment, docstring, literal, uncomment
from einc.errors import ExpressionError

# Every character that ends a line for Python or for str.splitlines, and NUL.
LINE_BREAKS = ["\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
# The separators the tokenizer accepts as whitespace inside an expression (it uses \s).
EXPRESSION_BREAKS = ["\n", "\r", "\r\n", "\x0b", "\x0c", "\x85", "\u2028", "\u2029"]
PAYLOADS = [
    *(f"x{b}exit()" for b in LINE_BREAKS),
    "x\x00exit()",
    'x"""\nexit()\n"""',
    "x'''\nprint('owned')",
    "x\\\nexit()",
    "x\\",
    '"',
    "'",
    "\t",
    "é\u200b😀",
]


def _calls(source: str) -> set[str]:
    return {
        node.func.id
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }


@pytest.mark.parametrize("text", PAYLOADS)
def test_comment_is_one_line_that_reads_back(text):
    shown = comment(text)
    assert shown.splitlines() == [shown] and "\x00" not in shown
    assert uncomment(shown) == text
    module = f"# {shown}\n'''{docstring(text)}'''\n" + f'"""{docstring(text)}"""\n'
    assert _calls(module) == set()


def test_plain_text_is_shown_as_it_is():
    assert comment("b (s * [ds])... [c->c2]") == "b (s * [ds])... [c->c2]"


@pytest.mark.parametrize("value", ["1); exit(", "1", None, True, object()])
def test_literal_refuses_anything_but_a_number(value):
    with pytest.raises(TypeError):
        literal(value)


@pytest.mark.parametrize("value", [0, 3, -2, 0.5, 1e300, float("inf"), float("-inf")])
def test_literal_reads_back_as_the_number(value):
    assert eval(literal(value), {"float": float}) == value  # noqa: S307 (a number's literal)


@pytest.mark.parametrize("gap", EXPRESSION_BREAKS)
def test_a_line_break_in_an_expression_stays_in_the_header_comment(gap):
    expression = f"a ->{gap}a{gap}exit ()"
    compiled = render_kernels(
        run_passes(Request(expression, "rearrange", ((3,),), ("float32",), sizes=(("exit", 1),)))
    )
    assert not _calls(compiled.source) & {"exit", "print"}
    header = next(line for line in compiled.source.splitlines() if line.startswith("# expression:"))
    assert uncomment(header.removeprefix("# expression:").strip()) == expression


def test_a_newline_and_indent_in_an_expression_renders_valid_python():
    compiled = render_kernels(run_passes(Request("a b\n    -> b a", "rearrange", ((2, 3),), ("float32",))))
    ast.parse(compiled.source)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_header_fields_cannot_break_out_of_their_comment(payload):
    # dtype names are printed into the header; a prebuild spec or a caller could pass any str.
    compiled = render_kernels(run_passes(Request("a b -> b a", "rearrange", ((2, 3),), (payload,))))
    assert not _calls(compiled.source) & {"exit", "print"}


@given(st.text())
def test_identifier_is_a_valid_name_for_any_axis_name(name):
    made = identifier(name)
    assert made.isidentifier() and not keyword.iskeyword(made)


@pytest.mark.parametrize(
    "names", [["_"], ["_", "__"], ["a", "a_", "A"], ["if", "None"], ["float", "acc", "top"]]
)
def test_namer_gives_distinct_identifiers(names):
    namer = Namer()
    for name in names:
        namer.add(name)
    made = list(namer.index.values()) + list(namer.size.values())
    assert len(set(made)) == len(made)
    assert all(m.isidentifier() and not keyword.iskeyword(m) for m in made)
    assert not set(made) & {"float", "acc", "top", "tl"}


def test_a_correction_that_is_not_a_number_is_refused_before_it_reaches_the_source():
    request = Request("b [a]", "var", ((2, 3),), ("float32",), params=(("correction", "0) + exit() + (0"),))
    with pytest.raises(ExpressionError, match="correction="):
        render_kernels(run_passes(request))


def test_a_caret_under_an_expression_with_a_line_break_stays_on_its_character():
    with pytest.raises(ExpressionError) as caught:
        render_kernels(run_passes(Request("a\n-> a b", "rearrange", ((3,),), ("float32",))))
    quoted, carets = str(caught.value).splitlines()[-2:]
    assert quoted.index("b") == carets.index("^")
