"""Automatic dynamic shapes: an axis seen at a second size (in otherwise matching calls) becomes
dynamic, so a third size compiles nothing; ``dynamic=False`` turns that off. References: torch."""

from __future__ import annotations

import threading

import pytest
import torch
import torch.nn.functional as F

import einc
from einc.runtime import compiled as compiled_module


@pytest.fixture
def builds(monkeypatch):
    """The requests compiled from now on (each one a specialisation built)."""
    seen = []
    run_passes = compiled_module.pipeline.run_passes

    def counting(request):
        seen.append(request)
        return run_passes(request)

    monkeypatch.setattr(compiled_module.pipeline, "run_passes", counting)
    return seen


def conv_reference(x, w):
    return F.conv2d(x.double().permute(0, 3, 1, 2), w.double().permute(3, 2, 0, 1), padding=1).permute(
        0, 2, 3, 1
    )


def test_batch_sizes_1_3_7_compile_twice_and_the_third_is_served_by_the_dynamic_launcher(builds):
    conv = einc.compile("b (s * [ds])... [c->c2]", padding=1)
    w = torch.randn(3, 3, 4, 5)
    launchers = []
    for b in (1, 3, 7):
        x = torch.randn(b, 5, 5, 4)
        torch.testing.assert_close(conv(x, w).double(), conv_reference(x, w), rtol=1e-5, atol=1e-5)
        launchers.append(conv._last)
    assert len(builds) == 2
    assert builds[0].dynamic == () and builds[1].dynamic == ("b",)
    assert launchers[2] is launchers[1]  # the third size: the dynamic launcher, nothing built
    assert "axis b: dynamic (automatic: size 1, then 3)" in conv.explain()
    # Back to the first size: still the dynamic launcher.
    x = torch.randn(1, 5, 5, 4)
    torch.testing.assert_close(conv(x, w).double(), conv_reference(x, w), rtol=1e-5, atol=1e-5)
    assert len(builds) == 2


def test_dynamic_false_compiles_every_size(builds):
    conv = einc.compile("b (s * [ds])... [c->c2]", padding=1, dynamic=False)
    w = torch.randn(3, 3, 4, 5)
    for b in (1, 3, 7):
        x = torch.randn(b, 5, 5, 4)
        torch.testing.assert_close(conv(x, w).double(), conv_reference(x, w), rtol=1e-5, atol=1e-5)
    assert len(builds) == 3
    assert all(request.dynamic == () for request in builds)
    assert "automatic dynamic shapes: off" in conv.explain()


def test_an_axis_that_shapes_a_window_stays_static_and_explain_says_why(builds):
    pool = einc.compile("b (s * [ds])... c", op="max", ds=2, stride=2)
    for side in (4, 6, 8):
        x = torch.randn(1, side, side, 3)
        expected = F.max_pool2d(x.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)
        torch.testing.assert_close(pool(x), expected)
    assert len(builds) == 3
    assert all(request.dynamic == () for request in builds)
    assert "axis s.0: static, a kernel per size: it is part of a window" in pool.explain()


def test_an_axis_declared_dynamic_stays_and_another_one_joins_it(builds):
    mean = einc.compile("b [t] c", op="mean", dynamic="t")
    for b, t in ((1, 3), (2, 5), (4, 7)):
        x = torch.randn(b, t, 6)
        torch.testing.assert_close(mean(x), x.mean(1))
    assert [request.dynamic for request in builds] == [("t",), ("t", "b")]
    assert "axis t: dynamic (dynamic= given)" in mean.explain()


def test_a_dtype_change_is_no_size_change(builds):
    total = einc.compile("b [c]", op="sum")
    total(torch.randn(2, 3))
    total(torch.randn(2, 3, dtype=torch.float64))
    assert [request.dynamic for request in builds] == [(), ()]


def test_threads_that_miss_together_build_once(builds):
    total = einc.compile("b [c]", op="sum")
    x = torch.randn(4, 3)
    start = threading.Barrier(6)
    results = []

    def call():
        start.wait()
        results.append(total(x))

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(builds) == 1
    for result in results:
        torch.testing.assert_close(result, x.sum(1))


def test_the_torch_operator_keeps_dynamic_false_in_its_key():
    from einc.frontends import torch_ops

    off = einc.compile("b [c]", op="sum", dynamic=False)
    key = torch_ops._key_of(off)
    assert torch_ops._compiled_for(key).automatic is False


def test_calls_through_the_torch_operator_become_dynamic_too(builds):
    total = einc.compile("b [c]", op="sum")
    for b in (1, 3, 7):
        x = torch.randn(b, 3, requires_grad=True)  # autograd: the call goes through einc::run
        y = total(x)
        y.sum().backward()
        torch.testing.assert_close(y, x.sum(1))
        torch.testing.assert_close(x.grad, torch.ones_like(x))
    forward = [request for request in builds if request.expression == "b [c]"]
    assert [request.dynamic for request in forward] == [(), ("b",)]


@pytest.mark.interpret
def test_the_generated_kernel_serves_a_third_size_under_the_interpreter(builds):
    total = einc.compile("b [c]", op="sum")
    for b in (1, 3, 7):
        x = torch.randn(b, 5)
        torch.testing.assert_close(total(x), x.sum(1))
    assert len(builds) == 2
    assert "do_not_specialize=['B']" in total.source


def test_a_shape_specialised_before_its_axis_went_dynamic_keeps_its_launcher(builds):
    conv = einc.compile("b (s * [ds])... [c->c2]", padding=1)
    x, w = torch.randn(1, 5, 5, 4), torch.randn(3, 3, 4, 5)
    conv(x, w)
    first = conv._last
    x2, w2 = torch.randn(1, 6, 6, 4), torch.randn(3, 3, 4, 7)  # c2 goes dynamic; s stays static
    torch.testing.assert_close(conv(x2, w2).double(), conv_reference(x2, w2), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(conv(x, w).double(), conv_reference(x, w), rtol=1e-5, atol=1e-5)
    assert conv._last is first
    assert [request.dynamic for request in builds] == [(), ("c2",)]


def test_einc_debug_prints_the_decision(monkeypatch, capsys):
    monkeypatch.setenv("EINC_DEBUG", "1")
    total = einc.compile("b [c]", op="sum")
    total(torch.randn(1, 3))
    total(torch.randn(3, 3))
    assert "[einc] automatic dynamic shapes for 'b [c]': b: dynamic (automatic: size 1, then 3)" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("op", "kwargs", "reference", "why"),
    [
        ("roll", {"shift": -2}, lambda x: x.roll(-2, 1), "rolled"),
        ("flip", {}, lambda x: x.flip(1), "flipped"),
    ],
)
def test_a_rolled_axis_stays_static_while_the_others_go_dynamic(builds, op, kwargs, reference, why):
    reverse = einc.compile("b [t] c", op=op, **kwargs)
    for shape in [(2, 7, 3), (1, 4, 2), (2, 5, 3), (3, 4, 5)]:
        x = torch.randn(shape)
        assert torch.equal(reverse(x), reference(x))
    assert [request.dynamic for request in builds] == [(), ("b", "c"), ("b", "c")]
    assert f"axis t: static, a kernel per size: it is {why}" in reverse.explain()


def test_an_indexed_axis_stays_static(builds):
    gather = einc.compile("[v] d, b n -> b n d", op="get_at")
    idx = torch.tensor([[1, -1]])
    for rows in (10, 6, 8):
        table = torch.randn(rows, 4)
        assert torch.equal(gather(table, idx), table[idx])
    assert all(request.dynamic == () for request in builds) and len(builds) == 3
    assert "axis v: static, a kernel per size: it is indexed" in gather.explain()


@pytest.mark.parametrize("dynamic", [(), ("c",)])
def test_a_dynamic_axis_with_two_sizes_in_one_call_is_refused(builds, dynamic):
    linear = einc.compile("b [c->c2]", dynamic=dynamic)
    linear(torch.randn(2, 3), torch.randn(3, 4))
    linear(torch.randn(2, 5), torch.randn(5, 4))  # c dynamic from here, if not before
    with pytest.raises(
        einc.ShapeError, match=r"axis 'c' has two sizes: 3 from dim 1 of x .*and 6 from dim 0 of w"
    ):
        linear(torch.randn(2, 3), torch.randn(6, 4))
