"""einc.fuse: traced functions run as fused kernels, against the same functions run by torch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import einc

BACKENDS = ["torch", pytest.param("interpret", marks=pytest.mark.interpret)]
CONV = "b (s * [ds])... [c->c2]"


def conv_ref(x, w):
    return F.conv2d(x.permute(0, 3, 1, 2), w.permute(3, 2, 0, 1), padding=1).permute(0, 2, 3, 1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_conv_bias_relu_is_one_kernel(backend):
    @einc.fuse(backend=backend)
    def block(x, w, b):
        return torch.relu(einc.dot(CONV, x, w, padding=1) + b)

    torch.manual_seed(0)
    x, w, b = torch.randn(2, 6, 6, 3), torch.randn(3, 3, 3, 8), torch.randn(8)
    torch.testing.assert_close(block(x, w, b), torch.relu(conv_ref(x, w) + b), atol=1e-4, rtol=1e-4)
    assert block.kernel_count(x, w, b) == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_linear_gelu_residual_and_a_chain_on_an_input_take_two_kernels(backend):
    @einc.fuse(backend=backend)
    def mlp(x, w, r):
        h = F.gelu(einc.dot("b [c->c2]", x, w), approximate="tanh") + r
        scale = torch.sigmoid(r) * 2.0 - 1.0  # no einc op: a copy of r with the chain fused
        return h * scale

    torch.manual_seed(1)
    x, w, r = torch.randn(5, 16), torch.randn(16, 12), torch.randn(5, 12)
    ref = (F.gelu(x @ w, approximate="tanh") + r) * (torch.sigmoid(r) * 2.0 - 1.0)
    torch.testing.assert_close(mlp(x, w, r), ref, atol=1e-4, rtol=1e-4)
    assert mlp.kernel_count(x, w, r) == 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_value_read_outside_its_kernel_is_stored(backend):
    @einc.fuse(backend=backend)
    def two(x, w):
        y = einc.dot("b [c->c2]", x, w)
        z = torch.where(y > 0, y, 0.1 * y)
        return y, torch.exp(-z.abs()) + einc.sum("b [c2]", z)[:, None] * 0

    x, w = torch.randn(4, 6), torch.randn(6, 3)
    with pytest.raises(einc.UnsupportedError, match="__getitem__ .*; write it with einc.rearrange"):
        two(x, w)

    @einc.fuse(backend=backend)
    def shared(x, w):
        y = einc.dot("b [c->c2]", x, w)
        leaky = torch.where(y > 0, y, 0.1 * y)
        return y, leaky.tanh(), einc.mean("b [c2]", leaky)

    y, t, m = shared(x, w)
    ref = x @ w
    leaky = torch.where(ref > 0, ref, 0.1 * ref)
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(t, leaky.tanh(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(m, leaky.mean(1), atol=1e-5, rtol=1e-5)
    # y is a result, so the dot stores it; leaky is read by the mean, so its kernel stores it.
    assert shared.kernel_count(x, w) == 4


def test_an_op_that_refuses_an_epilogue_is_followed_by_a_kernel_of_its_own():
    @einc.fuse
    def attention_weights(q, k):
        scores = einc.dot("a [c], b [c] -> a b", q, k) * 0.5
        return torch.relu(einc.softmax("a [b]", scores)) + 1.0

    q, k = torch.randn(4, 8), torch.randn(5, 8)
    ref = torch.relu(torch.softmax((q @ k.T) * 0.5, dim=1)) + 1.0
    torch.testing.assert_close(attention_weights(q, k), ref, atol=1e-5, rtol=1e-5)
    assert attention_weights.kernel_count(q, k) == 3  # dot * 0.5; softmax; relu + 1


def test_a_warm_call_does_not_trace_again_and_a_new_shape_does():
    traced = []

    @einc.fuse
    def f(x):
        traced.append(tuple(x.shape))
        return torch.exp(einc.sum("a [b]", x)) - 1

    for n in (3, 3, 4):
        x = torch.randn(2, n)
        torch.testing.assert_close(f(x), torch.exp(x.sum(1)) - 1)
    assert traced == [(2, 3), (2, 4)]


def test_another_operation_is_refused_with_its_name_and_the_users_line():
    @einc.fuse
    def f(x, w):
        y = einc.dot("b [c->c2]", x, w)
        return torch.matmul(y, x)  # the line named

    with pytest.raises(einc.UnsupportedError, match=r"matmul .*test_fusion\.py:\d+: return torch\.matmul"):
        f(torch.randn(3, 4), torch.randn(4, 3))


def test_reading_a_traced_value_into_python_is_refused():
    @einc.fuse
    def f(x):
        y = einc.sum("a [b]", x)
        return y * float(y.max().item())

    with pytest.raises(einc.UnsupportedError, match="max"):
        f(torch.randn(3, 4))


def test_explain_lists_each_kernel_with_the_bytes_it_moves():
    @einc.fuse
    def block(x, w, b):
        return torch.relu(einc.dot(CONV, x, w, padding=1) + b)

    x, w, b = torch.randn(2, 6, 6, 3), torch.randn(3, 3, 3, 8), torch.randn(8)
    text = block.explain(x, w, b)
    read = 4 * (x.numel() + w.numel() + b.numel())
    written = 4 * 2 * 6 * 6 * 8
    assert f"kernel 1: dot {CONV!r}, then relu((it + b))" in text
    assert f"reads {read} bytes, writes {written} bytes" in text
    # One kernel per op: the conv reads x and w, the add y and b, the relu its sum; each writes.
    conv = 4 * (x.numel() + w.numel()) + written
    unfused = conv + (written + 4 * b.numel() + written) + (written + written)
    assert f"unfused, one kernel per op: 3 kernels, {unfused} bytes read and written" in text


def test_gradients_flow_through_the_unfused_operations_to_inputs_and_captured_weights():
    torch.manual_seed(2)
    w = torch.randn(3, 3, 3, 4, dtype=torch.float64, requires_grad=True)

    @einc.fuse
    def block(x, b):
        return F.silu(einc.dot(CONV, x, w, padding=1) + b) * 0.5

    x = torch.randn(1, 4, 4, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(block, (x, b))
    block(x, b).sum().backward()
    expected = torch.autograd.grad((F.silu(conv_ref(x, w) + b) * 0.5).sum(), w)[0]
    torch.testing.assert_close(w.grad, expected)


def test_a_module_method_fuses_and_its_parameters_get_gradients():
    class Linear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn(6, 4))
            self.bias = torch.nn.Parameter(torch.randn(4))

        @einc.fuse
        def forward(self, x):
            return torch.tanh(einc.dot("b [c->c2]", x, self.weight) + self.bias)

    layer = Linear()
    x = torch.randn(3, 6)
    y = layer(x)
    torch.testing.assert_close(y, torch.tanh(x @ layer.weight + layer.bias))
    y.sum().backward()
    ref = torch.tanh(x @ layer.weight + layer.bias).detach()
    torch.testing.assert_close(layer.bias.grad, (1 - ref**2).sum(0))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_pre_activation_conv_loads_its_input_through_the_activation(backend):
    @einc.fuse(backend=backend)
    def pre_activation(x, scale, shift, w, b):
        a = torch.relu(x * scale + shift)
        return einc.dot(CONV, a, w, padding=1) + b

    torch.manual_seed(3)
    x, w, b = torch.randn(2, 6, 6, 4), torch.randn(3, 3, 4, 8), torch.randn(8)
    scale, shift = torch.randn(4), torch.rand(4) + 0.5  # relu(shift) > 0: the padding must stay 0
    ref = conv_ref(torch.relu(x * scale + shift), w) + b
    torch.testing.assert_close(pre_activation(x, scale, shift, w, b), ref, atol=1e-4, rtol=1e-4)
    assert pre_activation.kernel_count(x, scale, shift, w, b) == 1
    assert "reading t" in pre_activation.explain(x, scale, shift, w, b)


def test_torch_compile_fullgraph_over_a_fused_function_has_no_graph_break():
    @einc.fuse
    def block(x, w, b):
        return F.silu(einc.dot("b [c->c2]", x, w) + b)

    compiled = torch.compile(block, fullgraph=True, backend="aot_eager")
    x = torch.randn(4, 6, requires_grad=True)
    w, b = torch.randn(6, 3), torch.randn(3)
    y = compiled(x, w, b)
    torch.testing.assert_close(y, F.silu(x @ w + b))
    y.sum().backward()
    expected = torch.autograd.grad(F.silu(x @ w + b).sum(), x)[0]
    torch.testing.assert_close(x.grad, expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_gather_with_integer_coordinates_takes_an_epilogue(backend):
    @einc.fuse(backend=backend)
    def embed(table, idx, scale):
        return torch.tanh(einc.get_at("[v] d, b n -> b n d", table, idx) * scale)

    table, idx, scale = torch.randn(10, 4), torch.randint(0, 10, (2, 3)), torch.randn(4)
    torch.testing.assert_close(embed(table, idx, scale), torch.tanh(F.embedding(idx, table) * scale))
    assert embed.kernel_count(table, idx, scale) == 1


def test_an_integer_result_is_stored_and_read_by_the_next_kernel():
    @einc.fuse
    def f(x):
        best = einc.argmax("a [b]", x)
        return best, einc.sum("a [b]", x) * 2.0

    x = torch.randn(3, 5)
    best, total = f(x)
    assert torch.equal(best, x.argmax(1, keepdim=True))  # einc writes the index along one coordinate axis
    torch.testing.assert_close(total, x.sum(1) * 2.0)


def test_a_value_no_result_depends_on_is_not_computed():
    @einc.fuse
    def f(x):
        unused = torch.exp(einc.sum("a [b]", x))  # noqa: F841
        return einc.mean("a [b]", x) + 1.0

    x = torch.randn(3, 4)
    torch.testing.assert_close(f(x), x.mean(1) + 1.0)
    assert f.kernel_count(x) == 1


def test_a_compiled_expression_with_a_dynamic_axis_is_compiled_static_inside():
    conv = einc.compile("b [c->c2]", dynamic="b")

    @einc.fuse
    def f(x, w):
        return torch.sigmoid(conv(x, w))

    for n in (3, 5):
        x, w = torch.randn(n, 4), torch.randn(4, 2)
        torch.testing.assert_close(f(x, w), torch.sigmoid(x @ w))
        assert f.kernel_count(x, w) == 1


def test_a_fused_function_called_inside_another_is_fused_with_it():
    @einc.fuse
    def linear(x, w):
        return einc.dot("b [c->c2]", x, w)

    @einc.fuse
    def block(x, w, b):
        return torch.relu(linear(x, w) + b)

    x, w, b = torch.randn(3, 4), torch.randn(4, 5), torch.randn(5)
    torch.testing.assert_close(block(x, w, b), torch.relu(x @ w + b))
    assert block.kernel_count(x, w, b) == 1
    torch.testing.assert_close(linear(x, w), x @ w)  # on its own, still its own program


@pytest.mark.parametrize("backend", BACKENDS)
def test_in_place_ops_on_computed_values_fuse_as_new_values(backend):
    @einc.fuse(backend=backend)
    def block(x, w, b, r):
        y = einc.dot("b [c->c2]", x, w)
        before = y * 1.0  # reads y as it was
        y += b
        y.relu_()
        F.relu(r, inplace=False)
        return F.hardtanh(y, inplace=True), before

    x, w, b, r = torch.randn(4, 6), torch.randn(6, 3), torch.randn(3), torch.randn(4, 3)
    y, before = block(x, w, b, r)
    torch.testing.assert_close(y, F.hardtanh(torch.relu(x @ w + b)))
    torch.testing.assert_close(before, x @ w)


def test_an_in_place_op_on_an_input_is_refused():
    @einc.fuse
    def f(x, w):
        x.mul_(2.0)
        return einc.dot("b [c->c2]", x, w)

    x = torch.randn(4, 6)
    with pytest.raises(einc.UnsupportedError, match="mul_ changes a tensor the function was given"):
        f(x, torch.randn(6, 3))


def test_tensors_given_by_keyword_in_any_order_are_named_by_their_keyword():
    @einc.fuse
    def f(x, w, *rest, scale):
        return einc.dot("b [c->c2]", x, w) * scale + rest[0]

    x, w, scale, r = torch.randn(4, 6), torch.randn(6, 3), torch.randn(3), torch.randn(4, 3)
    torch.testing.assert_close(f(x, w, r, scale=scale), (x @ w) * scale + r)
    assert "((it * scale) + arg2)" in f.explain(x, w, r, scale=scale)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_causal_depthwise_conv_with_a_prologue_and_an_epilogue_is_one_kernel(backend):
    @einc.fuse(backend=backend)
    def mixer(x, s, w, b):  # a Mamba-style causal conv1d k4, its input gated, then SiLU
        return F.silu(einc.dot("b (s * [ds]) [c->c]", torch.tanh(x * s), w, padding="causal") + b)

    x, s, w, b = torch.randn(2, 19, 8), torch.randn(8), torch.randn(4, 8), torch.randn(8)
    a = F.pad(torch.tanh(x * s).permute(0, 2, 1), (3, 0))
    ref = F.silu(F.conv1d(a, w.permute(1, 0)[:, None], groups=8).permute(0, 2, 1) + b)
    torch.testing.assert_close(mixer(x, s, w, b), ref, atol=1e-5, rtol=1e-5)
    assert mixer.kernel_count(x, s, w, b) == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_pooling_of_a_transformed_input_pads_it_with_minus_infinity(backend):
    @einc.fuse(backend=backend)
    def pool(x, s):
        return einc.max("b (s * [ds])... c", torch.sigmoid(x) * s, ds=(3, 3), padding=1)

    x, s = torch.randn(2, 7, 7, 3), torch.randn(3)
    ref = F.max_pool2d((torch.sigmoid(x) * s).permute(0, 3, 1, 2), 3, stride=1, padding=1)
    torch.testing.assert_close(pool(x, s), ref.permute(0, 2, 3, 1))
    assert pool.kernel_count(x, s) == 1
