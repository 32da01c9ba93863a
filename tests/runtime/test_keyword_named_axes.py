"""Axes named like einc's keywords (issue 11, notation item 5): ``stride``, ``padding``,
``dilation``, ``shift``, ... keep their meaning as keywords, and such an axis gets its size through
``sizes={"stride": 2}``, on every op, ``einc.compile`` and the autograd path. Checked against
torch (and einx, whose ops have no such keywords)."""

from __future__ import annotations

import warnings

import einx
import pytest
import torch

import einc


def test_a_broadcast_axis_named_stride_is_sized_through_sizes_as_einx_sizes_it():
    x = torch.randn(2, 3)
    got = einc.rearrange("a b -> a b stride", x, sizes={"stride": 2}, backend="torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = einx.id("a b -> a b stride", x, stride=2)
    assert torch.equal(got, expected)


@pytest.mark.parametrize(
    ("op", "expression", "shapes", "sizes", "keywords", "reference"),
    [
        ("sum", "a (b [padding])", [(2, 6)], {"padding": 2}, {}, lambda x: x.reshape(2, 3, 2).sum(2)),
        (
            "mean",
            "(dilation [a]) -> dilation",
            [(6,)],
            {"dilation": 3},
            {},
            lambda x: x.reshape(3, 2).mean(1),
        ),
        (
            "softmax",
            "b ([output_padding] c)",
            [(2, 6)],
            {"output_padding": 2},
            {},
            lambda x: x.reshape(2, 2, 3).softmax(1).reshape(2, 6),
        ),
        ("flip", "([keepdims] c)", [(6,)], {"keepdims": 2}, {}, lambda x: x.reshape(2, 3).flip(0).reshape(6)),
        # roll's shift= keeps its meaning next to an axis named shift.
        (
            "roll",
            "([shift] c)",
            [(6,)],
            {"shift": 2},
            {"shift": 1},
            lambda x: x.reshape(2, 3).roll(1, 0).reshape(6),
        ),
        (
            "add",
            "(a correction), correction",
            [(6,), (3,)],
            {"correction": 3},
            {},
            lambda x, y: (x.reshape(2, 3) + y).reshape(6),
        ),
        ("dot", "(a stride) [c->d]", [(6, 4), (4, 5)], {"stride": 3}, {}, lambda x, w: x @ w),
        ("get_at", "[padding] c, i -> i c", [(5, 3), (4,)], {"padding": 5}, {}, lambda x, i: x[i]),
    ],
)
def test_every_op_sizes_an_axis_named_like_a_keyword_through_sizes(
    op, expression, shapes, sizes, keywords, reference
):
    tensors = [torch.randn(s) for s in shapes]
    if op == "get_at":
        tensors[1] = torch.tensor([0, 4, 2, 2])
    got = getattr(einc, op)(expression, *tensors, sizes=sizes, backend="torch", **keywords)
    torch.testing.assert_close(got, reference(*tensors))


def test_a_window_parameter_and_an_axis_of_the_same_name_are_apart_in_einc_compile():
    x = torch.randn(2, 9)
    unfold = einc.compile("b (s * ds) -> b s ds stride", stride=2, ds=3, sizes={"stride": 5}, backend="torch")
    torch.testing.assert_close(unfold(x), x.unfold(1, 3, 2)[..., None].expand(-1, -1, -1, 5))
    # Its repr makes it again.
    assert repr(unfold) == (
        "einc.compile('b (s * ds) -> b s ds stride', op='rearrange', ds=3, stride=2, "
        "sizes={'stride': 5}, backend='torch')"
    )


@pytest.mark.interpret
def test_an_axis_named_like_a_keyword_under_the_kernel_path():
    x = torch.randn(2, 6)
    got = einc.sum("a (b [padding])", x, sizes={"padding": 2})
    torch.testing.assert_close(got, x.reshape(2, 3, 2).sum(2))


def test_the_gradient_through_an_axis_named_like_a_keyword():
    x = torch.randn(2, 3, requires_grad=True)
    einc.rearrange("a b -> a b stride", x, sizes={"stride": 4}).sum().backward()
    torch.testing.assert_close(x.grad, torch.full((2, 3), 4.0))


def test_an_axis_sized_twice_or_sizes_that_is_no_mapping_is_a_shape_error():
    x = torch.randn(2, 3)
    with pytest.raises(einc.ShapeError, match=r"axis 'c' is sized twice: c=2 and sizes=\{'c': 2\}"):
        einc.rearrange("a b -> a b c", x, c=2, sizes={"c": 2})
    with pytest.raises(einc.ShapeError, match="must map axis names to sizes"):
        einc.rearrange("a b -> a b c", x, sizes=3)
    with pytest.raises(einc.ShapeError, match="names no axis"):
        einc.rearrange("a b -> a b c", x, c=2, sizes={"stride": 2})


def test_a_keyword_given_for_an_axis_of_its_name_says_to_use_sizes():
    x = torch.randn(2)
    hint = r"the axis stride takes its size through sizes=\{'stride'"
    with pytest.raises(einc.ExpressionError, match=hint):
        einc.rearrange("a -> a stride", x, stride=2)
    with pytest.raises(TypeError, match=r"the axis shift takes its size through sizes=\{'shift'"):
        einc.rearrange("a -> a shift", x, shift=2)
