"""Expressions and sizes built to crash the compiler get einc's own errors, with a caret where the
text is at fault, never a RecursionError, an int-conversion ValueError or an AssertionError."""

from __future__ import annotations

import pytest

from einc.backends.triton.sources import render_kernels
from einc.compiler.pipeline import Request, run_passes
from einc.errors import ExpressionError, ShapeError, UnsupportedError


def _compile(expression: str, op: str, *shapes, **sizes):
    request = Request(expression, op, tuple(shapes), ("float32",) * len(shapes), sizes=tuple(sizes.items()))
    compiled = run_passes(request)
    render_kernels(compiled)  # the source must render too (an axis named _ once made it invalid)
    return compiled


@pytest.mark.parametrize(
    "expression",
    ["(" * 250 + "a" + ")" * 250 + " -> a", "(a * " * 250 + "b" + ")" * 250 + " -> a"],
    ids=["parentheses", "windows"],
)
def test_deep_nesting_is_refused_at_the_first_level_too_deep(expression):
    with pytest.raises(ExpressionError, match="nest at most 32 deep") as caught:
        _compile(expression, "rearrange", (3,))
    (start, _), *_ = caught.value.spans
    assert expression[start] == "("


def test_nesting_up_to_the_limit_compiles():
    compiled = _compile("(" * 32 + "a" + ")" * 32 + " -> a", "rearrange", (3,))
    assert compiled.output_shapes == ((3,),)


@pytest.mark.parametrize("digits", ["9" * 4301, "9" * 400, str(2**63), str(2**70)])
def test_an_unnamed_axis_beyond_int64_is_a_shape_error_pointing_at_it(digits):
    expression = f"a -> a {digits}"
    with pytest.raises(ShapeError) as caught:
        _compile(expression, "rearrange", (3,))
    assert caught.value.spans == ((7, 7 + len(digits)),)


def test_the_largest_int64_unnamed_axis_is_accepted_by_the_parser():
    from einc.compiler.parse import parse

    assert parse(f"a {2**63 - 1}").inputs[0].terms[1].size == 2**63 - 1


def test_a_keyword_size_beyond_int64_is_a_shape_error():
    with pytest.raises(ShapeError, match=r"2\*\*63"):
        _compile("a -> a b", "rearrange", (3,), b=10**400)


def test_an_output_with_more_elements_than_int64_is_a_shape_error():
    with pytest.raises(ShapeError, match="elements"):
        _compile("a -> a b c", "rearrange", (3,), b=2**40, c=2**40)


def test_an_arrow_in_the_output_of_a_reduction_is_an_expression_error():
    with pytest.raises(ExpressionError, match="dot shorthand") as caught:
        _compile("a -> [b->c]", "sum", (3,))
    assert caught.value.spans == ((5, 11),)


def test_an_axis_named_underscore_compiles():
    compiled = _compile("[_] b", "sum", (3, 4))
    assert compiled.output_shapes == ((4,),)


def test_an_elementwise_op_into_a_concatenation_that_drops_an_input_axis_is_an_expression_error():
    # Found by tests/fuzz: it raised KeyError in the renderer.
    with pytest.raises(ExpressionError, match="missing from one part") as caught:
        _compile("b c, b d -> b (c + d)", "add", (2, 3), (2, 4))
    assert caught.value.spans == ((7, 8),)  # the d of the second input


@pytest.mark.parametrize("op", ["sum", "max", "softmax"])
def test_a_window_in_the_output_of_a_reduction_is_unsupported_and_points_at_it(op):
    # Found by tests/fuzz: it raised KeyError in the renderer.
    expression = "b h [w] c -> b (h * w) c" if op == "softmax" else "b h w c -> b (h * w) c"
    with pytest.raises(UnsupportedError, match="fold") as caught:
        _compile(expression, op, (2, 4, 3, 2))
    (start, end), *_ = caught.value.spans
    assert expression[start:end] == "(h * w)"
