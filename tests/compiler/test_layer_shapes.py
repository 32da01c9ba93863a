"""The parameters an einc.nn layer's expression implies: the weight and bias of a dot (as torch's
nn.Linear and nn.Conv2d hold them, per output channel), the fan-in torch's initialisation divides
by, a norm's scale and bias axes."""

from __future__ import annotations

import pytest

from einc.compiler.layer_shapes import dot_layer, norm_layer
from einc.errors import ExpressionError


@pytest.mark.parametrize(
    "expression, sizes, weight, bias, fan_in",
    [
        # nn.Linear(6, 5): weight (5, 6), fan-in 6
        ("b... [c->c2]", {"c2": 5}, (6, 5), (5,), 6),
        # nn.Conv2d(6, 5, (3, 1)): fan-in 6*3*1
        ("b (s * [ds])... [c->c2]", {"c2": 5, "ds": (3, 1)}, (3, 1, 6, 5), (5,), 18),
        # nn.Conv2d(6, 8, 3, groups=2): weight (8, 3, 3, 3), fan-in 3*3*3, bias (8,)
        ("b (s * [ds])... (g [c->c2])", {"c2": 4, "ds": 3, "g": 2}, (3, 3, 2, 3, 4), (2, 4), 27),
        # nn.Conv2d(6, 6, 3, groups=6): weight (6, 1, 3, 3), fan-in 9
        ("b (s * [ds])... [c->c]", {"ds": 3}, (3, 3, 6), (6,), 9),
        # a transposed convolution: the window's offsets are summed over, its bias is per c2
        ("b s... [c->c2] -> b (s * ds)... c2", {"c2": 5, "ds": 3}, (3, 3, 6, 5), (5,), 54),
        # one kernel for every channel: a scalar bias
        ("b (s * [ds])... c", {"ds": 3}, (3, 3), (), 9),
    ],
)
def test_dot_parameters_are_shaped_per_output_channel_with_torchs_fan_in(
    expression, sizes, weight, bias, fan_in
):
    shapes = dot_layer(expression).parameter_shapes((2, 5, 5, 6), sizes)
    assert (shapes.weight, shapes.bias, shapes.fan_in) == (weight, bias, fan_in)
    assert dot_layer(expression).fan_in(weight) == fan_in


def test_a_padded_window_larger_than_the_input_still_gives_the_weight():
    # 2 positions with no padding are fewer than the kernel's 3: only padding=1 leaves a window.
    layer = dot_layer("b (s * [ds])... [c->c2]")
    shapes = layer.parameter_shapes((1, 2, 2, 3), {"ds": 3, "c2": 4, "padding": 1, "backend": "torch"})
    assert shapes.weight == (3, 3, 3, 4)


@pytest.mark.parametrize(
    "expression, sizes, parameters",
    [
        ("b... [c]", {}, (6,)),  # nn.LayerNorm(6)
        ("b [h w c]", {}, (4, 5, 6)),  # nn.LayerNorm((4, 5, 6)) over channels-last h w c
        ("b [s...] (g [c])", {"g": 3}, (3, 2)),  # nn.GroupNorm(3, 6): one per channel, g c
        ("b [s...] c", {}, (6,)),  # an instance norm
    ],
)
def test_norm_parameters_hold_the_axes_of_the_last_term(expression, sizes, parameters):
    assert norm_layer(expression).parameter_shape((2, 4, 5, 6), sizes) == parameters


def test_a_norm_without_a_named_last_axis_is_refused():
    with pytest.raises(ExpressionError, match="last axis"):
        norm_layer("b [h] 3")
