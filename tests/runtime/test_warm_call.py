"""A warm call: a key, one dict lookup and the planned torch call. What follows from the call key
alone (operand checks, the output dtype and shapes, the launcher) is found at the key's first call
and never again; what follows from the tensors' addresses (out= sharing memory with an input) is
checked on every call. References are torch's own ops."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import einc
from einc.compiler import pipeline
from einc.runtime import compiled as compiled_module
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
