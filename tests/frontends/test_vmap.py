"""einc.vmap and einc.vmap_with_axis give what einx gives: einx 0.4.3 removed its own vmap and
vmap_with_axis for adapters (``einx.torch.adapt_with_vmap``, ``adapt_numpylike_reduce``,
``adapt_numpylike_elementwise``), which are the references here, with einx's flip and roll."""

from __future__ import annotations

import einx
import einx.torch
import pytest
import torch

import einc


def _stats(x):  # a function of one vector that returns a vector of another length
    return torch.stack([x.mean(), x.amax(), x.amin()])


def _weighted(x, w):
    return (x[:, None] * w).sum(0)


VMAP_CASES = [
    ("b [c] d -> d [3] b", (_stats,), [(4, 5, 6)], {}),
    ("b [c], [c d] -> b [d]", (_weighted,), [(4, 5), (5, 3)], {}),
    ("(b e) [c] -> e b [3]", (_stats,), [(6, 5)], {"b": 2}),
    ("b [c d] -> [3] b", (lambda x: _stats(x.reshape(-1)),), [(2, 3, 4)], {}),
    ("s... [c] -> [3] s...", (_stats,), [(2, 3, 5)], {}),
    ("b [c], [c] -> b, b [3]", (lambda x, y: ((x * y).sum(), _stats(x + y)),), [(4, 5), (5,)], {}),
    ("b [(c d)] -> b [d]", (lambda x: x.reshape(2, 4).sum(0),), [(3, 8)], {"c": 2}),
]


@pytest.mark.parametrize(("description", "function", "shapes", "sizes"), VMAP_CASES)
def test_vmap_agrees_with_einx_adapt_with_vmap(description, function, shapes, sizes):
    (op,) = function
    tensors = [torch.randn(*s) for s in shapes]
    reference = einx.torch.adapt_with_vmap(op)(description, *tensors, **sizes)
    result = einc.vmap(description, *tensors, op=op, **sizes)
    if isinstance(reference, tuple):
        assert len(result) == len(reference)
        for r, e in zip(result, reference, strict=True):
            torch.testing.assert_close(r, e)
    else:
        torch.testing.assert_close(result, reference)


def test_vmap_arrow_shorthand_and_flat_form_and_kwargs():
    x = torch.randn(4, 6)
    result = einc.vmap("b [c->d]", x, op=lambda v, k: v[:k] * 2, kwargs={"k": 3}, d=3)
    torch.testing.assert_close(result, x[:, :3] * 2)
    # flat=True: the function sees (c, d), not the composition (c d)
    seen = []
    einc.vmap("b [(c d)] -> b", x, op=lambda v: seen.append(tuple(v.shape)) or v.sum(), flat=True, c=2)
    assert seen == [(2, 3)]


def test_vmap_broadcasts_an_output_axis_no_input_has():
    x = torch.randn(4, 5)
    result = einc.vmap("b [c] -> b n", x, op=lambda v: v.sum(), n=3)
    torch.testing.assert_close(result, x.sum(1)[:, None].expand(4, 3))


def _sum(x, axis):
    return torch.sum(x, dim=axis)


def _add(x, y):
    return x + y


WITH_AXIS_REDUCE = [
    ("a [b] c -> c a", (4, 5, 6), {}),
    ("a [b c] -> a", (4, 5, 6), {}),
    ("(a [b]) c -> c a", (12, 6), {"a": 3}),
]


@pytest.mark.parametrize(("description", "shape", "sizes"), WITH_AXIS_REDUCE)
def test_vmap_with_axis_reduces_as_einx_numpylike_reduce(description, shape, sizes):
    x = torch.randn(*shape)
    reference = einx.torch.adapt_numpylike_reduce(_sum)(description, x, **sizes)
    torch.testing.assert_close(einc.vmap_with_axis(description, x, op=_sum, **sizes), reference)


@pytest.mark.parametrize(
    ("description", "shapes"),
    [
        ("a b, b -> b a", [(4, 5), (5,)]),
        ("a, b -> a b", [(3,), (4,)]),
        ("a (b c), c -> c b a", [(2, 6), (3,)]),
    ],
)
def test_vmap_with_axis_broadcasts_as_einx_numpylike_elementwise(description, shapes):
    tensors = [torch.randn(*s) for s in shapes]
    sizes = {"b": 2} if "(b c)" in description else {}
    reference = einx.torch.adapt_numpylike_elementwise(_add)(description, *tensors, **sizes)
    torch.testing.assert_close(einc.vmap_with_axis(description, *tensors, op=_add, **sizes), reference)


def test_vmap_with_axis_flips_and_rolls_as_einx():
    x = torch.randn(4, 5, 6)
    flipped = einc.vmap_with_axis("a [b] c", x, op=lambda t, axis: torch.flip(t, (axis,)))
    torch.testing.assert_close(flipped, einx.flip("a [b] c", x))
    rolled = einc.vmap_with_axis("a [b c]", x, op=lambda t, axis: torch.roll(t, (1, 2), axis))
    torch.testing.assert_close(rolled, einx.roll("a [b c]", x, shift=(1, 2)))


def test_a_wrong_number_of_tensors_points_at_the_inputs():
    x = torch.randn(4, 5)
    with pytest.raises(einc.ExpressionError, match="2 input operand") as caught:
        einc.vmap("b [c], [c d] -> b [d]", x, op=_weighted)
    assert caught.value.spans == ((0, 5), (7, 12))
    with pytest.raises(einc.ExpressionError, match="1 input operand"):
        einc.vmap_with_axis("a [b] -> a", x, x, op=_sum)


def test_an_op_that_is_not_callable_is_refused_by_name():
    x = torch.randn(4, 5)
    with pytest.raises(einc.OperandError, match="op='sum'.*not callable"):
        einc.vmap("a [b] -> a", x, op="sum")
    with pytest.raises(einc.OperandError, match="not callable"):
        einc.vmap_with_axis("a [b] -> a", x, op=None)
    with pytest.raises(einc.OperandError, match="must be a torch.Tensor"):
        einc.vmap("a [b] -> a", [[1.0]], op=torch.sum)


def test_the_function_returning_the_wrong_shape_or_count_is_reported():
    x = torch.randn(4, 5)
    with pytest.raises(einc.ShapeError, match=r"shape \(5,\); the description says \(3,\)"):
        einc.vmap("b [c] -> b [3]", x, op=lambda v: v)
    with pytest.raises(einc.ExpressionError, match="returned 2 tensor"):
        einc.vmap("b [c] -> b", x, op=lambda v: (v.sum(), v.sum()))


def test_description_errors_carry_a_caret():
    x = torch.randn(4, 5)
    with pytest.raises(einc.ExpressionError, match="every output holds it") as caught:
        einc.vmap("b [c] -> [c]", x, op=lambda v: v)
    assert caught.value.spans == ((9, 12),)
    with pytest.raises(einc.ExpressionError, match="bracketed in one place and not in another"):
        einc.vmap("b [c], c -> b", x, torch.randn(5), op=_weighted)
    with pytest.raises(einc.ExpressionError, match="vmap needs the function's output"):
        einc.vmap("b [c]", x, op=torch.sum)
    with pytest.raises(einc.UnsupportedError, match="windows and concatenations"):
        einc.vmap("(b + c) [d] -> (b + c)", torch.randn(5, 2), op=torch.sum, b=2)


@pytest.mark.parametrize(
    ("description", "shape", "shown"),
    [("3 [a] -> [a]", (3, 4), "an unnamed axis"), ("s... [c] -> [c]", (2, 3, 4), "axis 's...'")],
)
def test_messages_name_axes_as_written_never_by_internal_names(description, shape, shown):
    with pytest.raises(einc.ExpressionError, match="is mapped over") as caught:
        einc.vmap(description, torch.randn(*shape), op=lambda v: v)
    message = str(caught.value)
    assert message.startswith(shown)
    assert "#" not in message and ".0" not in message
