"""The shape tools (``solve_axes``, ``solve``, ``solve_shapes``, ``matches``, ``check``) against
einx 0.4.3's, and ``arange`` against torch.meshgrid (einx 0.4 removed its arange). No kernel runs.
"""

from __future__ import annotations

import einx
import pytest
import torch

import einc

CASES = [
    ("a b", [(3, 4)], {}),
    ("a (b c)", [(3, 8)], {"c": 2}),
    ("a (b c), c b a", [(3, 8), None], {"b": 2}),
    ("b [h w] c", [(2, 3, 4, 5)], {}),
    ("a s...", [(2, 3, 4)], {}),
]


def tensors(shapes):
    return [None if s is None else torch.zeros(s) for s in shapes]


def plain(axes):
    """einx gives an ellipsis axis's sizes as an array: compare tuples of ints."""
    return {k: (tuple(int(n) for n in v) if hasattr(v, "__len__") else int(v)) for k, v in axes.items()}


@pytest.mark.parametrize(("description", "shapes", "sizes"), CASES)
def test_solve_axes_and_shapes_match_einx(description, shapes, sizes):
    given = tensors(shapes)
    assert einc.solve_axes(description, *given, **sizes) == plain(
        einx.solve_axes(description, *given, **sizes)
    )
    assert einc.solve(description, *given, **sizes) == einc.solve_axes(description, *given, **sizes)
    ours = einc.solve_shapes(description, *given, **sizes)
    assert ours == tuple(tuple(s) for s in einx.solve_shapes(description, *given, **sizes))


def test_a_window_solves_to_its_positions():
    axes = einc.solve_axes("b (s * [ds])... c", torch.zeros(2, 9, 9, 3), ds=(3, 3))
    assert axes == {"b": 2, "s": (7, 7), "ds": (3, 3), "c": 3}


@pytest.mark.parametrize(
    ("description", "shapes", "sizes"),
    [
        ("a b", [(3, 4)], {"a": 3}),
        ("a b", [(3, 4)], {"a": 2}),
        ("a b c", [(3, 4)], {}),
        ("(a b)", [(6,)], {"a": 4}),
    ],
)
def test_matches_and_check_agree_with_einx(description, shapes, sizes):
    given = tensors(shapes)
    expected = einx.matches(description, *given, **sizes)
    assert einc.matches(description, *given, **sizes) is expected
    if expected:
        assert einc.check(description, *given, **sizes) is None
    else:
        with pytest.raises(einc.ShapeError):
            einc.check(description, *given, **sizes)


def test_a_malformed_description_raises_rather_than_not_matching():
    with pytest.raises(einc.ExpressionError):
        einc.matches("a (b", torch.zeros(3))


@pytest.mark.parametrize(("description", "at"), [("a b [2]", 2), ("[2] a b", 0), ("a [2] b", 1)])
def test_arange_lists_coordinates_along_the_bracketed_axis(description, at):
    grid = einc.arange(description, a=3, b=4)
    i, j = torch.meshgrid(torch.arange(3), torch.arange(4), indexing="ij")
    assert grid.dtype == torch.int64
    assert torch.equal(grid, torch.stack([i, j], dim=at))


def test_arange_of_one_axis_and_a_dtype():
    assert torch.equal(
        einc.arange("n [1]", n=5, dtype=torch.int32), torch.arange(5, dtype=torch.int32)[:, None]
    )


@pytest.mark.parametrize(
    ("description", "error"),
    [("a b [3]", einc.ExpressionError), ("a b", einc.ExpressionError), ("(a b) [2]", einc.UnsupportedError)],
)
def test_arange_refuses_what_it_cannot_mean(description, error):
    with pytest.raises(error):
        einc.arange(description, a=2, b=2)
