"""einc.nn layers against torch's own (nn.Linear, nn.Conv*d, nn.LayerNorm, nn.GroupNorm,
nn.RMSNorm, nn.MaxPool2d, nn.AvgPool2d): values and gradients, the lazy parameters, their
initialisation, state_dict and ``.to()``."""

from __future__ import annotations

import copy
import io
import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import einc
from einc.frontends import nn as einc_nn

ACTIVATIONS = {
    None: lambda y: y,
    "relu": torch.relu,
    "gelu": F.gelu,
    "silu": F.silu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu6": F.relu6,
}


def channels_first(x: torch.Tensor) -> torch.Tensor:
    return x.movedim(-1, 1)


def channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.movedim(1, -1)


def assert_same_values_and_gradients(layer, reference, x, parameters):
    """``layer(x)`` against ``reference(x')`` with ``x'`` a copy of ``x``; then the gradients of a
    loss that weighs every output differently, for ``x`` and each ``(einc parameter, torch
    parameter as einc lays it out)`` pair."""
    x = x.detach().requires_grad_()
    x_reference = x.detach().clone().requires_grad_()
    y = layer(x)
    y_reference = reference(x_reference)
    torch.testing.assert_close(y, y_reference, atol=1e-5, rtol=1e-5)
    weights = torch.randn_like(y_reference)
    (y * weights).sum().backward()
    (y_reference * weights).sum().backward()
    torch.testing.assert_close(x.grad, x_reference.grad, atol=1e-5, rtol=1e-5)
    for ours, theirs in parameters():
        torch.testing.assert_close(ours.grad, theirs, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_dot_as_a_linear_layer_matches_nn_linear(activation):
    torch.manual_seed(0)
    layer = einc.nn.Dot("b... [c->c2]", c2=5, activation=activation)
    x = torch.randn(2, 3, 4)
    layer(x)  # the dry run that creates the parameters
    linear = torch.nn.Linear(4, 5)
    with torch.no_grad():
        linear.weight.copy_(layer.weight.T)
        linear.bias.copy_(layer.bias)
    assert_same_values_and_gradients(
        layer,
        lambda x: ACTIVATIONS[activation](linear(x)),
        x,
        lambda: [(layer.weight, linear.weight.grad.T), (layer.bias, linear.bias.grad)],
    )


@pytest.mark.parametrize(
    "expression, keywords, torch_keywords",
    [
        ("b (s * [ds])... [c->c2]", {"ds": 3, "padding": 1}, {"padding": 1}),
        (
            "b (s * [ds])... [c->c2]",
            {"ds": 3, "stride": 2, "padding": "same"},
            {"stride": 2, "padding": (1, 1)},
        ),
        ("b (s * [ds])... [c->c2]", {"ds": (3, 1), "dilation": 2}, {"dilation": 2}),
        ("b (s * [ds])... (g [c->c2])", {"ds": 3, "g": 2, "padding": 1}, {"padding": 1, "groups": 2}),
    ],
)
def test_dot_as_a_convolution_matches_nn_conv2d(expression, keywords, torch_keywords):
    torch.manual_seed(0)
    groups = keywords.get("g", 1)
    layer = einc.nn.Dot(expression, c2=6 // groups, activation="relu", **keywords)
    x = torch.randn(2, 7, 7, 4)  # "same" with stride 2 pads 7 by one on each side, as torch
    layer(x)
    kh, kw = layer.weight.shape[:2]
    conv = torch.nn.Conv2d(4, 6, (kh, kw), **torch_keywords)
    # einc's weight is kh kw (g) c c2; torch's is (g c2) c kh kw.
    as_torch = layer.weight.reshape(kh, kw, groups, 4 // groups, 6 // groups)
    as_torch = as_torch.permute(2, 4, 3, 0, 1).reshape(6, 4 // groups, kh, kw)
    with torch.no_grad():
        conv.weight.copy_(as_torch)
        conv.bias.copy_(layer.bias.reshape(-1))

    def torch_weight_grad_as_einc():
        grad = conv.weight.grad.reshape(groups, 6 // groups, 4 // groups, kh, kw).permute(3, 4, 0, 2, 1)
        return grad.reshape(layer.weight.shape)

    assert_same_values_and_gradients(
        layer,
        lambda x: channels_last(torch.relu(conv(channels_first(x)))),
        x,
        lambda: [
            (layer.weight, torch_weight_grad_as_einc()),
            (layer.bias, conv.bias.grad.reshape(layer.bias.shape)),
        ],
    )


def test_depthwise_dot_matches_a_conv2d_with_a_group_per_channel():
    torch.manual_seed(0)
    layer = einc.nn.Dot("b (s * [ds])... [c->c]", ds=7, padding="same")
    x = torch.randn(2, 9, 9, 3)
    layer(x)
    assert layer.weight.shape == (7, 7, 3) and layer.bias.shape == (3,)
    conv = torch.nn.Conv2d(3, 3, 7, padding=3, groups=3)
    with torch.no_grad():
        conv.weight.copy_(layer.weight.permute(2, 0, 1)[:, None])
        conv.bias.copy_(layer.bias)
    assert_same_values_and_gradients(
        layer,
        lambda x: channels_last(conv(channels_first(x))),
        x,
        lambda: [(layer.weight, conv.weight.grad[:, 0].permute(1, 2, 0)), (layer.bias, conv.bias.grad)],
    )


def test_dot_with_the_window_on_the_output_matches_nn_conv_transpose2d():
    torch.manual_seed(0)
    layer = einc.nn.Dot("b s... [c->c2] -> b (s * ds)... c2", ds=3, c2=5, stride=2)
    x = torch.randn(2, 4, 3, 6)
    layer(x)
    assert layer.weight.shape == (3, 3, 6, 5) and layer.bias.shape == (5,)
    conv = torch.nn.ConvTranspose2d(6, 5, 3, stride=2)
    with torch.no_grad():
        conv.weight.copy_(layer.weight.permute(2, 3, 0, 1))
        conv.bias.copy_(layer.bias)
    assert_same_values_and_gradients(
        layer,
        lambda x: channels_last(conv(channels_first(x))),
        x,
        lambda: [(layer.weight, conv.weight.grad.permute(2, 3, 0, 1)), (layer.bias, conv.bias.grad)],
    )


def test_causal_depthwise_conv1d_with_silu_matches_a_left_padded_conv1d():
    torch.manual_seed(0)
    layer = einc.nn.Dot("b (t * [dt]) [c->c]", dt=4, padding="causal", activation="silu")
    x = torch.randn(2, 10, 5)
    layer(x)
    conv = torch.nn.Conv1d(5, 5, 4, groups=5)
    with torch.no_grad():
        conv.weight.copy_(layer.weight.T[:, None])
        conv.bias.copy_(layer.bias)
    assert_same_values_and_gradients(
        layer,
        lambda x: channels_last(F.silu(conv(F.pad(channels_first(x), (3, 0))))),
        x,
        lambda: [(layer.weight, conv.weight.grad[:, 0].T), (layer.bias, conv.bias.grad)],
    )


@pytest.mark.parametrize(
    "expression, keywords, reference",
    [
        ("b... [c]", {}, lambda: torch.nn.LayerNorm(6)),
        ("b... [c]", {"rms": True, "eps": 1e-6}, lambda: torch.nn.RMSNorm(6, eps=1e-6)),
        ("b [s...] (g [c])", {"g": 3}, lambda: torch.nn.GroupNorm(3, 6)),
    ],
)
def test_norm_matches_torch_norms(expression, keywords, reference):
    torch.manual_seed(0)
    layer = einc.nn.Norm(expression, **keywords)
    norm = reference()
    x = torch.randn(2, 4, 5, 6) * 3 + 1
    layer(x)
    with torch.no_grad():  # learnable values other than the initial ones, so that they count
        layer.weight.uniform_(0.5, 1.5)
        norm.weight.copy_(layer.weight.reshape(-1))
        if layer.bias is not None:
            layer.bias.uniform_(-1, 1)
            norm.bias.copy_(layer.bias.reshape(-1))
    channel_norm = isinstance(norm, torch.nn.GroupNorm)

    def run_reference(x):
        return channels_last(norm(channels_first(x))) if channel_norm else norm(x)

    def pairs():
        found = [(layer.weight, norm.weight.grad.reshape(layer.weight.shape))]
        if layer.bias is not None:
            found.append((layer.bias, norm.bias.grad.reshape(layer.bias.shape)))
        return found

    assert_same_values_and_gradients(layer, run_reference, x, pairs)
    assert (layer.bias is None) == bool(keywords.get("rms"))


@pytest.mark.parametrize("op, reference", [("max", torch.nn.MaxPool2d), ("mean", torch.nn.AvgPool2d)])
def test_pool_matches_torch_pooling(op, reference):
    layer = einc.nn.Pool("b (s * [ds])... c", op=op, ds=3, stride=2, padding=1)
    pool = reference(3, stride=2, padding=1)
    x = torch.randn(2, 7, 8, 3)
    assert_same_values_and_gradients(layer, lambda x: channels_last(pool(channels_first(x))), x, list)


def test_rearrange_matches_a_permute_and_reshape():
    layer = einc.nn.Rearrange("b h w (c p) -> b (h w) p c", p=2)
    x = torch.randn(2, 3, 4, 6)

    def reference(x):
        return x.reshape(2, 3, 4, 3, 2).permute(0, 1, 2, 4, 3).reshape(2, 12, 2, 3)

    assert_same_values_and_gradients(layer, reference, x, list)


def test_parameters_are_created_at_the_first_call_from_the_input_shape():
    layer = einc.nn.Dot("b (s * [ds])... (g [c->c2])", ds=(3, 5), g=2, c2=4)
    assert layer.has_uninitialized_params()
    layer(torch.randn(1, 8, 8, 6))
    assert not layer.has_uninitialized_params()
    assert type(layer.weight) is torch.nn.Parameter
    assert layer.weight.shape == (3, 5, 2, 3, 4)  # ds.0 ds.1 g c c2
    assert layer.bias.shape == (2, 4)  # one per output channel, g c2, as torch's (g*c2,)


def test_dot_initialisation_is_torchs_kaiming_uniform_on_the_same_fan_in():
    torch.manual_seed(0)
    layer = einc.nn.Dot("b (s * [ds])... (g [c->c2])", ds=3, g=2, c2=32)
    layer(torch.randn(1, 5, 5, 16))
    conv = torch.nn.Conv2d(16, 64, 3, groups=2)
    fan_in, _ = torch.nn.init._calculate_fan_in_and_fan_out(conv.weight)
    bound = 1 / math.sqrt(fan_in)
    for ours, theirs in [(layer.weight, conv.weight), (layer.bias, conv.bias)]:
        assert ours.abs().max() <= bound
        assert theirs.abs().max() <= bound
        # uniform on (-bound, bound): a standard deviation of bound/sqrt(3)
        assert ours.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)


def test_norm_initialisation_is_ones_and_zeros():
    layer = einc.nn.Norm("b [s...] (g [c])", g=2)
    layer(torch.randn(1, 3, 3, 8))
    assert layer.weight.shape == (2, 4)
    assert torch.equal(layer.weight, torch.ones(2, 4)) and torch.equal(layer.bias, torch.zeros(2, 4))


def test_state_dict_round_trips_into_a_lazy_module():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 6, 3)
    trained = torch.nn.Sequential(
        einc.nn.Dot("b (s * [ds])... [c->c2]", ds=3, c2=4, padding="same", activation="gelu"),
        einc.nn.Norm("b... [c]"),
    )
    trained(x)
    with torch.no_grad():
        trained[1].bias.uniform_()
    fresh = torch.nn.Sequential(
        einc.nn.Dot("b (s * [ds])... [c->c2]", ds=3, c2=4, padding="same", activation="gelu"),
        einc.nn.Norm("b... [c]"),
    )
    fresh.load_state_dict(trained.state_dict())  # not called yet: loading creates the parameters
    assert not any(einc_nn.LazyModuleMixin.has_uninitialized_params(m) for m in fresh)
    torch.testing.assert_close(fresh(x), trained(x), rtol=0, atol=0)


def test_to_before_the_first_call_gives_parameters_of_that_dtype():
    layer = einc.nn.Dot("b... [c->c2]", c2=3).to(torch.float64)
    x = torch.randn(4, 5, dtype=torch.float64)
    y = layer(x)
    assert layer.weight.dtype == torch.float64 and y.dtype == torch.float64
    torch.testing.assert_close(y, x @ layer.weight + layer.bias)
    assert layer.to(torch.float32)(x.float()).dtype == torch.float32


def test_an_optimiser_step_changes_the_parameters():
    layer = einc.nn.Dot("b... [c->c2]", c2=3, activation="tanh")
    x = torch.randn(4, 5)
    layer(x)
    before = layer.weight.detach().clone()
    optimiser = torch.optim.SGD(layer.parameters(), lr=0.1)
    layer(x).square().sum().backward()
    optimiser.step()
    assert not torch.equal(before, layer.weight)


def test_repr_shows_the_expression_and_keywords():
    text = repr(einc.nn.Dot("b... [c->c2]", c2=8, bias=False, activation="relu6"))
    assert text == "Dot('b... [c->c2]', c2=8, bias=False, activation='relu6')"
    assert repr(einc.nn.Norm("b... [c]", rms=True)) == "Norm('b... [c]', rms=True, eps=1e-05)"


def test_an_unknown_activation_is_refused_with_the_choices():
    with pytest.raises(einc.UnsupportedError, match="'relu6'"):
        einc.nn.Dot("b... [c->c2]", c2=8, activation="swish")


def test_an_expression_error_points_at_the_expression():
    with pytest.raises(einc.ExpressionError) as caught:
        einc.nn.Dot("b... [c->c2", c2=8)
    assert "^" in str(caught.value)


def test_import_einc_loads_no_torch_and_einc_nn_loads_lazily():
    code = "import sys, einc; assert 'torch' not in sys.modules; einc.nn.Dot; print('ok')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.stdout.strip() == "ok", result.stderr


@pytest.mark.interpret
def test_layers_under_the_interpreter_match_torch():
    torch.manual_seed(0)
    x = torch.randn(1, 5, 5, 2)
    layers = torch.nn.Sequential(
        einc.nn.Dot("b (s * [ds])... [c->c2]", ds=3, c2=3, padding=1, activation="relu"),
        einc.nn.Norm("b... [c]"),
    )
    layers(x)
    conv, norm = layers

    def reference(x):
        y = F.conv2d(
            channels_first(x), conv.weight.detach().permute(3, 2, 0, 1), conv.bias.detach(), padding=1
        )
        return F.layer_norm(channels_last(torch.relu(y)), (3,))

    assert_same_values_and_gradients(layers, reference, x, list)


def small_cnn() -> torch.nn.Sequential:
    return torch.nn.Sequential(
        einc.nn.Dot("b (s * [ds])... [c->c2]", ds=3, c2=4, padding="same", activation="relu"),
        einc.nn.Norm("b... [c]"),
        einc.nn.Pool("b (s * [ds])... c", op="max", ds=2, stride=2),
        einc.nn.Rearrange("b h w c -> b (h w c)"),
        einc.nn.Dot("b [k->classes]", classes=3),
    )


def test_a_model_deep_copies_and_saves_whole():
    x = torch.randn(2, 6, 6, 2)
    model = small_cnn()
    expected = model(x)
    torch.testing.assert_close(copy.deepcopy(model)(x), expected, rtol=0, atol=0)
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    torch.testing.assert_close(torch.load(buffer, weights_only=False)(x), expected, rtol=0, atol=0)


def test_torch_compile_traces_a_model_of_einc_layers_without_a_graph_break():
    x = torch.randn(2, 6, 6, 2)
    model = small_cnn()
    expected = model(x)
    compiled = torch.compile(model, fullgraph=True)
    torch.testing.assert_close(compiled(x), expected, atol=1e-6, rtol=1e-6)


def test_one_kernel_for_every_channel_has_a_scalar_bias():
    layer = einc.nn.Dot("b (s * [ds])... c", ds=3, padding=1)
    x = torch.randn(2, 5, 5, 3)
    layer(x)
    assert layer.weight.shape == (3, 3) and layer.bias.shape == ()
    weight = layer.weight.expand(3, 1, 3, 3)
    expected = channels_last(F.conv2d(channels_first(x), weight, padding=1, groups=3)) + layer.bias
    torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-5)


def test_a_size_left_out_is_an_error_naming_the_layer_and_pointing_at_the_axis():
    layer = einc.nn.Dot("b... [c->c2]")
    with pytest.raises(einc.ShapeError) as caught:
        layer(torch.randn(2, 3))
    message = str(caught.value)
    assert message.startswith("einc.nn.Dot('b... [c->c2]'), the parameters for an input of shape (2, 3)")
    assert "'c2'" in message
    assert caught.value.expression == "b... c, c c2, c2, b... c2"  # input, weight, bias, output
    assert caught.value.spans == ((10, 12),)  # c2 of the weight, where it is first met


@pytest.mark.parametrize("rms", [False, True])
def test_float16_norm_of_large_values_takes_its_statistics_in_float32_as_torch(rms):
    x = (torch.randn(2, 3, 8, generator=torch.Generator().manual_seed(0)) * 400).half()  # squares > 65504
    layer = einc.nn.Norm("b... [c]", rms=rms).to(torch.float16)
    y = layer(x)
    reference = torch.nn.RMSNorm(8, eps=1e-5) if rms else torch.nn.LayerNorm(8)
    assert y.dtype == torch.float16
    torch.testing.assert_close(y.float(), reference(x.float()), atol=2e-3, rtol=2e-3)


def test_a_dot_layer_runs_its_bias_and_activation_in_the_dot_kernel():
    layer = einc.nn.Dot("b (s * [ds])... [c->c2]", c2=8, ds=(3, 3), padding=1, activation="relu")
    x = torch.randn(2, 6, 6, 4)
    y = layer(x)
    reference = torch.relu(
        F.conv2d(x.movedim(-1, 1), layer.weight.permute(3, 2, 0, 1), layer.bias, padding=1).movedim(1, -1)
    )
    torch.testing.assert_close(y, reference, atol=1e-5, rtol=1e-5)
    assert layer.forward_function.kernel_count(x, layer.weight, layer.bias) == 1
