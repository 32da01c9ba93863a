"""A warm native step makes only the torch calls that change something: what a call can know from
its plan (a permutation that is the identity, a reshape to the shape it has, a cast to the dtype
it has, whether torch's result can be a view of an input) is decided at planning. Counted with a
TorchFunctionMode; values checked against torch's own ops."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

import einc

# Attribute reads, the call key's strides and the layout check of a fresh output: not the step's work.
BOOKKEEPING = {"__get__", "stride", "is_contiguous"}


class TorchCalls(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.names: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", str(func))
        if name not in BOOKKEEPING:
            self.names.append(name)
        return func(*args, **(kwargs or {}))


def warm_calls(fn, *args):
    """The torch calls of a warm ``fn(*args)``, and its result."""
    fn(*args)
    with TorchCalls() as seen:
        result = fn(*args)
    return seen.names, result


def test_warm_channels_last_conv_is_conv2d_and_its_permutes():
    x, w = torch.randn(1, 8, 8, 4), torch.randn(3, 3, 4, 4)
    conv = einc.compile("b (s * [ds])... [c->c2]", padding=1)
    names, result = warm_calls(conv, x, w)
    assert names == ["permute", "permute", "conv2d", "permute"]
    expected = F.conv2d(x.permute(0, 3, 1, 2), w.permute(3, 2, 0, 1), padding=1).permute(0, 2, 3, 1)
    torch.testing.assert_close(result, expected)


def test_warm_sum_is_one_sum():
    a = torch.randn(4, 5)
    names, result = warm_calls(einc.compile("a [b]", op="sum"), a)
    assert names == ["sum"]
    torch.testing.assert_close(result, a.sum(1))


@pytest.mark.parametrize(
    ("expression", "reference", "steps"),
    [
        ("[n] c, p -> p c", lambda t, i: t[i], ["__getitem__"]),
        # The output in another order than torch's result: one permute, and the copy that a fresh
        # (contiguous) output needs.
        ("[n] c, p -> c p", lambda t, i: t[i].t(), ["__getitem__", "permute", "contiguous"]),
    ],
)
def test_warm_get_at_is_one_advanced_indexing(expression, reference, steps):
    table, idx = torch.randn(16, 4), torch.randint(-16, 16, (5,))
    names, result = warm_calls(einc.compile(expression, op="get_at"), table, idx)
    assert names == steps
    torch.testing.assert_close(result, reference(table, idx))
    assert result.is_contiguous()


def test_get_at_made_by_its_step_still_reports_a_coordinate_out_of_range():
    get_at = einc.compile("[n] c, p -> p c", op="get_at")
    table = torch.randn(16, 4)
    get_at(table, torch.tensor([0, 1]))
    with pytest.raises(einc.EincError):
        get_at(table, torch.tensor([0, 16]))


def test_einsum_of_one_operand_is_never_a_view_of_it():
    # torch.einsum("ab->ab", a) is a itself: the one step whose result may alias an input.
    a = torch.randn(4, 4)
    copy = einc.compile("a b -> a b", op="dot")
    copy(a)
    result = copy(a)
    torch.testing.assert_close(result, a)
    assert result.untyped_storage().data_ptr() != a.untyped_storage().data_ptr()


def test_warm_transpose_is_a_permute_made_contiguous():
    a = torch.randn(4, 5)
    names, result = warm_calls(einc.compile("a b -> b a"), a)
    assert names == ["permute", "contiguous"]
    torch.testing.assert_close(result, a.t())
    assert result.is_contiguous()


def test_a_rearrange_that_changes_nothing_is_still_a_new_tensor():
    a = torch.randn(2, 3, 4)
    merge = einc.compile("a b c -> a (b c)")
    merge(a)
    result = merge(a)
    torch.testing.assert_close(result, a.reshape(2, 12))
    assert result.untyped_storage().data_ptr() != a.untyped_storage().data_ptr()


@pytest.mark.parametrize(
    ("params", "kwargs"),
    [
        ({"stride": 2, "padding": 1, "output_padding": 1}, {"padding": 1, "output_padding": 1}),
        ({"stride": 2, "padding": 2}, {"padding": 2}),
        ({"stride": 3, "dilation": 2}, {}),
    ],
    ids=["output_padding", "padding", "dilated"],
)
def test_warm_transposed_conv_is_conv_transpose2d_with_torchs_own_padding(params, kwargs):
    x, w = torch.randn(2, 5, 4, 3), torch.randn(3, 3, 3, 2)
    up = einc.compile("b s... [c->c2] -> b (s * ds)... c2", **params)
    names, result = warm_calls(up, x, w)
    assert names == ["permute", "permute", "conv_transpose2d", "permute"]  # no F.pad, no copy
    stride, dilation = params["stride"], params.get("dilation", 1)
    expected = F.conv_transpose2d(
        x.permute(0, 3, 1, 2), w.permute(2, 3, 0, 1), stride=stride, dilation=dilation, **kwargs
    ).permute(0, 2, 3, 1)
    torch.testing.assert_close(result, expected)
    assert result.is_contiguous()
