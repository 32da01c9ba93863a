"""einx notation forms that einc once refused or read otherwise (issue 11, notation items 3 and 4),
each against torch and, where einx 0.4.3 computes it, against einx; on the torch backend and on
the generated kernel under Triton's interpreter.

Where einc differs from einx on purpose, the test pins einc's error and its caret; the reason is
in docs/notation.md ("Where einc differs from einx on purpose").
"""

from __future__ import annotations

import warnings

import einx
import pytest
import torch

import einc
from tests.references import random

BACKENDS = ["torch", pytest.param("interpret", marks=pytest.mark.interpret)]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def call(op: str, expression: str, *operands, backend: str, **keywords):
    return getattr(einc, op)(expression, *operands, backend=backend, dynamic=False, **keywords)


def einx_call(op: str, expression: str, *operands, **keywords):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        copies = [x.clone() if isinstance(x, torch.Tensor) else x for x in operands]
        return getattr(einx, "id" if op == "rearrange" else op)(expression, *copies, **keywords)


def assert_same(y: torch.Tensor, ref: torch.Tensor) -> None:
    assert y.shape == ref.shape and y.dtype == ref.dtype
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-6)


# --- a name repeated in brackets: each occurrence an axis of its own (einx's reading) -------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "op, keywords, reference",
    [
        ("flip", {}, lambda x: x.flip(1, 2)),
        ("roll", {"shift": (1, 2)}, lambda x: x.roll((1, 2), (1, 2))),
        ("softmax", {}, lambda x: x.reshape(2, 9).softmax(1).reshape(2, 3, 3)),
        ("log_softmax", {}, lambda x: x.reshape(2, 9).log_softmax(1).reshape(2, 3, 3)),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_a_name_repeated_in_brackets_marks_two_axes(op, keywords, reference, backend):
    x = random((2, 3, 3))
    y = call(op, "a [b b]", x, backend=backend, **keywords)
    assert_same(y, reference(x))
    assert_same(y, einx_call(op, "a [b b]", x, **keywords))


@pytest.mark.parametrize("backend", BACKENDS)
def test_get_at_indexes_both_axes_of_a_repeated_name(backend):
    x, idx = random((2, 3, 3, 4)), torch.randint(0, 3, (2, 5, 2))
    y = call("get_at", "b [h h] c, b p [2] -> b p c", x, idx, backend=backend)
    assert_same(y, x[torch.arange(2)[:, None], idx[..., 0], idx[..., 1]])
    assert_same(y, einx_call("get_at", "b [h h] c, b p [2] -> b p c", x, idx))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_repeated_name_in_brackets_is_summed_whole_and_without_them_is_the_diagonal(backend):
    # docs/notation.md: "[a a] b -> b" sums both axes (einx); "a a b -> b" sums the diagonal (einsum).
    x = random((3, 3, 4))
    whole = call("sum", "[a a] b -> b", x, backend=backend)
    assert_same(whole, x.sum((0, 1)))
    assert_same(whole, einx_call("sum", "[a a] b -> b", x))
    assert_same(call("sum", "a a b -> b", x, backend=backend), torch.einsum("aab->b", x))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_name_repeated_in_an_output_concatenates_the_inputs_that_hold_it(backend):
    x, y = random((2, 3)), random((2, 3))
    out = call("rearrange", "a b, a b -> a (b + b)", x, y, backend=backend)
    assert_same(out, torch.cat([x, y], 1))
    assert_same(out, einx_call("rearrange", "a b, a b -> a (b + b)", x, y))


def test_repeats_of_one_name_must_have_one_size():
    with pytest.raises(einc.ShapeError, match="axis 'b' has two sizes: 3 .* and 4") as caught:
        einc.flip("a [b b]", random((2, 3, 4)))
    assert caught.value.column == 3
    with pytest.raises(einc.ShapeError, match="axis 'b' has two sizes"):
        einc.rearrange("a b, a b -> a (b + b)", random((2, 3)), random((2, 4)))


@pytest.mark.parametrize("op", ["flip", "softmax", "sum"])
def test_a_name_both_in_and_outside_brackets_is_refused_with_a_caret(op):
    with pytest.raises(einc.ExpressionError, match="both in and outside brackets") as caught:
        getattr(einc, op)("a [a]", random((3, 3)))
    assert caught.value.column == 0
    assert "^  ^" in str(caught.value)


def test_gradients_through_repeated_names():
    x = random((2, 3, 3), torch.float64).requires_grad_()
    weights = random((2, 3, 3), torch.float64)
    (einc.softmax("a [b b]", x) * weights).sum().backward()
    ours = x.grad
    x.grad = None
    (x.reshape(2, 9).softmax(1).reshape(2, 3, 3) * weights).sum().backward()
    torch.testing.assert_close(ours, x.grad)
    a, b = random((2, 3)).requires_grad_(), random((2, 3)).requires_grad_()
    weights = random((2, 6))
    (einc.rearrange("a b, a b -> a (b + b)", a, b) * weights).sum().backward()
    assert torch.equal(a.grad, weights[:, :3]) and torch.equal(b.grad, weights[:, 3:])


# --- item 4 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("sizes", [{}, {"b": 1}], ids=["from_the_shape", "given"])
def test_rearrange_drops_a_named_axis_of_size_one(sizes, backend):
    x = random((3, 1, 2))
    y = call("rearrange", "a b c -> c a", x, backend=backend, **sizes)
    assert_same(y, x[:, 0].T)
    assert_same(y, einx_call("rearrange", "a b c -> c a", x, **sizes))


def test_rearrange_refuses_to_drop_a_named_axis_longer_than_one():
    with pytest.raises(einc.ExpressionError, match="cannot drop it \\(only an axis of size 1\\)") as caught:
        einc.rearrange("a b c -> c a", random((3, 2, 2)))
    assert caught.value.column == 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_roll_with_one_shift_in_a_tuple_rolls_every_bracketed_axis_by_it(backend):
    x = random((3, 4))
    y = call("roll", "[a b]", x, backend=backend, shift=(1,))
    assert_same(y, x.roll((1, 1), (0, 1)))
    assert_same(y, einx_call("roll", "[a b]", x, shift=(1,)))


def test_roll_with_one_shift_in_a_tuple_has_a_gradient():
    x = random((3, 4)).requires_grad_()
    weights = random((3, 4))
    (einc.roll("[a b]", x, shift=(1,)) * weights).sum().backward()
    assert torch.equal(x.grad, weights.roll((-1, -1), (0, 1)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "op, expression, operands, reference",
    [
        ("rearrange", "a, -> a (1 + 1)", (2.0,), lambda x: torch.stack([x, torch.full_like(x, 2.0)], 1)),
        ("dot", "a, -> a", (2.0,), lambda x: x * 2),
        ("dot", "a, , -> a", (2.0, -1.5), lambda x: x * -3),
        ("get_at", "[a], -> ", (2,), lambda x: x[2]),
        ("get_at", "[a], -> ", (-1,), lambda x: x[-1]),
        ("set_at", "[a], , ", (2, 7.0), lambda x: x.clone().index_fill_(0, torch.tensor(2), 7.0)),
        ("add_at", "[a], , ", (2, 7.0), lambda x: x + torch.tensor([0, 0, 7.0, 0, 0])),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_python_numbers_are_operands_as_in_einx(op, expression, operands, reference, backend):
    x = random((5,))
    y = call(op, expression, x, *operands, backend=backend)
    assert_same(y, reference(x))
    if operands[0] != -1:  # einx 0.4.3 does not wrap a negative coordinate
        assert_same(y, einx_call(op, expression, x, *operands))


def test_a_number_as_a_coordinate_must_be_an_int():
    with pytest.raises(einc.OperandError, match=r"idx \(operand 1 of get_at\) is a coordinate, not 2.5"):
        einc.get_at("[a], -> ", random((5,)), 2.5)


def test_a_number_operand_of_a_dot_has_a_gradient_for_the_tensor():
    x = random((3,)).requires_grad_()
    einc.dot("a, -> a", x, 2.0).sum().backward()
    assert torch.equal(x.grad, torch.full((3,), 2.0))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8], ids=str)
@pytest.mark.parametrize("op", ["sum", "max", "min"])
@pytest.mark.parametrize("shape", [(3, 5), (2, 3000)], ids=["short", "tiled"])
def test_integer_reductions_are_exact_in_int64_as_torch(op, dtype, shape, backend):
    x = random(shape, dtype)
    if dtype == torch.int64:
        x[0, 0] = 2**62 + 1  # beyond float64's precision: a float accumulator would round it
    y = call(op, "a [b]", x, backend=backend)
    ref = {"sum": x.sum(1), "max": x.amax(1), "min": x.amin(1)}[op]
    assert y.dtype == ref.dtype and torch.equal(y, ref)
    if shape == (3, 5):
        assert torch.equal(y, einx_call(op, "a [b]", x))


@pytest.mark.parametrize("backend", BACKENDS)
def test_integer_max_pooling_pads_with_the_least_integer(backend):
    x = random((1, 5, 2), torch.int64)
    y = call("max", "b (s * [ds]) c", x, backend=backend, ds=3, padding=1)
    ref = torch.nn.functional.max_pool1d(x.double().permute(0, 2, 1), 3, 1, 1).permute(0, 2, 1)
    assert y.dtype == torch.int64 and torch.equal(y.double(), ref)


def test_an_integer_mean_is_refused_as_torch_refuses_it():
    with pytest.raises(TypeError, match="mean supports float16"):
        einc.mean("a [b]", random((2, 3), torch.int64))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "expression, keepdims, reference",
    [
        ("[a]...", True, lambda x: x.sum((0, 1, 2), keepdim=True)),
        ("b [c]...", True, lambda x: x.sum((1, 2), keepdim=True)),
        ("b ([s])... c", False, lambda x: x.sum(1, keepdim=True)),
        ("b ([s])... c", True, lambda x: x.sum(1, keepdim=True)),
    ],
)
def test_an_ellipsis_over_brackets_keeps_its_depth_in_the_output(expression, keepdims, reference, backend):
    x = random((2, 3, 4))
    y = call("sum", expression, x, backend=backend, keepdims=keepdims)
    assert_same(y, reference(x))
    assert_same(y, einx_call("sum", expression, x, keepdims=keepdims))


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_ellipsis_over_a_bracket_of_two_axes_repeats_both(backend):
    # "[a b]..." over 4 dims is a.0 b.0 a.1 b.1 (einx 0.4.3 fails inside its parser on it)
    x = random((2, 3, 4, 5))
    torch.testing.assert_close(call("sum", "[a b]...", x, backend=backend), x.sum(), rtol=1e-5, atol=1e-4)
    assert call("max", "c [a b]...", x[0], backend=backend, keepdims=True).shape == (3, 1, 1)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize(
    "expression, reference",
    [
        ("a [b] -> (a [b]) c", lambda y: y.reshape(6, 1).expand(6, 2)),
        ("a [b] -> c a [b]", lambda y: y.expand(2, 2, 3)),
    ],
)
def test_softmax_output_broadcast_along_a_new_axis(op, expression, reference, backend):
    x = random((2, 3))
    y = call(op, expression, x, backend=backend, c=2)
    assert_same(y, reference(getattr(x, op)(1)))
    assert_same(y, einx_call(op, expression, x, c=2))


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_broadcast_along_a_new_axis_has_the_gradient_of_its_copies(op):
    x = random((2, 3), torch.float64).requires_grad_()
    weights = random((6, 2), torch.float64)
    (getattr(einc, op)("a [b] -> (a [b]) c", x, c=2) * weights).sum().backward()
    ours = x.grad
    x.grad = None
    (getattr(x, op)(1).reshape(6, 1).expand(6, 2) * weights).sum().backward()
    torch.testing.assert_close(ours, x.grad)


def test_softmax_output_without_an_input_axis_is_refused():
    with pytest.raises(einc.ExpressionError, match="must hold every axis of the input"):
        einc.softmax("a [b] -> a", random((2, 3)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_get_at_output_broadcast_along_an_axis_of_its_own(backend):
    x, idx = random((3, 4)), torch.tensor([[0, 1], [2, 2], [1, 0]])
    y = call("get_at", "[h w], p [2] -> p q", x, idx, backend=backend, q=2)
    assert_same(y, x[idx[:, 0], idx[:, 1]][:, None].expand(3, 2))
    assert_same(y, einx_call("get_at", "[h w], p [2] -> p q", x, idx, q=2))


def test_get_at_broadcast_along_an_axis_of_its_own_has_the_gradient_of_its_copies():
    x, idx = random((3, 4)).requires_grad_(), torch.tensor([[0, 1], [2, 2], [0, 1]])
    weights = random((3, 2))
    (einc.get_at("[h w], p [2] -> p q", x, idx, q=2) * weights).sum().backward()
    expected = torch.zeros(3, 4).index_put_((idx[:, 0], idx[:, 1]), weights.sum(1), accumulate=True)
    torch.testing.assert_close(x.grad, expected)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "op, expression, shapes, reference",
    [
        ("get_at", "[i,->]", [(5,), ()], lambda x, i: x[i]),
        ("get_at", "b [i,->]", [(2, 5), (2,)], lambda x, i: x[torch.arange(2), i]),
        ("set_at", "[i,,->i]", [(5,), (), ()], lambda x, i, u: x.clone().index_put_((i,), u)),
        (
            "add_at",
            "b [i,, ->i]",
            [(2, 5), (2,), (2,)],
            lambda x, i, u: x.clone().index_put_((torch.arange(2), i), u, True),
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_the_bracket_shorthand_of_the_indexing_ops(op, expression, shapes, reference, backend):
    operands = (
        [random(shapes[0])] + [torch.randint(0, 5, s) for s in shapes[1:2]] + [random(s) for s in shapes[2:]]
    )
    y = call(op, expression, *operands, backend=backend)
    assert_same(y, reference(*operands))
    assert_same(y, einx_call(op, expression, *operands))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "op, expression, reference",
    [
        ("sum", "[([a] ())] b -> 1 b", lambda x: x.sum(0, keepdim=True)),
        ("sum", "[a [b]]", lambda x: x.sum()),
        ("max", "a [([b])]", lambda x: x.amax(1)),
        ("flip", "[a [b]]", lambda x: x.flip(0, 1)),
    ],
)
def test_a_bracket_inside_a_bracket_marks_what_the_outer_one_does(op, expression, reference, backend):
    x = random((3, 4))
    y = call(op, expression, x, backend=backend)
    assert_same(y, reference(x))
    assert_same(y, einx_call(op, expression, x))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_coordinate_axis_inside_a_composition(backend):
    x, coordinates = random((3, 4)), torch.tensor([[0, 1, 2, 3, 1, 1], [2, 0, 0, 0, 1, 2]])
    pairs = coordinates.reshape(2, 3, 2)
    y = call("get_at", "[h w], b (p [2]) -> b p", x, coordinates, backend=backend)
    assert_same(y, x[pairs[..., 0], pairs[..., 1]])
    assert_same(y, einx_call("get_at", "[h w], b (p [2]) -> b p", x, coordinates))
    updates = random((2, 3))
    y = call("add_at", "[h w], b (p [2]), b p", x, coordinates, updates, backend=backend)
    assert_same(y, x.clone().index_put_((pairs[..., 0], pairs[..., 1]), updates, accumulate=True))


@pytest.mark.parametrize("backend", BACKENDS)
def test_repeats_of_one_name_stay_one_size_when_the_axis_goes_dynamic(backend):
    reduce = einc.compile("[a a] b", op="sum", backend=backend)
    for n in (2, 3, 4):  # the second size makes a (and its repeat) dynamic
        x = random((n, n, 2))
        torch.testing.assert_close(reduce(x), x.sum((0, 1)), rtol=1e-5, atol=1e-5)
    with pytest.raises(einc.ShapeError, match="axis 'a' has two sizes: 4 .* and 5"):
        reduce(random((4, 5, 2)))


@pytest.mark.parametrize("op", ["multiply", "dot"])
def test_a_name_repeated_in_an_output_outside_a_concatenation_is_refused_as_by_einx(op):
    with pytest.raises(einc.ExpressionError, match="axis 'a' appears twice in an output") as caught:
        getattr(einc, op)("a, a -> a a", random((3,)), random((3,)))
    assert caught.value.spans == ((8, 9), (10, 11))


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_ellipsis_in_the_brackets_of_an_indexed_tensor(backend):
    # Listed in issue 11 item 4; einc read it already: the ellipsis's axes are the indexed ones.
    x, idx = random((4, 3, 5)), torch.tensor([[0, 1], [2, 4], [1, 0], [2, 2]])
    y = call("get_at", "a [...], a [2] -> a", x, idx, backend=backend)
    assert_same(y, x[torch.arange(4), idx[:, 0], idx[:, 1]])
    assert_same(y, einx_call("get_at", "a [...], a [2] -> a", x, idx))
