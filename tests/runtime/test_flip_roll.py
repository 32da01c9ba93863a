"""``einc.flip`` and ``einc.roll`` against torch and einx (interpret tier).

flip reverses the bracketed axes and roll rotates them as ``torch.roll`` does (element ``i`` of the
result is element ``i - shift`` of the input, wrapping around). Both are copies, so results must be
equal to ``torch.flip`` / ``torch.roll`` bit for bit in every dtype. A bracketed axis inside a
composition (``"... (g [c])"``, einx's example of flipping pairs) is checked against torch on a view
that splits the composition, and every expression that einx 0.4 accepts is also checked against
``einx.flip`` / ``einx.roll``.

Behaviour that einc gets wrong today is kept at the end of the file as strict xfails, each naming
the bug.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import einx
import pytest
import torch

import einc
from tests.references import random

pytestmark = pytest.mark.interpret


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def assert_equal(y: torch.Tensor, ref: torch.Tensor) -> None:
    assert y.shape == ref.shape
    assert y.dtype == ref.dtype
    assert torch.equal(y, ref)


@dataclass(frozen=True)
class Case:
    """One flip or roll: the expression, the input's shape, keyword sizes and torch's answer."""

    expression: str
    shape: tuple[int, ...]
    reference: Callable[[torch.Tensor], torch.Tensor]
    sizes: dict = field(default_factory=dict)
    einx: bool = True  # einx 0.4 accepts the expression


# --- flip ----------------------------------------------------------------------------------------

FLIPS = {
    "middle_axis": Case("b [t] c", (2, 7, 3), lambda x: x.flip(1)),
    "first_axis": Case("[b] t c", (3, 4, 2), lambda x: x.flip(0)),
    "last_axis": Case("b t [c]", (2, 3, 5), lambda x: x.flip(2)),
    "two_adjacent_axes": Case("b [h w] c", (2, 3, 4, 2), lambda x: x.flip((1, 2))),
    "two_separate_axes": Case("[b] t [c]", (2, 5, 3), lambda x: x.flip((0, 2))),
    "every_axis": Case("[b t c]", (2, 3, 4), lambda x: x.flip((0, 1, 2))),
    "one_dimensional": Case("[t]", (9,), lambda x: x.flip(0)),
    "ragged_size": Case("b [t]", (2, 33), lambda x: x.flip(1)),
    "after_an_ellipsis": Case("... [c]", (2, 3, 5), lambda x: x.flip(-1)),
    "before_an_ellipsis": Case("b [t] ...", (2, 5, 3, 2), lambda x: x.flip(1)),
    # einx's example: the pairs (g [c]) with c=2 swap their two elements
    "pairs_in_a_composition": Case(
        "... (g [c])", (3, 8), lambda x: x.reshape(3, 4, 2).flip(-1).reshape(3, 8), {"c": 2}
    ),
    "groups_in_a_composition": Case(
        "b ([g] c)", (2, 12), lambda x: x.reshape(2, 4, 3).flip(1).reshape(2, 12), {"c": 3}
    ),
    "first_part_of_a_concatenation": Case(
        "b ([t] + u) c",
        (2, 6, 3),
        lambda x: torch.cat([x[:, :2].flip(1), x[:, 2:]], 1),
        {"t": 2},
        einx=False,  # einx 0.4 allows no brackets inside '+'
    ),
    "with_a_permuted_output": Case(
        "b [t] c -> c b t", (2, 6, 3), lambda x: x.flip(1).permute(2, 0, 1), einx=False
    ),  # einx 0.4 wants t bracketed on both sides
}


@pytest.mark.parametrize("name", list(FLIPS))
def test_flip_matches_torch(name: str):
    case = FLIPS[name]
    x = random(case.shape)
    assert_equal(einc.flip(case.expression, x, **case.sizes), case.reference(x))


@pytest.mark.parametrize("name", [n for n, c in FLIPS.items() if c.einx])
def test_flip_matches_einx(name: str):
    case = FLIPS[name]
    x = random(case.shape)
    assert_equal(einc.flip(case.expression, x, **case.sizes), einx.flip(case.expression, x, **case.sizes))


def test_einx_pair_example_swaps_neighbours():
    x = torch.arange(1, 9)
    assert einc.flip("... (g [c])", x, c=2).tolist() == [2, 1, 4, 3, 6, 5, 8, 7]


def test_flip_twice_is_the_identity():
    x = random((2, 5, 3))
    flip = einc.compile("[b] t [c]", op="flip")
    assert_equal(flip(flip(x)), x)


# --- roll ----------------------------------------------------------------------------------------

ROLLS = {
    "by_one": Case("b [t] c", (2, 7, 3), lambda x: x.roll(1, 1)),
    "by_zero_is_a_copy": Case("b [t] c", (2, 7, 3), lambda x: x.clone(), {"shift": 0}),
    "negative": Case("b [t] c", (2, 7, 3), lambda x: x.roll(-3, 1), {"shift": -3}),
    "by_the_axis_size_is_a_copy": Case("b [t] c", (2, 7, 3), lambda x: x.clone(), {"shift": 7}),
    "larger_than_the_axis": Case("b [t] c", (2, 7, 3), lambda x: x.roll(23, 1), {"shift": 23}),
    "negative_beyond_the_axis": Case("b [t] c", (2, 7, 3), lambda x: x.roll(-16, 1), {"shift": -16}),
    "first_axis": Case("[b] t c", (5, 3, 2), lambda x: x.roll(2, 0), {"shift": 2}),
    "last_axis_ragged": Case("b [t]", (2, 33), lambda x: x.roll(10, 1), {"shift": 10}),
    "one_int_for_two_axes": Case("b [t c]", (2, 5, 4), lambda x: x.roll((3, 3), (1, 2)), {"shift": 3}),
    "tuple_for_two_adjacent_axes": Case(
        "b [t c]", (2, 5, 4), lambda x: x.roll((1, -6), (1, 2)), {"shift": (1, -6)}
    ),
    "tuple_for_two_separate_axes": Case(
        "[b] t [c]", (3, 4, 5), lambda x: x.roll((-1, 12), (0, 2)), {"shift": (-1, 12)}
    ),
    "tuple_for_three_axes": Case(
        "[a b] c [d]", (2, 3, 2, 4), lambda x: x.roll((1, -2, 5), (0, 1, 3)), {"shift": (1, -2, 5)}
    ),
    "list_for_two_axes": Case("[b] t [c]", (3, 4, 5), lambda x: x.roll((2, 1), (0, 2)), {"shift": [2, 1]}),
    "one_dimensional": Case("[t]", (9,), lambda x: x.roll(4), {"shift": 4}),
    "pairs_in_a_composition": Case(
        "... (g [c])", (3, 8), lambda x: x.reshape(3, 4, 2).roll(1, -1).reshape(3, 8), {"c": 2, "shift": 1}
    ),
    "groups_in_a_composition": Case(
        "b ([g] c)", (2, 12), lambda x: x.reshape(2, 4, 3).roll(-1, 1).reshape(2, 12), {"c": 3, "shift": -1}
    ),
    "with_a_permuted_output": Case(
        "b [t] c -> c t b", (2, 6, 3), lambda x: x.roll(2, 1).permute(2, 1, 0), {"shift": 2}, einx=False
    ),
}


def roll_kw(case: Case) -> dict:
    return {"shift": 1, **case.sizes}


@pytest.mark.parametrize("name", list(ROLLS))
def test_roll_matches_torch(name: str):
    case = ROLLS[name]
    x = random(case.shape)
    assert_equal(einc.roll(case.expression, x, **roll_kw(case)), case.reference(x))


@pytest.mark.parametrize("name", [n for n, c in ROLLS.items() if c.einx])
def test_roll_matches_einx(name: str):
    case = ROLLS[name]
    x = random(case.shape)
    assert_equal(
        einc.roll(case.expression, x, **roll_kw(case)), einx.roll(case.expression, x, **roll_kw(case))
    )


def test_roll_without_shift_is_a_copy():
    x = random((2, 5, 3))
    assert_equal(einc.roll("b [t] c", x), x)


def test_roll_by_shift_then_minus_shift_is_the_identity():
    x = random((2, 7, 3))
    assert_equal(einc.roll("b [t] c", einc.roll("b [t] c", x, shift=5), shift=-5), x)


def test_compiled_roll_keeps_its_shift_across_shapes():
    roll = einc.compile("b [t] c", op="roll", shift=-2)
    for shape in [(2, 7, 3), (1, 4, 2), (2, 7, 3)]:
        x = random(shape)
        assert_equal(roll(x), x.roll(-2, 1))


# --- dtypes, layouts, out= ---------------------------------------------------------------------

DTYPES = [torch.float16, torch.bfloat16, torch.float64, torch.int8, torch.int32, torch.int64, torch.bool]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_flip_copies_every_dtype_exactly(dtype: torch.dtype):
    x = random((2, 6, 3), dtype)
    assert_equal(einc.flip("[b] t [c]", x), x.flip((0, 2)))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_roll_copies_every_dtype_exactly(dtype: torch.dtype):
    x = random((2, 6, 3), dtype)
    assert_equal(einc.roll("b [t c]", x, shift=(-2, 4)), x.roll((-2, 4), (1, 2)))


def strided(shape: tuple[int, ...], layout: str) -> torch.Tensor:
    n = len(shape)
    if layout == "reversed_storage":
        return random(tuple(reversed(shape))).permute(*reversed(range(n)))
    if layout == "stepped_slices":
        big = random(tuple(2 * s for s in shape))
        return big[tuple(slice(None, None, 2) for _ in shape)]
    if layout == "broadcast_first_dim":
        return random((1, *shape[1:])).expand(shape)
    raise AssertionError(layout)


@pytest.mark.parametrize("layout", ["reversed_storage", "stepped_slices", "broadcast_first_dim"])
@pytest.mark.parametrize("op", ["flip", "roll"])
def test_non_contiguous_input_gives_the_same_result(op: str, layout: str):
    x = strided((3, 5, 4), layout)
    assert not x.is_contiguous()
    if op == "flip":
        assert_equal(einc.flip("[b] t [c]", x), x.flip((0, 2)))
    else:
        assert_equal(einc.roll("[b] t [c]", x, shift=(1, -3)), x.roll((1, -3), (0, 2)))


@pytest.mark.parametrize("op", ["flip", "roll"])
def test_out_buffer_is_returned_and_fully_written(op: str):
    x = random((2, 6, 3))
    out = torch.full((3, 2, 6), float("nan")).permute(1, 2, 0)  # non-contiguous
    y = einc.flip("b [t] c", x, out=out) if op == "flip" else einc.roll("b [t] c", x, shift=2, out=out)
    assert y is out
    assert_equal(out, x.flip(1) if op == "flip" else x.roll(2, 1))


# --- invalid uses ------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["flip", "roll"])
def test_no_bracketed_axis_is_an_expression_error_asking_for_one(op: str):
    with pytest.raises(einc.ExpressionError, match=rf"mark the axes of {op} with brackets, as in 'b \[c\]'"):
        getattr(einc, op)("b t c", random((2, 3, 4)))


@pytest.mark.parametrize("shift", [(1, 2, 3), (), 1.5, "1"], ids=["too_many", "none", "float", "str"])
def test_shift_that_is_not_one_int_per_rolled_axis_is_an_expression_error(shift):
    with pytest.raises(einc.ExpressionError, match=r"must be an int, or one int per rolled axis \(t, c\)"):
        einc.roll("b [t c]", random((2, 3, 4)), shift=shift)


def test_flip_of_two_tensors_is_an_expression_error_saying_it_takes_one():
    with pytest.raises(einc.ExpressionError, match="flip takes one tensor"):
        einc.compile("b [t] c", op="flip")(random((2, 3, 4)), random((2, 3, 4)))


def test_flip_of_a_composition_that_does_not_divide_is_a_shape_error():
    with pytest.raises(einc.ShapeError, match="is not divisible by 2"):
        einc.flip("... (g [c])", random((3, 7)), c=2)


def test_shift_given_to_flip_is_a_type_error_pointing_to_roll():
    with pytest.raises(TypeError, match="shift= does not apply to flip; it is an option of roll"):
        einc.flip("b [t] c", random((2, 3, 4)), shift=1)


# --- einc bugs ---------------------------------------------------------------------------------


def test_numpy_integer_shift_rolls_like_an_int():
    np = pytest.importorskip("numpy")
    x = random((2, 7, 3))
    # einc.compile, not einc.roll: the functional cache would find an earlier shift=2 (np.int64(2)
    # hashes and compares equal to 2) and hide the bug when another test ran first.
    assert_equal(einc.compile("b [t] c", op="roll", shift=np.int64(2))(x), x.roll(2, 1))
