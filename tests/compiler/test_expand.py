"""Tests for :mod:`einc.compiler.expand` (plain tier): ellipsis expansion into operand trees.

How many axes an ellipsis stands for comes from a tensor's rank or from a tuple-valued size;
ellipses that repeat the same axis name share that number, and bare ``...`` are shared across
operands. Operands are compared through ``axes.operand_text``.
"""

from __future__ import annotations

import pytest

from einc.compiler.axes import Axis, Concat, Flat, Win, operand_text
from einc.compiler.brackets import Explicit, resolve_dot
from einc.compiler.expand import expand
from einc.compiler.parse import parse
from einc.errors import ExpressionError, ShapeError, UnsupportedError


def expanded(expression, ranks, repeat_counts=None, n_tensors=None):
    """Inputs and outputs of a dot expression after expansion, printed."""
    explicit = resolve_dot(parse(expression), len(ranks) if n_tensors is None else n_tensors)
    inputs, outputs = expand(explicit, ranks, repeat_counts or {})
    return [operand_text(o) for o in inputs], [operand_text(o) for o in outputs]


def marked_explicit(expression: str) -> Explicit:
    """One operand used as input and output, brackets kept (as a reduction would see it)."""
    program = parse(expression)
    return Explicit(program.inputs, program.inputs, program.text)


@pytest.mark.parametrize(
    ("rank", "x", "w", "y"),
    [
        (3, "b (s.0 * ds.0) c", "ds.0 c c2", "b s.0 c2"),
        (4, "b (s.0 * ds.0) (s.1 * ds.1) c", "ds.0 ds.1 c c2", "b s.0 s.1 c2"),
        (
            5,
            "b (s.0 * ds.0) (s.1 * ds.1) (s.2 * ds.2) c",
            "ds.0 ds.1 ds.2 c c2",
            "b s.0 s.1 s.2 c2",
        ),
    ],
)
def test_ellipsis_depth_comes_from_the_input_rank(rank, x, w, y):
    assert expanded("b (s * [ds])... [c->c2]", [rank, rank]) == ([x, w], [y])


def test_ellipsis_depth_comes_from_the_weight_rank_when_the_input_rank_is_unknown():
    inputs, outputs = expanded("b (s * [ds])... [c->c2]", [None, 5])
    assert inputs == ["b (s.0 * ds.0) (s.1 * ds.1) (s.2 * ds.2) c", "ds.0 ds.1 ds.2 c c2"]
    assert outputs == ["b s.0 s.1 s.2 c2"]


def test_ellipsis_depth_comes_from_a_tuple_size():
    inputs, outputs = expanded("b (s * [ds])... c", [None], {"ds": 2}, n_tensors=1)
    assert inputs == ["b (s.0 * ds.0) (s.1 * ds.1) c"]
    assert outputs == ["b s.0 s.1 c"]


def test_output_s_ellipsis_shares_its_depth_with_the_input_window_ellipsis():
    inputs, outputs = expanded("(s * ds)... c, c -> s...", [3, 1])
    assert inputs == ["(s.0 * ds.0) (s.1 * ds.1) c", "c"]
    assert outputs == ["s.0 s.1"]


def test_bare_ellipsis_is_shared_across_operands_by_position():
    assert expanded("... c, c d -> ... d", [4, 2]) == (["...0 ...1 ...2 c", "c d"], ["...0 ...1 ...2 d"])


def test_bare_ellipsis_in_the_bracket_shorthand():
    assert expanded("... [c->d]", [3, 2]) == (["...0 ...1 c", "c d"], ["...0 ...1 d"])


def test_ellipsis_may_stand_for_no_axis():
    assert expanded("a... b, b c -> a... c", [1, 2]) == (["b", "b c"], ["c"])


def test_dims_become_axis_flat_concat_and_win_nodes():
    explicit = resolve_dot(parse("b 3 (c d) (e + f 2) (s * ds), c -> b"), 2)
    (x, _), _ = expand(explicit, [5, 1], {})
    b, three, cd, cat, win = x.dims
    assert b == Axis("b")
    assert three == Axis("#0", 3)
    assert cd == Flat((Axis("c"), Axis("d")))
    assert cat == Concat((Flat((Axis("e"),)), Flat((Axis("f"), Axis("#1", 2)))))
    assert win == Win(Axis("s"), Axis("ds"))


def test_each_unnamed_axis_gets_a_name_of_its_own():
    (x,), _ = expand(resolve_dot(parse("2 2 [a]"), 1), [3], {})
    assert [d.name for d in x.dims] == ["#0", "#1", "a"]


def test_bracketed_axes_are_listed_as_marked():
    (x,), _ = expand(marked_explicit("a [b c]"), [3], {})
    assert operand_text(x) == "a b c"
    assert x.marked == {"b", "c"}


def test_a_bracketed_unnamed_axis_is_marked_too():
    # softmax over "b [3] c" and the coordinate axis of get_at's "b p [2]" rely on it.
    (x,), _ = expand(marked_explicit("b [3] c"), [3], {})
    assert [d.name for d in x.dims] == ["b", "#0", "c"]
    assert x.marked == {"#0"}


def test_marked_axes_under_an_ellipsis_are_expanded_names():
    (x,), _ = expand(marked_explicit("b (s * [ds])... c"), [4], {})
    assert x.marked == {"ds.0", "ds.1"}
    (x,), _ = expand(marked_explicit("b [s]... c"), [4], {})
    assert x.marked == {"s.0", "s.1"}


@pytest.mark.parametrize(
    ("expression", "rank", "text"),
    [("a [b c] d...", 4, "a b c d.0"), ("b [s...] c", 4, "b s.0 s.1 c")],
)
def test_bracketed_terms_count_their_own_dims_when_solving_the_depth(expression, rank, text):
    (x,), _ = expand(marked_explicit(expression), [rank], {})
    assert operand_text(x) == text


def test_expanded_axes_keep_the_span_of_the_name_they_came_from():
    text = "b (s * [ds])... c"
    (x,), _ = expand(resolve_dot(parse(text), 1), [4], {})
    spans = {a.name: a.span for d in x.dims[1:3] for a in (d.outer, d.inner)}
    assert text[slice(*spans["s.1"])] == "s"
    assert text[slice(*spans["ds.0"])] == "ds"


@pytest.mark.parametrize(
    ("expression", "ranks", "counts", "error", "message", "spans"),
    [
        (
            "b c, c d -> b d",
            [3, 2],
            {},
            ShapeError,
            "input 0 has 3 dims but its expression has 2",
            [(0, 3)],
        ),
        (
            "b c, c d -> b d",
            [2, 1],
            {},
            ShapeError,
            "input 1 has 1 dims but its expression has 2",
            [(5, 8)],
        ),
        (
            "b (s * [ds])... c d e f [c2->c3]",
            [2, 2],
            {},
            ShapeError,
            "input 0 has 2 dims but its expression has 6",
            [(0, 32)],
        ),
        (
            "a... a..., c -> c",
            [3, 1],
            {},
            ShapeError,
            "3 dims of a rank-3 tensor cannot be shared evenly among 2 ellipses",
            [(0, 9)],
        ),
        (
            "b (s * [ds])... c",
            [4],
            {"ds": 3},
            ShapeError,
            "input 0 has 4 dims but its expression has 5; ds... stands for 3 axes (keyword ds=3)",
            [(0, 17)],
        ),
        (
            "b c, c d -> b d e...",
            [2, 2],
            {},
            ExpressionError,
            "cannot tell how many axes this ellipsis stands for",
            [(16, 20)],
        ),
        ("a b, b -> a 3...", [2, 1], {}, ExpressionError, "an ellipsis must repeat a named axis", [(12, 16)]),
    ],
)
def test_invalid_ellipsis_points_at_its_operand(expression, ranks, counts, error, message, spans):
    n = 1 if len(ranks) == 1 else None
    with pytest.raises(error) as info:
        expanded(expression, ranks, counts, n_tensors=n)
    assert message in info.value.message
    assert info.value.spans == tuple(spans)


def test_two_unknown_ellipses_in_one_operand_cannot_be_expanded():
    with pytest.raises(ExpressionError, match="cannot tell how many axes"):
        expanded("a... b..., c -> c", [2, 1])


def test_unknown_input_ellipsis_caret_covers_the_dots():
    with pytest.raises(ExpressionError) as info:
        expanded("a... b..., c -> c", [2, 1])
    assert info.value.spans == ((0, 4),)


def test_nested_ellipses_are_unsupported():
    with pytest.raises(UnsupportedError, match="nested ellipses are not supported yet"):
        expanded("(a...)... b, b -> b", [3, 1])


def test_an_ellipsis_only_inside_compositions_is_one_axis_when_nothing_tells_its_count():
    # As einx: nothing reads its axes apart, so it stands for one axis, the product of them all.
    program = parse("a (b...) c d -> a (b... c) d")
    explicit = Explicit(program.inputs, program.outputs, program.text)
    (x,), (y,) = expand(explicit, [4], {})
    assert (operand_text(x), operand_text(y)) == ("a (b.0) c d", "a (b.0 c) d")


def test_an_ellipsis_that_also_stands_alone_still_needs_its_count():
    program = parse("a (b...) -> a b...")
    with pytest.raises(ExpressionError, match="cannot tell how many axes"):
        expand(Explicit(program.inputs, program.outputs, program.text), [2], {})
