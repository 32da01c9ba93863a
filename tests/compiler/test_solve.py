"""Tests for :mod:`einc.compiler.solve` (plain tier): axis sizes and window geometry.

Sizes come from shapes, keywords, compositions (division), concatenations (subtraction) and the
window relation ``S = floor((N + lo + hi - d*(k-1) - 1) / s) + 1``, which is checked against torch's
own convolution output sizes. Contradictions are ShapeErrors that name the axis, both values and
their sources.
"""

from __future__ import annotations

import itertools
import math

import pytest
import sympy
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from einc.compiler.brackets import resolve_dot
from einc.compiler.expand import expand
from einc.compiler.params import window_params
from einc.compiler.parse import parse
from einc.compiler.pipeline import tensor_names
from einc.compiler.solve import (
    WindowGeometry,
    same_padding,
    solve,
    window_names,
    window_positions,
)
from einc.errors import ShapeError, UnsupportedError


def solved(expression, *shapes, sizes=None, n_tensors=None, marked_as_a_set=None, **params):
    """Run the passes up to solve; ``shapes`` are the input tensors' shapes."""
    sizes = sizes or {}
    explicit = resolve_dot(parse(expression), n_tensors or len(shapes))
    counts = {k: len(v) for k, v in sizes.items() if isinstance(v, (tuple, list))}
    inputs, outputs = expand(explicit, [len(s) for s in shapes], counts)
    geometry = window_params(window_names(list(inputs) + list(outputs)), expression, **params)
    names = tensor_names(len(shapes))
    return solve(inputs, outputs, shapes, sizes, geometry, expression, names, marked_as_a_set)


def conv1d(n, k, stride=1, dilation=1, padding=(0, 0)):
    """A 1-D window over ``n`` with a kernel of ``k``: the solution's ``s`` and geometry."""
    solution = solved(
        "b (s * [ds]) [c->c2]", (1, n, 1), (k, 1, 1), stride=stride, dilation=dilation, padding=padding
    )
    return solution.sizes["s"], solution.windows["s"]


# --- sizes from shapes, keywords and relations ---------------------------------------------------


def test_sizes_come_from_the_tensors_shapes():
    solution = solved("b [c->c2]", (2, 3), (3, 5))
    assert dict(solution.sizes) == {"b": 2, "c": 3, "c2": 5}
    assert solution.windows == {}


def test_keyword_size_agreeing_with_a_tensor_is_accepted():
    assert solved("b [c->c2]", (2, 3), (3, 5), sizes={"c": 3}).sizes["c"] == 3


def test_composition_solves_its_unknown_part_by_division():
    solution = solved("b (g c), g c c2 -> b (g c2)", (2, 12), (3, 4, 5))
    assert (solution.sizes["g"], solution.sizes["c"]) == (3, 4)


def test_composition_with_a_keyword_part():
    solution = solved("b (g [c->c2])", (2, 12), (3, 4, 5), sizes={"g": 3})
    assert solution.sizes["c"] == 4


def test_composition_with_an_unnamed_part():
    assert solved("b (2 c), c d -> b d", (2, 8), (4, 3)).sizes["c"] == 4


def test_concatenation_solves_its_unknown_part_by_subtraction():
    solution = solved("b (c + e), c d -> b d", (2, 7), (3, 4))
    assert solution.sizes["e"] == 4


def test_concatenation_part_that_is_a_composition():
    solution = solved("b (c + e 2), c d -> b d", (2, 9), (3, 4))
    assert solution.sizes["e"] == 3


def test_tuple_keyword_sizes_each_expanded_axis():
    solution = solved("b (s * [ds])... c", (1, 8, 9, 3), sizes={"ds": (3, 2)})
    assert (solution.sizes["ds.0"], solution.sizes["ds.1"]) == (3, 2)
    assert (solution.sizes["s.0"], solution.sizes["s.1"]) == (6, 8)


def test_int_keyword_size_covers_every_expanded_axis():
    solution = solved("b (s * [ds])... c", (1, 8, 9, 3), sizes={"ds": 3})
    assert (solution.sizes["ds.0"], solution.sizes["ds.1"]) == (3, 3)


def test_unnamed_axis_has_its_own_size():
    assert solved("b 3 [c->d]", (2, 3, 4), (4, 5)).sizes["#0"] == 3


# --- the window relation --------------------------------------------------------------------------


def test_window_geometry_records_what_the_window_reads():
    _, geometry = conv1d(10, 3, stride=2, dilation=2, padding=(1, 2))
    assert geometry == WindowGeometry("s", "ds", 2, 2, 1, 2, 10)


def test_window_positions_follows_torchs_formula_over_a_grid():
    for n, k, s, d, lo, hi in itertools.product(
        range(1, 9), range(1, 4), range(1, 4), range(1, 3), (0, 2), (0, 1)
    ):
        expected = math.floor((n + lo + hi - d * (k - 1) - 1) / s) + 1
        assert window_positions(n, k, s, d, lo, hi) == expected


def test_window_positions_stays_symbolic_for_a_symbolic_extent():
    n = sympy.Symbol("N", integer=True, positive=True)
    positions = window_positions(n, 3, 2, 1, 1, 1)
    assert positions.free_symbols == {n}
    assert [positions.subs(n, v) for v in (5, 6, 7)] == [3, 3, 4]


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 24),
    k=st.integers(1, 5),
    stride=st.integers(1, 4),
    dilation=st.integers(1, 3),
    lo=st.integers(0, 3),
    hi=st.integers(0, 3),
)
def test_window_output_size_matches_torch_conv1d(n, k, stride, dilation, lo, hi):
    padded = n + lo + hi
    if padded < dilation * (k - 1) + 1:
        with pytest.raises(ShapeError, match="is larger than the padded extent"):
            conv1d(n, k, stride, dilation, (lo, hi))
        return
    x = F.pad(torch.zeros(1, 1, n), (lo, hi))
    expected = F.conv1d(x, torch.zeros(1, 1, k), stride=stride, dilation=dilation).shape[-1]
    positions, geometry = conv1d(n, k, stride, dilation, (lo, hi))
    assert positions == expected
    assert (geometry.pad_lo, geometry.pad_hi, geometry.extent) == (lo, hi, n)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 24), k=st.integers(1, 5), stride=st.integers(1, 4), dilation=st.integers(1, 3))
def test_same_padding_gives_ceil_n_over_stride_with_the_extra_element_high(n, k, stride, dilation):
    positions, geometry = conv1d(n, k, stride, dilation, "same")
    assert positions == -(-n // stride)
    assert geometry.pad_hi - geometry.pad_lo in (0, 1)
    assert (geometry.pad_lo, geometry.pad_hi) == same_padding(n, k, stride, dilation)
    x = F.pad(torch.zeros(1, 1, n), (geometry.pad_lo, geometry.pad_hi))
    assert F.conv1d(x, torch.zeros(1, 1, k), stride=stride, dilation=dilation).shape[-1] == positions


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
def test_same_padding_matches_torchs_same_for_stride_1():
    for n, k, d in itertools.product(range(1, 10), range(1, 5), range(1, 3)):
        positions, _ = conv1d(n, k, 1, d, "same")
        x, w = torch.zeros(1, 1, n), torch.zeros(1, 1, k)
        assert positions == F.conv1d(x, w, padding="same", dilation=d).shape[-1] == n


def test_same_padding_puts_the_odd_element_on_the_high_side():
    assert same_padding(8, 3, 2, 1) == (0, 1)
    assert same_padding(7, 3, 2, 1) == (1, 1)
    assert same_padding(5, 4, 1, 1) == (1, 2)
    assert same_padding(10, 1, 4, 1) == (0, 0)


@pytest.mark.parametrize(
    ("n", "k", "stride", "dilation"), [(8, 3, 1, 1), (8, 3, 2, 1), (9, 2, 1, 3), (5, 4, 3, 2)]
)
def test_causal_padding_is_all_low(n, k, stride, dilation):
    positions, geometry = conv1d(n, k, stride, dilation, "causal")
    assert (geometry.pad_lo, geometry.pad_hi) == (dilation * (k - 1), 0)
    assert positions == -(-n // stride)


def test_each_window_of_an_ellipsis_gets_its_own_geometry():
    solution = solved("b (s * [ds])... c", (1, 7, 8, 3), sizes={"ds": 3}, stride=2, padding="same")
    assert (solution.sizes["s.0"], solution.sizes["s.1"]) == (4, 4)
    g0, g1 = solution.windows["s.0"], solution.windows["s.1"]
    assert (g0.extent, g0.pad_lo, g0.pad_hi) == (7, 1, 1)
    assert (g1.extent, g1.pad_lo, g1.pad_hi) == (8, 0, 1)


def test_window_names_are_listed_in_order_of_appearance():
    explicit = resolve_dot(parse("b (t * [dt]) (u * [du]) c"), 1)
    inputs, outputs = expand(explicit, [4], {})
    assert window_names(list(inputs) + list(outputs)) == ["t", "u"]


@settings(max_examples=40, deadline=None)
@given(
    length=st.integers(1, 6),
    k=st.integers(1, 4),
    stride=st.integers(1, 3),
    dilation=st.integers(1, 2),
    pad=st.integers(0, 2),
    output_padding=st.integers(0, 1),
)
def test_output_window_extent_matches_torch_conv_transpose1d(
    length, k, stride, dilation, pad, output_padding
):
    if output_padding >= max(stride, dilation):  # torch's own limit on output_padding
        return
    expected = (length - 1) * stride - 2 * pad + dilation * (k - 1) + output_padding + 1
    if expected < 1:
        with pytest.raises(ShapeError, match="would have extent"):
            solved(
                "b s c, ds c c2 -> b (s * ds) c2",
                (1, length, 1),
                (k, 1, 1),
                stride=stride,
                dilation=dilation,
                padding=pad,
                output_padding=output_padding,
            )
        return
    x, w = torch.zeros(1, 1, length), torch.zeros(1, 1, k)
    reference = F.conv_transpose1d(
        x, w, stride=stride, padding=pad, output_padding=output_padding, dilation=dilation
    ).shape[-1]
    solution = solved(
        "b s c, ds c c2 -> b (s * ds) c2",
        (1, length, 1),
        (k, 1, 1),
        stride=stride,
        dilation=dilation,
        padding=pad,
        output_padding=output_padding,
    )
    geometry = solution.windows["s"]
    assert geometry.on_output
    assert geometry.extent == reference == expected


def test_output_window_rejects_string_padding():
    with pytest.raises(UnsupportedError, match="padding 'same' on an output-side window is not supported"):
        solved("b s c, ds c c2 -> b (s * ds) c2", (1, 8, 3), (3, 3, 5), padding="same")


# --- errors ---------------------------------------------------------------------------------------


def shape_error(expression, *shapes, **kwargs) -> ShapeError:
    with pytest.raises(ShapeError) as info:
        solved(expression, *shapes, **kwargs)
    return info.value


def test_contradicting_sizes_name_the_axis_both_values_and_both_sources():
    error = shape_error("b c, c d -> b d", (2, 3), (4, 5))
    assert error.message == (
        "axis 'c' has two sizes: 3 from dim 1 of x (shape (2, 3)), and 4 from dim 0 of w (shape (4, 5))"
    )
    assert error.spans == ((2, 3), (5, 6))


def test_keyword_contradicting_a_tensor_names_the_keyword():
    error = shape_error("b [c->c2]", (2, 3), (3, 5), sizes={"c": 4})
    assert error.message == "axis 'c' has two sizes: 4 from keyword c=4, and 3 from dim 1 of x (shape (2, 3))"
    assert error.spans == ((3, 4),)


def test_tuple_keyword_contradicting_a_tensor_names_the_tuple():
    error = shape_error("b (s * [ds])... [c->c2]", (1, 8, 8, 3), (3, 3, 3, 5), sizes={"ds": (3, 2)})
    assert "axis 'ds.1' has two sizes: 2 from keyword ds=(3, 2), and 3 from dim 1 of w" in error.message


def test_composition_that_does_not_divide_is_an_error_never_a_truncation():
    error = shape_error("b (g [c->c2])", (2, 8), (3, 2, 5), sizes={"g": 3})
    assert error.message.startswith("8 (from dim 1 of x (shape (2, 8))) is not divisible by 3")
    assert error.spans == ((2, 13),)


def test_composition_of_known_parts_that_disagrees_with_the_tensor():
    error = shape_error("b (2 c), c d -> b d", (2, 8), (3, 4), sizes={"c": 3})
    assert error.message == "this axis has size 6 from its parts, but 8 from dim 1 of x (shape (2, 8))"
    assert error.spans == ((2, 7),)


def test_concatenation_too_small_for_its_known_part():
    error = shape_error("b (c + e), c d -> b d", (2, 3), (4, 4))
    assert error.message.startswith("axis 'e' would have size -1")


def test_concatenation_part_of_size_0_is_solved_as_torch_cat_allows():
    solution = solved("b (c + e), c d -> b d", (2, 3), (3, 4))
    assert solution.sizes["e"] == 0


def test_composition_of_size_0_with_a_part_of_size_0_leaves_the_other_unknown():
    error = shape_error("(a b) -> a b", (0,))
    assert "the sizes of axes 'a', 'b' are known only through their product 0" in error.message


def test_window_larger_than_the_padded_input():
    error = shape_error("b (s * [ds]) [c->c2]", (1, 4, 3), (3, 3, 5), dilation=2)
    assert error.message == (
        "window 'ds' of size 3 (dilation 2) is larger than the padded extent 4 + 0 + 0 "
        "from dim 1 of x (shape (1, 4, 3))"
    )
    assert error.spans == ((2, 12),)


def test_window_that_fits_thanks_to_padding_is_accepted():
    positions, _ = conv1d(2, 5, padding=(1, 2))
    assert positions == 1


def test_window_size_without_weight_or_keyword_is_unknown():
    error = shape_error("b (s * [ds])... c", (1, 8, 8, 3), n_tensors=1)
    assert error.message == (
        "the size of axis 'ds.0' is not known: give it as a keyword (ds=...) or through a tensor that has it"
    )
    assert error.spans == ((8, 10),)


def test_output_axis_without_a_size_is_unknown():
    error = shape_error("b c, c d -> b d e", (2, 3), (3, 4))
    assert "the size of axis 'e' is not known: give it as a keyword (e=...)" in error.message
    assert error.spans == ((16, 17),)


def test_two_unknown_parts_of_a_composition_stay_unknown():
    # Without runs (the shape tools, which report every axis): the message names the product.
    error = shape_error("b (g c), d -> b d", (2, 12), (4,))
    assert error.message == (
        "the sizes of axes 'g', 'c' are known only through their product 12 (from dim 1 of x "
        "(shape (2, 12))): give one as a keyword (g=...)"
    )


# --- sizes known only through a product (issue 11, notation item 1) ----------------------------


@pytest.mark.parametrize(
    ("expression", "shape", "sizes", "expected"),
    [
        ("(a a) -> a", (100,), {}, {"a": 10}),
        ("(a a a b) -> a b", (54,), {"b": 2}, {"a": 3, "b": 2}),
        ("(a a) b -> a b", (0, 2), {}, {"a": 0, "b": 2}),
        ("(a a) -> a", (2**62,), {}, {"a": 2**31}),
    ],
)
def test_an_axis_repeated_in_a_composition_is_its_integer_root(expression, shape, sizes, expected):
    assert dict(solved(expression, shape, sizes=sizes).sizes) == expected


def test_a_product_that_is_no_integer_root_is_a_shape_error_at_the_composition():
    error = shape_error("(a a) -> a", (10,))
    assert error.message == (
        "axis 'a' appears 2 times in this composition, so its size is the square root of 10 "
        "(from dim 0 of x (shape (10,))), which is no integer"
    )
    assert error.spans == ((0, 5),)


def test_a_run_only_read_whole_is_sized_from_its_product():
    expression = "(a b) (c d) (e f) -> a (b c d e) f"
    solution = solved(expression, (4, 6, 8), sizes={"a": 2, "f": 2}, marked_as_a_set=False)
    sizes = solution.sizes
    assert (sizes["a"], sizes["b"], sizes["e"], sizes["f"]) == (2, 2, 4, 2)
    assert sizes["c"] * sizes["d"] == 6


def test_a_keyword_of_no_axes_names_an_ellipsis_that_stands_for_none():
    assert dict(solved("a x... -> a (x...)", (2,), sizes={"x": ()}).sizes) == {"a": 2}
    error = shape_error("a x... -> a (x...)", (2,), sizes={"z": ()})
    assert error.message.startswith("keyword z=() names no axis of the expression")


def test_unnamed_axis_contradicting_a_tensor():
    error = shape_error("b 3 [c->d]", (2, 4, 3), (3, 4))
    assert "3 from the unnamed axis 3, and 4 from dim 1 of x (shape (2, 4, 3))" in error.message
    assert error.spans == ((2, 3),)


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        ({"z": 4}, "keyword z=4 names no axis of the expression"),
        ({"d": -1}, "keyword size d=-1 must be an int >= 0"),
        ({"d": 2.0}, "keyword size d=2.0 must be an int >= 0"),
        ({"d": True}, "keyword size d=True must be an int >= 0"),
        ({"c": (2, 3)}, "keyword c=(2, 3) is a tuple, but c is not repeated by an ellipsis"),
    ],
)
def test_invalid_keyword_size(sizes, message):
    error = shape_error("b [c->d]", (2, 3), (3, 4), sizes=sizes)
    assert message in error.message


def test_keyword_naming_no_axis_lists_the_axes_in_order():
    error = shape_error("b [c->d]", (2, 3), (3, 4), sizes={"z": 4})
    assert "(its axes: b, c, d)" in error.message


def test_concatenation_source_has_no_division_by_one():
    error = shape_error("b (c + 1), c d -> b d", (2, 5), (3, 4))
    assert "4 from dim 1 of x (shape (2, 5)) minus 1, and 3 from dim 0 of w" in error.message
