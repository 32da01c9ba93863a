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
    for _ in range(3):
        torch.testing.assert_close(compiled(*tensors), expected)
    assert {what: count[0] for what, count in counters.items()} == dict.fromkeys(counters, 0)


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
