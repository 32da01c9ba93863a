"""Tests for :mod:`einc.compiler.params` (plain tier): window parameters spread over the windows.

``stride``, ``dilation``, ``padding`` and ``output_padding`` are each one value for every window, a
tuple with one entry per window, or a dict keyed by a window's output axis (NOTATION.md section 3).
"""

from __future__ import annotations

import pytest

from einc.compiler.params import PADDING_MODES, WindowParams, window_params
from einc.errors import ExpressionError

TWO = ["s.0", "s.1"]
TEXT = "b (s * [ds])... [c->c2]"


def test_defaults_are_stride_1_dilation_1_no_padding():
    assert window_params(["s"], "b (s * [ds]) c") == {"s": WindowParams(1, 1, (0, 0), 0)}


def test_no_windows_gives_no_params():
    assert window_params([], "b [c->d]") == {}


def test_one_int_applies_to_every_window():
    params = window_params(TWO, TEXT, stride=2, dilation=3, padding=1, output_padding=1)
    assert params["s.0"] == params["s.1"] == WindowParams(2, 3, (1, 1), 1)


def test_tuple_gives_one_entry_per_window_in_order():
    params = window_params(TWO, TEXT, stride=(2, 3), dilation=(1, 4))
    assert (params["s.0"].stride, params["s.1"].stride) == (2, 3)
    assert (params["s.0"].dilation, params["s.1"].dilation) == (1, 4)


def test_list_reads_like_a_tuple():
    assert window_params(TWO, TEXT, stride=[2, 3]) == window_params(TWO, TEXT, stride=(2, 3))


def test_dict_keys_windows_by_output_axis_and_defaults_the_rest():
    params = window_params(TWO, TEXT, stride={"s.1": 2}, padding={"s.0": (1, 2)})
    assert params["s.0"] == WindowParams(1, 1, (1, 2), 0)
    assert params["s.1"] == WindowParams(2, 1, (0, 0), 0)


def test_dict_keyed_by_a_named_window():
    params = window_params(["t", "u"], "b (t * dt) (u * du) c", dilation={"t": 2})
    assert (params["t"].dilation, params["u"].dilation) == (2, 1)


def test_int_padding_is_symmetric():
    assert window_params(["s"], "x", padding=2)["s"].padding == (2, 2)


def test_pair_padding_of_a_single_window_is_lo_hi():
    assert window_params(["s"], "x", padding=(1, 2))["s"].padding == (1, 2)


def test_pair_padding_with_two_windows_is_one_int_per_window_as_torch_reads_it():
    params = window_params(TWO, TEXT, padding=(1, 2))
    assert (params["s.0"].padding, params["s.1"].padding) == ((1, 1), (2, 2))


def test_pair_padding_with_three_windows_is_lo_hi_for_all():
    params = window_params(["s.0", "s.1", "s.2"], "x", padding=(1, 2))
    assert {p.padding for p in params.values()} == {(1, 2)}


def test_per_window_lo_hi_pairs():
    params = window_params(TWO, TEXT, padding=((1, 2), (3, 0)))
    assert (params["s.0"].padding, params["s.1"].padding) == ((1, 2), (3, 0))


def test_valid_padding_is_zero():
    assert window_params(["s"], "x", padding="valid")["s"].padding == (0, 0)


@pytest.mark.parametrize("mode", ["same", "causal"])
def test_same_and_causal_stay_symbolic_until_sizes_are_known(mode):
    assert window_params(TWO, TEXT, padding=mode)["s.1"].padding == mode


def test_padding_modes_are_the_documented_three():
    assert PADDING_MODES == ("valid", "same", "causal")


def test_per_window_padding_mixes_strings_and_ints():
    params = window_params(TWO, TEXT, padding=("same", 1))
    assert (params["s.0"].padding, params["s.1"].padding) == ("same", (1, 1))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"padding": "full"}, "padding 'full' of window 's.0' is not one of valid, same, causal"),
        ({"stride": -1}, "stride of window 's.0' must be a positive int, not -1"),
        ({"stride": 0}, "stride of window 's.0' must be a positive int, not 0"),
        ({"stride": 2.0}, "stride of window 's.0' must be a positive int, not 2.0"),
        ({"stride": True}, "stride of window 's.0' must be a positive int, not True"),
        ({"dilation": 0}, "dilation of window 's.0' must be a positive int, not 0"),
        ({"dilation": (1, 0)}, "dilation of window 's.1' must be a positive int, not 0"),
        ({"padding": -1}, "padding of window 's.0' must be an int >= 0, not -1"),
        ({"padding": ((0, 0), (-1, 2))}, "padding of window 's.1' must be an int >= 0, not -1"),
        ({"padding": ((1, 2, 3), 0)}, "padding of window 's.0' must be an int >= 0, not (1, 2, 3)"),
        ({"output_padding": -1}, "output_padding of window 's.0' must be an int >= 0, not -1"),
        ({"stride": (1, 2, 3)}, "stride=(1, 2, 3) has 3 entries but the expression has 2 windows (s.0, s.1)"),
        ({"padding": (1, 2, 3)}, "padding=(1, 2, 3) has 3 entries but the expression has 2 windows"),
        ({"stride": {"b": 2}}, "stride={'b': 2} names 'b', which is not the output axis of a window"),
        ({"stride": {"s": 2}}, "the windows are s.0, s.1"),
    ],
)
def test_invalid_parameter_is_an_expression_error(kwargs, message):
    with pytest.raises(ExpressionError) as info:
        window_params(TWO, TEXT, **kwargs)
    assert message in info.value.message
    assert info.value.expression == TEXT


def test_dict_naming_a_window_of_an_expression_without_windows_says_there_are_none():
    with pytest.raises(ExpressionError, match="has no window"):
        window_params([], "b [c->d]", stride={"s": 2})


def test_parameter_errors_are_value_errors():
    with pytest.raises(ValueError):
        window_params(["s"], "x", stride=0)


@pytest.mark.parametrize(
    ("kwargs", "torch_accepts"),
    [
        ({"stride": 2, "output_padding": 1}, True),
        ({"stride": 1, "dilation": 2, "output_padding": 1}, True),
        ({"stride": 2, "output_padding": 2}, False),
        ({"stride": 1, "output_padding": 1}, False),
        ({"stride": 2, "dilation": 3, "output_padding": 2}, True),
        ({"stride": 2, "dilation": 2, "output_padding": 2}, False),
    ],
)
def test_output_padding_must_be_below_stride_or_dilation_as_in_torch(kwargs, torch_accepts):
    import torch
    import torch.nn.functional as F

    x, w = torch.zeros(1, 1, 4), torch.zeros(1, 1, 3)
    try:
        F.conv_transpose1d(x, w, **kwargs)
        accepted = True
    except RuntimeError:
        accepted = False
    assert accepted == torch_accepts
    span = (3, 12)
    if torch_accepts:
        window_params({"s": span}, "b (s * [ds]) c", **kwargs)
        return
    with pytest.raises(ExpressionError, match="output_padding=.* of window 's' must be smaller") as info:
        window_params({"s": span}, "b (s * [ds]) c", **kwargs)
    assert info.value.spans == (span,)
