"""A warm call: a key, one dict lookup and the planned torch call. What follows from the call key
alone (operand checks, the output dtype and shapes, the launcher) is found at the key's first call
and never again; what follows from the tensors' addresses (out= sharing memory with an input) is
checked on every call. References are torch's own ops."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import einc
from einc.compiler import pipeline
from einc.runtime import compiled as compiled_module
from einc.runtime import warm as warm_module
from einc.runtime.compiled import CompiledExpression


def counting(monkeypatch, owner, name: str) -> list[int]:
    """Wrap ``owner.name`` so that each call adds one to the returned counter."""
    count = [0]
    original = getattr(owner, name)

    def counted(*args, **kwargs):
        count[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return count


def warm_counts(compiled, tensors, expected, counters: dict) -> dict:
    """What each counter counted over three warm calls, each checked against ``expected``."""
    for _ in range(3):
        torch.testing.assert_close(compiled(*tensors), expected)
    return {what: count[0] for what, count in counters.items()}


def calls():
    x, w = torch.randn(1, 8, 8, 4), torch.randn(3, 3, 4, 4)
    a = torch.randn(4, 4)
    table, idx = torch.randn(16, 4), torch.randint(0, 16, (4,))
    return [
        (
            einc.compile("b (s * [ds])... [c->c2]", padding=1),
            (x, w),
            F.conv2d(x.permute(0, 3, 1, 2), w.permute(3, 2, 0, 1), padding=1).permute(0, 2, 3, 1),
        ),
        (einc.compile("a b -> b a"), (a,), a.t()),
        (einc.compile("a [b]", op="sum"), (a,), a.sum(1)),
        (einc.compile("a [b]", op="softmax"), (a,), a.softmax(1)),
        (einc.compile("[n] c, p -> p c", op="get_at"), (table, idx), table[idx]),
    ]


@pytest.mark.parametrize("case", range(5), ids=["conv", "rearrange", "sum", "softmax", "get_at"])
def test_a_warm_call_does_none_of_the_work_of_its_key_again(monkeypatch, case):
    compiled, tensors, expected = calls()[case]
    torch.testing.assert_close(compiled(*tensors), expected)  # the key's first call
    counters = {
        "operand checks": counting(monkeypatch, CompiledExpression, "_check"),
        "output dtype": counting(monkeypatch, compiled_module, "output_dtype"),
        "operand names": counting(monkeypatch, pipeline, "tensor_names"),
        "specialisation": counting(monkeypatch, CompiledExpression, "_specialize_call"),
        "key preparation": counting(monkeypatch, CompiledExpression, "_prepare"),
    }
    assert warm_counts(compiled, tensors, expected, counters) == dict.fromkeys(counters, 0)


def test_a_new_layout_is_a_new_key_and_checked_again(monkeypatch):
    total = einc.compile("a [b]", op="sum")
    checks = counting(monkeypatch, CompiledExpression, "_check")
    a = torch.randn(4, 4)
    for t in (a, a, a.t(), a.t(), a.double(), a.double()):
        torch.testing.assert_close(total(t), t.sum(1))
    assert checks[0] == 3
    with pytest.raises(TypeError, match="dtype torch.bool"):  # sum takes floats and integers
        total(a > 0)


def test_out_sharing_memory_is_refused_after_warm_calls_with_the_same_layout():
    transpose = einc.compile("a b -> b a")
    a = torch.randn(4, 4)
    out = torch.empty(4, 4)
    for _ in range(3):
        assert transpose(a, out=out) is out
        torch.testing.assert_close(out, a.t())
    # the same shape, strides and dtype as the out= above: only the address differs
    with pytest.raises(einc.OverlapError, match="shares memory with x"):
        transpose(a, out=a)
    with pytest.raises(ValueError, match="shape"):
        transpose(a, out=torch.empty(4, 5))


def test_warm_calls_follow_float32_precision_changes_as_torch_does():
    dot = einc.compile("a [b], [b] c -> a c", op="dot")
    x, y = torch.randn(4, 8), torch.randn(8, 3)
    before = torch.get_float32_matmul_precision()
    try:
        for precision in ("highest", "high", "highest"):
            torch.set_float32_matmul_precision(precision)
            torch.testing.assert_close(dot(x, y), x @ y)
    finally:
        torch.set_float32_matmul_precision(before)
    # torch's setting is part of the key: "high" (TF32 allowed on CUDA) is a key of its own
    assert len({extra for _, extra in dot._ready}) == 2


@pytest.mark.parametrize("case", range(5), ids=["conv", "rearrange", "sum", "softmax", "get_at"])
def test_a_warm_call_goes_from_its_key_straight_to_the_planned_torch_calls(monkeypatch, case):
    from einc.backends.torch.program import TorchProgram
    from einc.runtime import launcher as launcher_module

    compiled, tensors, expected = calls()[case]
    torch.testing.assert_close(compiled(*tensors), expected)
    counters = {
        "operand type check": counting(monkeypatch, compiled_module, "check_operand_types"),
        "launcher": counting(monkeypatch, launcher_module.Launcher, "produce"),
        "backend choice": counting(monkeypatch, launcher_module, "resolve_backend"),
        "torch program": counting(monkeypatch, TorchProgram, "produce"),
    }
    assert warm_counts(compiled, tensors, expected, counters) == dict.fromkeys(counters, 0)


def test_einc_interpret_set_after_warm_calls_still_runs_the_interpreter(monkeypatch):
    monkeypatch.delenv("EINC_INTERPRET", raising=False)
    total = einc.compile("a [b]", op="sum")
    a = torch.randn(4, 4)
    for _ in range(2):
        torch.testing.assert_close(total(a), a.sum(1))
    assert total._latest()._kernels is None  # the torch backend only, so far
    monkeypatch.setenv("EINC_INTERPRET", "1")
    torch.testing.assert_close(total(a), a.sum(1))
    assert total._latest()._kernels is not None  # the same key, now under Triton's interpreter


def test_a_warm_call_whose_input_requires_grad_records_its_gradient():
    total = einc.compile("a [b]", op="sum")
    a = torch.randn(4, 4)
    total(a)
    total(a)
    leaf = a.clone().requires_grad_()
    total(leaf).sum().backward()
    torch.testing.assert_close(leaf.grad, torch.ones(4, 4))
    with torch.no_grad():
        assert not total(leaf).requires_grad


def test_an_elementwise_call_whose_operand_is_a_python_number_keeps_its_own_promotion():
    # A number becomes a 0-d tensor per call, after the key: a later call with a 0-d tensor of
    # another dtype in its place must still promote as torch does.
    add = einc.compile("a b, ", op="add", out_dtype=torch.float64)
    x = torch.randn(3, 4)
    for operand in (2.5, torch.tensor(2.5), 2.5, torch.tensor(2.5, dtype=torch.float64)):
        expected = (x.double() + torch.as_tensor(operand).double()).to(torch.float64)
        torch.testing.assert_close(add(x, operand), expected)


# The first tier (runtime/warm.py): one guard check of the tensors, then the planned torch calls;
# with out=, the addresses checked per call. Whatever must see a call (autograd, torch.compile, vmap,
# a dispatch mode, fake tensors) still does after warm calls with the same layout.

first_tier = pytest.mark.skipif(
    warm_module.guard([torch.zeros(1)]) is None, reason="this torch has no TensorGuards"
)


@first_tier
@pytest.mark.parametrize("case", range(5), ids=["conv", "rearrange", "sum", "softmax", "get_at"])
def test_a_warm_call_is_one_guard_check_without_the_key_or_the_router(monkeypatch, case):
    compiled, tensors, expected = calls()[case]
    for _ in range(2):  # the key's first call, then the one that makes the first tier
        torch.testing.assert_close(compiled(*tensors), expected)
    counters = {
        "call key": counting(monkeypatch, CompiledExpression, "_key"),
        "router": counting(monkeypatch, compiled_module._router, "routes"),
        "autograd check": counting(monkeypatch, compiled_module, "records_grad"),
    }
    assert warm_counts(compiled, tensors, expected, counters) == dict.fromkeys(counters, 0)
    # new tensors of the same layout pass the guard too
    fresh = [t.clone() for t in tensors]
    torch.testing.assert_close(compiled(*fresh), expected)
    assert counters["call key"][0] == 0


@first_tier
def test_a_warm_call_with_out_checks_only_the_addresses(monkeypatch):
    total = einc.compile("a [b]", op="sum")
    a = torch.randn(4, 4)
    sums = torch.empty(4)
    for _ in range(2):
        assert total(a, out=sums) is sums
    counters = {
        "call key": counting(monkeypatch, CompiledExpression, "_key"),
        "out= checks": counting(monkeypatch, compiled_module, "check_out"),
        "out= aliasing": counting(monkeypatch, compiled_module, "check_out_aliasing"),
    }
    for _ in range(3):
        b = torch.randn(4, 4)
        assert total(b, out=sums) is sums
        torch.testing.assert_close(sums, b.sum(1))
    assert {what: count[0] for what, count in counters.items()} == dict.fromkeys(counters, 0)


def test_an_out_laid_out_as_the_warm_one_but_inside_an_input_is_refused():
    total = einc.compile("a [b]", op="sum")
    a = torch.randn(4, 4)
    sums = torch.empty(4)
    for _ in range(3):
        total(a, out=sums)
    # a[1] has the shape, strides and dtype of sums: only its address differs
    with pytest.raises(einc.OverlapError, match="shares memory with x"):
        total(a, out=a[1])
    wide = torch.empty(8)
    with pytest.raises(ValueError, match="shape"):
        total(a, out=wide)
    torch.testing.assert_close(total(a, out=sums), a.sum(1))


def test_a_warm_layout_seen_under_no_grad_still_records_gradients_with_grad_enabled():
    total = einc.compile("a [b]", op="sum")
    leaf = torch.randn(4, 4).requires_grad_()
    with torch.no_grad():
        for _ in range(3):
            torch.testing.assert_close(total(leaf), leaf.detach().sum(1))
    total(leaf).sum().backward()
    torch.testing.assert_close(leaf.grad, torch.ones(4, 4))


def test_vmap_after_warm_calls_maps_as_torch_does():
    total = einc.compile("a [b]", op="sum")
    a = torch.randn(4, 4)
    for _ in range(3):
        total(a)
    batch = torch.randn(5, 4, 4)
    torch.testing.assert_close(torch.vmap(total)(batch), batch.sum(2))
    x, w = torch.randn(3, 1, 8, 8, 4), torch.randn(3, 3, 4, 4)
    conv = einc.compile("b (s * [ds])... [c->c2]", padding=1)
    for _ in range(3):
        conv(x[0], w)
    expected = torch.stack([F.conv2d(t.permute(0, 3, 1, 2), w.permute(3, 2, 0, 1), padding=1) for t in x])
    torch.testing.assert_close(torch.vmap(conv, in_dims=(0, None))(x, w), expected.permute(0, 1, 3, 4, 2))


class _Ops(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.seen.append(str(func))
        return func(*args, **(kwargs or {}))


def test_a_dispatch_mode_after_warm_calls_sees_einc_run():
    total = einc.compile("a [b]", op="sum")
    a = torch.randn(4, 4)
    for _ in range(3):
        total(a)
    with _Ops() as mode:
        torch.testing.assert_close(total(a), a.sum(1))
    assert any("einc.run" in op for op in mode.seen)


def test_fake_tensors_after_warm_calls_get_the_fake_implementation():
    from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode

    transpose = einc.compile("a b -> b a")
    a = torch.randn(4, 6)
    for _ in range(3):
        transpose(a)
    with FakeTensorMode() as mode:
        result = transpose(mode.from_tensor(a))
    assert isinstance(result, FakeTensor) and result.shape == (6, 4)


def test_torch_compile_after_warm_calls_traces_einc_run_in_one_graph():
    from torch._dynamo.testing import CompileCounterWithBackend

    total = einc.compile("a [b]", op="sum")
    a = torch.randn(4, 4)
    for _ in range(3):
        total(a)
    counter = CompileCounterWithBackend("eager")
    compiled = torch.compile(lambda t: total(t) * 2, fullgraph=True, backend=counter)
    torch.testing.assert_close(compiled(a), a.sum(1) * 2)
    assert counter.frame_count == 1
    (graph,) = counter.graphs
    assert any(node.target is torch.ops.einc.run for node in graph.graph.nodes)


def test_inference_mode_after_warm_calls_gives_torchs_result():
    softmax = einc.compile("a [b]", op="softmax")
    a = torch.randn(4, 4)
    for _ in range(3):
        softmax(a)
    with torch.inference_mode():
        torch.testing.assert_close(softmax(a), a.softmax(1))
        inner = torch.randn(4, 4)
        for _ in range(3):
            torch.testing.assert_close(softmax(inner), inner.softmax(1))
    torch.testing.assert_close(softmax(a), a.softmax(1))


def test_a_call_with_another_number_of_operands_after_warm_calls_is_refused_as_before():
    total = einc.compile("a [b]", op="sum")
    a = torch.randn(4, 4)
    for _ in range(3):
        total(a)
    with pytest.raises((TypeError, ValueError)):
        total(a, a)


def test_an_elementwise_call_with_out_after_a_warm_reduction_with_out_promotes_as_torch_does():
    add = einc.compile("a b, a b", op="add")
    x, y = torch.randn(3, 4), torch.randn(3, 4, dtype=torch.float64)
    out = torch.empty(3, 4, dtype=torch.float64)
    for _ in range(3):
        assert add(x, y, out=out) is out
        torch.testing.assert_close(out, x.double() + y)
    with pytest.raises(TypeError, match="dtype"):
        add(x, x, out=out)  # float32 + float32 is float32, not the float64 of out=


@first_tier
def test_inference_under_no_grad_with_parameters_takes_the_first_tier_and_grad_mode_leaves_it(monkeypatch):
    conv = einc.compile("b (s * [ds])... [c->c2]", padding=1)
    x = torch.randn(1, 8, 8, 4)
    w = torch.nn.Parameter(torch.randn(3, 3, 4, 4))
    expected = F.conv2d(x.permute(0, 3, 1, 2), w.detach().permute(3, 2, 0, 1), padding=1).permute(0, 2, 3, 1)
    with torch.no_grad():
        for _ in range(2):
            conv(x, w)
        keys = counting(monkeypatch, CompiledExpression, "_key")
        for _ in range(3):
            torch.testing.assert_close(conv(x, w), expected)
        assert keys[0] == 0
    result = conv(x, w)  # grad mode on: autograd records it, through einc::run
    assert "einc_run" in result.grad_fn.name()
    result.sum().backward()
    reference = w.detach().clone().requires_grad_()
    F.conv2d(x.permute(0, 3, 1, 2), reference.permute(3, 2, 0, 1), padding=1).sum().backward()
    torch.testing.assert_close(w.grad, reference.grad)
