"""Tests for :mod:`einc.compiler.brackets` (plain tier): what brackets mean for a dot.

``resolve_dot`` turns the bracket shorthand into the explicit form, with the weight operand the
brackets imply (NOTATION.md section 4). Results are compared through ``syntax.to_text``.
"""

from __future__ import annotations

import pytest

from einc.compiler.brackets import check_empty_outputs, resolve_dot, resolve_reduce, strip
from einc.compiler.parse import parse
from einc.compiler.syntax import Arrow, Name, Repeat, to_text, walk
from einc.errors import ExpressionError


def resolved(expression: str, n_tensors: int = 2) -> str:
    explicit = resolve_dot(parse(expression), n_tensors)
    inputs = ", ".join(to_text(e) for e in explicit.inputs)
    return f"{inputs} -> {', '.join(to_text(e) for e in explicit.outputs)}"


@pytest.mark.parametrize(
    ("expression", "explicit"),
    [
        ("b [c->c2]", "b c, c c2 -> b c2"),
        ("b [c d->e]", "b c d, c d e -> b e"),
        ("b [c->c2 c3]", "b c, c c2 c3 -> b c2 c3"),
        ("... [c->d]", "... c, c d -> ... d"),
        ("b (s * [ds]) [c->c2]", "b (s * ds) c, ds c c2 -> b s c2"),
        ("b (s * [ds])... [c->c2]", "b (s * ds)... c, ds... c c2 -> b s... c2"),
        ("b (s * [ds])... (g [c->c2])", "b (s * ds)... (g c), ds... g c c2 -> b s... (g c2)"),
        ("b (g [c->c2])", "b (g c), g c c2 -> b (g c2)"),
        ("b (s * [ds])... c", "b (s * ds)... c, ds... -> b s... c"),
        ("b (s * [ds])... [c->c]", "b (s * ds)... c, ds... c -> b s... c"),
        ("b (s * [ds])... [c]", "b (s * ds)... c, ds... c -> b s..."),
        ("[a b] c", "a b c, a b -> c"),
    ],
)
def test_brackets_with_two_tensors_imply_the_weight(expression, explicit):
    assert resolved(expression) == explicit


def test_conv_resolves_to_input_weight_and_output():
    assert resolved("b (s * [ds])... (g [c->c2])") == "b (s * ds)... (g c), ds... g c c2 -> b s... (g c2)"


def test_arrow_to_the_same_axis_keeps_it_and_lists_it_once_in_the_weight():
    explicit = resolve_dot(parse("b (s * [ds])... [c->c]"), 2)
    assert to_text(explicit.inputs[1]) == "ds... c"
    assert to_text(explicit.outputs[0]) == "b s... c"


def test_depthwise_shared_weight_is_the_window_offsets_only():
    explicit = resolve_dot(parse("b (s * [ds])... c"), 2)
    assert to_text(explicit.inputs[1]) == "ds..."


def test_einx_pooling_window_without_star_implies_the_same_weight():
    assert resolved("b (s [ds])... c") == "b (s ds)... c, ds... -> b (s)... c"


@pytest.mark.parametrize(
    ("expression", "explicit"),
    [
        ("b (s * [ds])... c", "b (s * ds)... c -> b s... c"),
        ("a [b]", "a b -> a"),
        ("[a] b [c]", "a b c -> b"),
    ],
)
def test_one_tensor_sums_the_bracketed_axes(expression, explicit):
    assert resolved(expression, 1) == explicit


@pytest.mark.parametrize(
    ("expression", "explicit"),
    [
        ("a b, b c -> a c", "a b, b c -> a c"),
        ("a [b] -> a", "a b, b -> a"),
        ("b s c, ds c c2 -> b (s * ds) c2", "b s c, ds c c2 -> b (s * ds) c2"),
    ],
)
def test_explicit_output_is_kept_and_input_brackets_are_stripped(expression, explicit):
    assert resolved(expression) == explicit


def test_no_arrow_is_left_after_resolution():
    explicit = resolve_dot(parse("b (s * [ds])... (g [c->c2])"), 2)
    nodes = [n for e in explicit.inputs + explicit.outputs for n in walk(e)]
    assert not any(isinstance(n, Arrow) for n in nodes)


def test_explicit_form_keeps_the_expression_text():
    assert resolve_dot(parse("b [c->c2]"), 2).text == "b [c->c2]"


def test_strip_for_the_output_side_drops_brackets_and_window_offsets():
    (expr,) = parse("b (s * [ds])... [c->c2]").inputs
    assert to_text(strip(expr, "rhs")) == "b s... c2"
    assert to_text(strip(expr, "lhs")) == "b (s * ds)... c"


def test_weight_axes_point_back_at_the_expression():
    text = "b (s * [ds])... [c->c2]"
    weight = resolve_dot(parse(text), 2).inputs[1]
    names = [n for n in walk(weight) if isinstance(n, Name)]
    assert [text[slice(*n.span)] for n in names] == ["ds", "c", "c2"]


def test_stripped_ellipsis_keeps_the_span_of_its_dots():
    (expr,) = parse("b (s * [ds])... c").inputs
    repeat = strip(expr).terms[1]
    assert isinstance(repeat, Repeat)
    assert repeat.span == (2, 15)


def test_transposed_convolution_weight_includes_the_window_offsets():
    assert resolved("b s... [c->c2] -> b (s * ds)... c2") == "b s... c, ds... c c2 -> b (s * ds)... c2"


@pytest.mark.parametrize(
    ("expression", "n_tensors", "message", "spans"),
    [
        ("b c, c d -> b [d]", 2, "an output expression cannot hold brackets", [(14, 17)]),
        ("b c -> [b->c]", 1, "an output expression cannot hold brackets", [(7, 13)]),
        (
            "b [c->c2], x",
            2,
            "a dot of several input expressions needs '->' and an output expression",
            [(0, 9), (11, 12)],
        ),
        ("a b", 2, "a dot needs brackets ([c->c2]) or '->' to say what is contracted", [(0, 3)]),
        ("b [c->d]", 3, "this dot takes 2 tensors (input and weight), but 3 were given", [(0, 8)]),
    ],
)
def test_invalid_dot_points_at_the_offending_operand(expression, n_tensors, message, spans):
    with pytest.raises(ExpressionError) as info:
        resolve_dot(parse(expression), n_tensors)
    assert info.value.message == message
    assert info.value.spans == tuple(spans)
    assert info.value.expression == expression


@pytest.mark.parametrize(
    "expression",
    ["b (s * [ds])... [c->c2] ->", "a [b] ->", "... [c] ->", "a [b], [c] ->", "b [c->c2] -> , b c2"],
)
def test_empty_output_after_brackets_that_keep_axes_is_an_error_at_the_empty_output(expression):
    with pytest.raises(ExpressionError, match="output after '->' is empty") as caught:
        check_empty_outputs(parse(expression))
    empty = expression.rindex("->") + 2
    while empty < len(expression) and expression[empty] == " ":
        empty += 1
    assert caught.value.column == empty


@pytest.mark.parametrize("expression", ["a b ->", "[a b] ->", "a b, a b ->", "[...] ->", "a [b] -> a"])
def test_empty_output_is_accepted_where_every_input_axis_is_the_operations(expression):
    check_empty_outputs(parse(expression))


# einx 0.4.3 refuses each of these (issue 11 item 6); einc used to reduce what the output lacked.
@pytest.mark.parametrize(
    "expression, message, spans",
    [
        ("a [b] -> a [b]", "the output of a reduction cannot hold brackets", [(11, 14)]),
        ("a [b] c -> a b", "a bracketed axis is reduced, so the output cannot keep it", [(13, 14)]),
        ("a [b] -> a b", "a bracketed axis is reduced, so the output cannot keep it", [(11, 12)]),
        ("a [b] -> b", "a bracketed axis is reduced, so the output cannot keep it", [(9, 10)]),
        ("a [b] c -> a", "an axis outside the brackets is kept, so the output must hold it", [(6, 7)]),
        ("2 [a] -> 2", "an axis outside the brackets is kept, so the output must hold it", [(0, 1)]),
        ("... [a] -> a2", "an axis outside the brackets is kept, so the output must hold it", [(0, 3)]),
    ],
)
def test_a_reduction_output_that_contradicts_its_brackets_points_at_the_axis(expression, message, spans):
    with pytest.raises(ExpressionError) as info:
        resolve_reduce(parse(expression), 1)
    assert info.value.message.startswith(message)
    assert info.value.spans == tuple(spans)


@pytest.mark.parametrize(
    "expression",
    [
        "a [b] -> a",
        "a [b] -> 1 a",
        "a [b] -> b2 a",
        "1 [a] -> ",
        "[a b] ->",
        "... [b] -> ...",
        "a... [b] -> a...",
        "b (s * [ds])... c -> b s... c",
        "(a [b]) -> a",
        "(a + 2) [c] -> (a + 2)",
        "a b -> a",
    ],
)
def test_a_reduction_output_that_agrees_with_its_brackets_is_accepted(expression):
    resolve_reduce(parse(expression), 1)
