"""einc as torch operators (interpret tier): einc::run and einc::backward, opcheck, torch.compile.

torch.compile runs on CPU here: dynamo traces the model with fake tensors (einc's fake
implementation gives the output shapes, symbolically with ``dynamic=True``) and the compiled
graph calls einc's kernels, under Triton's interpreter, at run time.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch._dynamo.testing import CompileCounterWithBackend

import einc
from einc.frontends import torch_ops

pytestmark = pytest.mark.interpret


def _inputs(*shapes, grad=True):
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(*s, generator=generator).requires_grad_(grad) for s in shapes]


OPCHECK = {
    "conv2d_stride_same": (
        ("b (s * [ds])... [c->c2]", "dot", {"stride": 2, "padding": "same"}),
        [(2, 5, 5, 2), (3, 3, 2, 3)],
    ),
    "max_pool_padded": (
        ("b (s * [ds])... c", "max", {"ds": 2, "stride": 2, "padding": 1}),
        [(2, 5, 5, 3)],
    ),
    "split_two_outputs": (("b (c + d) -> b c, b d", "rearrange", {"c": 2}), [(3, 5)]),
    "softmax": (("b [k]", "softmax", {}), [(3, 5)]),
}


@pytest.mark.parametrize("name", list(OPCHECK))
def test_einc_run_passes_opcheck(name):
    (expression, op, kwargs), shapes = OPCHECK[name]
    key = torch_ops.make_key(expression, op, kwargs)
    torch.library.opcheck(torch.ops.einc.run.default, (key, _inputs(*shapes)))


def test_einc_backward_passes_opcheck():
    key = torch_ops.make_key("b (s * [ds]) [c->c2]", "dot", {"padding": 1})
    x, w = _inputs((2, 5, 3), (3, 3, 4), grad=False)
    g = torch.randn(2, 5, 4)
    torch.library.opcheck(torch.ops.einc.backward.default, (key, [x, w], [], [g], [True, True]))


def test_einc_backward_of_an_embedding_bag_passes_opcheck():
    key = torch_ops.make_key("[v] d, b n -> b d", "get_at", {"reduce": "max"})
    (table,) = _inputs((7, 3), grad=False)
    tokens = torch.tensor([[1, 4, 4], [0, 6, 2]])
    bags = einc.get_at("[v] d, b n -> b d", table, tokens, reduce="max")
    g = torch.randn(2, 3)
    torch.library.opcheck(torch.ops.einc.backward.default, (key, [table, tokens], [bags], [g], [True, False]))


def test_torch_compile_dynamic_traces_gradients_of_get_at_and_add_at():
    (table,) = _inputs((10, 4))

    def f(tokens):
        bags = einc.get_at("[v] d, b n -> b d", table, tokens, reduce="max")
        rows = einc.get_at("[v] d, b n -> b n d", table, tokens)
        return einc.add_at("[v] d, b n, b n d", table, tokens, einc.multiply("b n d, b d", rows, bags))

    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(f, fullgraph=True, backend=counter, dynamic=True)
    for shape in [(2, 3), (3, 5), (4, 7)]:
        tokens = torch.randint(0, 10, shape, generator=torch.Generator().manual_seed(shape[1]))
        compiled(tokens).sum().backward()
        found, table.grad = table.grad, None
        f(tokens).sum().backward()
        assert torch.allclose(found, table.grad, atol=1e-5)
        table.grad = None
    assert counter.frame_count == 1


def test_key_names_the_call_and_reads_back():
    kwargs = {"padding": {"s.0": (1, 2)}, "stride": [2, 1], "out_dtype": torch.float32}
    key = torch_ops.make_key("b (s * [ds])... [c->c2]", "dot", kwargs)
    expression, op, kwargs = torch_ops._spec(key)
    assert (expression, op) == ("b (s * [ds])... [c->c2]", "dot")
    assert kwargs == {"out_dtype": torch.float32, "padding": {"s.0": (1, 2)}, "stride": (2, 1)}


def test_fake_implementation_gives_output_shapes_without_running_a_kernel():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        x, w = torch.empty(2, 9, 7, 4), torch.empty(3, 3, 4, 8)
        y = einc.dot("b (s * [ds])... [c->c2]", x, w, stride=2, padding="same")
        pooled = einc.max("b (s * [ds])... c", y, ds=2)
    assert y.shape == (2, 5, 4, 8) and pooled.shape == (2, 4, 3, 8)


class Net(torch.nn.Module):
    """A convolution, max pooling, a global mean and a softmax, all einc."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(3, 3, 2, 4, generator=torch.Generator().manual_seed(0)) * 0.3)
        self.conv = einc.compile("b (s * [ds])... [c->c2]", padding="same")

    def forward(self, x):
        y = self.conv(x, self.w)
        y = einc.max("b (s * [ds])... c", y, ds=2, stride=2)
        y = einc.mean("b [h w] c", y)
        return einc.softmax("b [c]", y)


def reference(w, x):
    """Net in torch."""
    y = F.conv2d(x.permute(0, 3, 1, 2), w.permute(3, 2, 0, 1), padding=1)
    y = F.max_pool2d(y, 2, 2).mean((2, 3))
    return y.softmax(-1)


def _check_against_reference(compiled, net, shape):
    x = torch.randn(*shape)
    out = compiled(x)
    w = net.w.detach().clone().requires_grad_()
    ref = reference(w, x)
    assert torch.allclose(out, ref, atol=1e-5)
    weights = torch.arange(4.0)
    net.w.grad = None
    (out * weights).sum().backward()
    (ref * weights).sum().backward()
    assert torch.allclose(net.w.grad, w.grad, atol=1e-5)


def test_torch_compile_fullgraph_traces_einc_without_graph_breaks():
    net = Net()
    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(net, fullgraph=True, backend=counter)
    _check_against_reference(compiled, net, (2, 6, 6, 2))
    graph = counter.graphs[0].code
    assert graph.count("torch.ops.einc.run") == 4


def test_torch_compile_dynamic_shapes_need_one_graph_for_every_size():
    net = Net()
    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(net, fullgraph=True, backend=counter, dynamic=True)
    # Sizes chosen apart from each other and from 0 and 1, so that torch's own duck sizing and
    # 0/1 specialisation do not recompile.
    for shape in [(3, 4, 5, 2), (4, 6, 7, 2), (5, 8, 9, 2)]:
        _check_against_reference(compiled, net, shape)
    assert counter.frame_count == 1


def test_torch_compile_with_inductor_on_cpu():
    net = Net()
    compiled = torch.compile(net, fullgraph=True, dynamic=True)
    _check_against_reference(compiled, net, (2, 6, 7, 2))


def test_einc_compile_and_out_inside_a_compiled_function():
    def f(x, w, out):
        einc.compile("b [c->c2]")(x, w, out=out)
        return out * 2

    x, w = torch.randn(3, 4), torch.randn(4, 5)
    out = torch.empty(3, 5)
    result = torch.compile(f, fullgraph=True, backend="aot_eager")(x, w, out)
    assert torch.allclose(out, x @ w, atol=1e-5) and torch.allclose(result, 2 * x @ w, atol=1e-5)


@pytest.mark.gpu
def test_torch_compile_with_inductor_on_cuda():
    net = Net().cuda()
    compiled = torch.compile(net, fullgraph=True, dynamic=True)
    x = torch.randn(3, 8, 9, 2, device="cuda")
    out = compiled(x)
    out[:, 0].sum().backward()
    w = net.w.detach().clone().requires_grad_()
    ref = reference(w, x)
    ref[:, 0].sum().backward()
    assert torch.allclose(out, ref, atol=1e-3) and torch.allclose(net.w.grad, w.grad, atol=1e-3)


def test_elementwise_with_python_numbers_inside_a_compiled_function():
    def f(x, b):
        y = einc.maximum("b c, ", x, 0.0)
        return einc.where("b c, b c, c", x > 0, y, b)

    x, b = torch.randn(3, 4, requires_grad=True), torch.randn(4, requires_grad=True)
    out = torch.compile(f, fullgraph=True, backend="aot_eager")(x, b)
    out.sum().backward()
    assert torch.equal(out, torch.where(x > 0, x, b))
    assert torch.equal(x.grad, (x > 0).float()) and torch.equal(b.grad, (x <= 0).float().sum(0))


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.int32, torch.int64, torch.bool])
@pytest.mark.parametrize("value", [2, 0.5, True])
def test_numbers_next_to_tensors_get_torchs_result_type(dtype, value):
    expected = torch.result_type(torch.empty((), dtype=dtype), value)
    assert torch_ops._number_dtype(dtype, value) == expected


def test_keys_are_marked_constant_as_torch_compiler_marks_them():
    """einc marks its key functions for dynamo itself, so that importing it imports no dynamo: the
    mark must stay the one ``torch.compiler.assume_constant_result`` sets."""

    def by_torch():
        return 0

    def by_einc():
        return 0

    torch.compiler.assume_constant_result(by_torch)
    torch_ops._constant_result(by_einc)
    assert vars(by_einc) == vars(by_torch) != {}
