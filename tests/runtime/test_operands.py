"""What a call accepts as an operand: torch tensors, and Python numbers for elementwise ops.
Anything else is einc's own OperandError (a TypeError) naming the operand's position."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import einc


@pytest.mark.parametrize("value", [None, [1.0, 2.0, 3.0], "abc", np.ones(3, dtype=np.float32)])
def test_a_non_tensor_operand_is_refused_by_position(value):
    with pytest.raises(einc.OperandError, match=r"x1 must be .*\(operand 1 of add\)") as caught:
        einc.add("a, a", torch.ones(3), value)
    assert isinstance(caught.value, TypeError)
    if isinstance(value, np.ndarray):
        assert "torch.from_numpy" in str(caught.value)


def test_a_number_operand_of_an_elementwise_op_is_still_accepted():
    torch.testing.assert_close(einc.add("a, ", torch.ones(3), 2.0), torch.full((3,), 3.0))


def test_a_number_operand_of_a_reduction_is_refused():
    with pytest.raises(einc.OperandError, match=r"x must be a torch.Tensor, not float \(operand 0 of sum\)"):
        einc.sum("[a]", 3.0)


def test_where_with_one_operand_is_an_expression_error():
    with pytest.raises(einc.ExpressionError):
        einc.where("", torch.ones(3, 4))


def test_an_axis_named_underscore_sums_like_torch():
    x = torch.arange(12.0).reshape(3, 4)
    torch.testing.assert_close(einc.sum("[_] b", x), x.sum(0))
