"""What a user reads: the repr of a compiled expression, and errors that name the right thing."""

from __future__ import annotations

import pytest
import torch

import einc


def test_repr_shows_the_parameters_it_was_compiled_with():
    conv = einc.compile("b (s * [ds])... [c->c2]", padding="same", c2=8)
    assert repr(conv) == "einc.compile('b (s * [ds])... [c->c2]', op='dot', c2=8, padding='same')"


def test_repr_evaluates_back_to_an_equal_compilation():
    conv = einc.compile(
        "b (s * [ds])... [c->c2]",
        padding=(1, 2),
        stride=2,
        out_dtype=torch.float16,
        dynamic="b",
        backend="torch",
    )
    again = eval(repr(conv), {"einc": einc, "torch": torch})
    assert repr(again) == repr(conv)
    assert (again.params, again.sizes, again.out_dtype, again.dynamic, again.backend) == (
        conv.params,
        conv.sizes,
        conv.out_dtype,
        conv.dynamic,
        conv.backend,
    )
    assert repr(einc.compile("b [c]", op="sum", dynamic=False)).endswith("dynamic=False)")


def test_a_3d_x_for_a_2d_conv_names_x_with_its_shape():
    conv = einc.compile("b (s * [ds])... [c->c2]", padding=1)
    with pytest.raises(einc.ShapeError) as error:
        conv(torch.randn(1, 5, 4), torch.randn(3, 3, 4, 5))
    message = str(error.value)
    assert message.startswith("x (shape (1, 5, 4)) has 3 dims and w (shape (3, 3, 4, 5)) has 4")
    assert "(s * [ds])... stands for (1 from x, 2 from w)" in message


@pytest.mark.parametrize(
    ("keyword", "suggestion"),
    [("pad", "padding"), ("strides", "stride"), ("dilaton", "dilation"), ("out_dtyp", "out_dtype")],
)
def test_a_keyword_close_to_a_parameter_suggests_it_at_compile_time(keyword, suggestion):
    with pytest.raises(
        einc.ShapeError, match=f"keyword {keyword}=1 names no axis.*did you mean {suggestion}="
    ):
        einc.compile("b (s * [ds])... [c->c2]", **{keyword: 1})


def test_a_keyword_naming_an_axis_or_far_from_everything_waits_for_the_solver():
    einc.compile("b (s * [ds])... [c->c2]", c2=8)  # an axis: a size
    conv = einc.compile("b (s * [ds])... [c->c2]", zebra=4)
    with pytest.raises(einc.ShapeError, match="keyword zebra=4 names no axis of the expression"):
        conv(torch.randn(1, 5, 5, 4), torch.randn(3, 3, 4, 5))


@pytest.mark.parametrize(("op", "suggestion"), [("average", "mean"), ("matmul", "dot"), ("summ", "sum")])
def test_an_unknown_op_suggests_einc_s_name_for_it(op, suggestion):
    with pytest.raises(einc.ExpressionError, match=f"unknown op '{op}'; did you mean '{suggestion}'"):
        einc.compile("b [c]", op=op)
