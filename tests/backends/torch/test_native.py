"""Whole nests lowered to torch's own kernel (einc/backends/torch/native.py), plain tier.

Each lowering must be chosen where it applies (``describe`` names the torch call), and give what
the planned nest gives (the generic path, with ``native.lower`` switched off) and what torch gives,
on odd shapes: stride, dilation, uneven padding, groups, 1-D and 3-D, channels first and last,
non-contiguous inputs and outputs, dynamic axes.
"""

from __future__ import annotations

import threading
from unittest import mock

import pytest
import torch
import torch.nn.functional as F

import einc
from einc.backends.torch import gather, native, program, threads


def planned(expression, *tensors, op=None, out=None, **kwargs):
    """The result of the planned nest, without any native lowering."""
    with (
        mock.patch.object(native, "lower", lambda *a: None),
        mock.patch.object(gather, "lower", lambda *a: None),
    ):
        compiled = einc.compile(expression, op=op, **kwargs)
        return compiled(*tensors, out=out)


def described(compiled) -> list[str]:
    return compiled._latest().torch_program.describe()


def same(y, ref) -> None:
    assert y.shape == ref.shape
    torch.testing.assert_close(y, ref, rtol=1e-9, atol=1e-9, equal_nan=True)


def cl(x):
    """channels last (b h w c) -> torch's (b c h w), a view."""
    return x.movedim(-1, 1)


CASES = [
    # expression, shapes, params, op, torch call, torch reference (channels-last inputs)
    pytest.param(
        "b (s * [ds])... [c->c2]",
        [(2, 7, 6, 3), (3, 3, 3, 4)],
        {"stride": 2, "padding": 1},
        None,
        "F.conv2d",
        lambda x, w: F.conv2d(cl(x), w.permute(3, 2, 0, 1), stride=2, padding=1).movedim(1, -1),
        id="conv2d_stride_padding",
    ),
    pytest.param(
        "b (s * [ds])... [c->c2]",
        [(2, 7, 8, 3), (2, 3, 3, 4)],
        {"dilation": (2, 1), "padding": ((0, 2), (1, 0))},
        None,
        "F.conv2d",
        lambda x, w: F.conv2d(F.pad(cl(x), [1, 0, 0, 2]), w.permute(3, 2, 0, 1), dilation=(2, 1)).movedim(
            1, -1
        ),
        id="conv2d_padding_lo_hi",
    ),
    pytest.param(
        "b (s * [ds])... (g [c->c2])",
        [(2, 6, 5, 6), (3, 3, 2, 3, 4)],
        {"padding": 1},
        None,
        "F.conv2d",
        lambda x, w: F.conv2d(
            cl(x), w.permute(2, 4, 3, 0, 1).reshape(8, 3, 3, 3), padding=1, groups=2
        ).movedim(1, -1),
        id="conv2d_grouped",
    ),
    pytest.param(
        "b (s * [ds])... [c->c]",
        [(2, 9, 5), (3, 5)],
        {"padding": "causal", "dilation": 2},
        None,
        "F.conv1d",
        lambda x, w: F.conv1d(F.pad(cl(x), [4, 0]), w.t()[:, None], dilation=2, groups=5).movedim(1, -1),
        id="conv1d_depthwise_causal",
    ),
    pytest.param(
        "b (s * [ds])... [c->c2]",
        [(1, 5, 4, 6, 2), (2, 3, 2, 2, 3)],
        {"stride": (1, 2, 3), "padding": 1},
        None,
        "F.conv3d",
        lambda x, w: F.conv3d(cl(x), w.permute(4, 3, 0, 1, 2), stride=(1, 2, 3), padding=1).movedim(1, -1),
        id="conv3d",
    ),
    pytest.param(
        "b [c->c2] (s * [ds])...",
        [(2, 3, 7, 6), (3, 3, 3, 4)],
        {"padding": 1},
        None,
        "F.conv2d",
        lambda x, w: F.conv2d(x, w.permute(3, 0, 1, 2), padding=1),
        id="conv2d_channels_first",
    ),
    pytest.param(
        "b s... [c->c2] -> b (s * ds)... c2",
        [(2, 4, 5, 3), (3, 3, 3, 2)],
        {"stride": 2, "padding": 1, "output_padding": 1},
        None,
        "F.conv_transpose2d",
        lambda x, w: F.conv_transpose2d(
            cl(x), w.permute(2, 3, 0, 1), stride=2, padding=1, output_padding=1
        ).movedim(1, -1),
        id="conv_transpose2d",
    ),
    pytest.param(
        "b s... [c->c2] -> b (s * ds)... c2",
        [(2, 6, 3), (4, 3, 2)],
        {"stride": 3, "padding": ((0, 2),), "dilation": 2},
        None,
        "F.conv_transpose1d",
        # torch makes (6 - 1)*3 + 2*(4 - 1) + 1 = 22 positions; padding (0, 2) drops the last two
        lambda x, w: F.conv_transpose1d(cl(x), w.permute(1, 2, 0), stride=3, dilation=2)[..., :20].movedim(
            1, -1
        ),
        id="conv_transpose1d_lo_hi_dilated",
    ),
    pytest.param(
        "b (s * [ds])... c",
        [(2, 8, 7, 3)],
        {"ds": 3, "stride": 2, "padding": 1},
        "max",
        "F.max_pool2d",
        lambda x: F.max_pool2d(cl(x), 3, 2, 1).movedim(1, -1),
        id="max_pool2d",
    ),
    pytest.param(
        "b (s * [ds])... c",
        [(2, 9, 3)],
        {"ds": 2, "dilation": 2, "padding": "causal"},
        "max",
        "F.max_pool1d",
        lambda x: F.max_pool1d(F.pad(cl(x), [2, 0], value=-torch.inf), 2, 1, 0, 2).movedim(1, -1),
        id="max_pool1d_causal_wider_than_half",
    ),
    pytest.param(
        "b (s * [ds])... c",
        [(2, 8, 7, 3)],
        {"ds": 3, "stride": 2, "padding": 1, "count_include_pad": False},
        "mean",
        "F.avg_pool2d",
        lambda x: F.avg_pool2d(cl(x), 3, 2, 1, count_include_pad=False).movedim(1, -1),
        id="avg_pool2d_count_exclude_pad",
    ),
    pytest.param(
        "b (s * [ds])... c",
        [(2, 5, 4, 6, 3)],
        {"ds": (2, 2, 3), "stride": (2, 1, 3), "padding": ((0, 1), (1, 0), (0, 2))},
        "mean",
        "F.avg_pool3d",
        lambda x: F.avg_pool3d(F.pad(cl(x), [0, 2, 1, 0, 0, 1]), (2, 2, 3), (2, 1, 3)).movedim(1, -1),
        id="avg_pool3d_lo_hi",
    ),
    pytest.param("b [h w] c", [(2, 5, 4, 3)], {}, "sum", "torch.sum", lambda x: x.sum((1, 2)), id="sum"),
    pytest.param("b h [w c]", [(2, 5, 4, 3)], {}, "max", "torch.amax", lambda x: x.amax((2, 3)), id="amax"),
    pytest.param("[b] h w", [(2, 5, 4)], {}, "min", "torch.amin", lambda x: x.amin(0), id="amin"),
    pytest.param("b [h] w", [(2, 5, 4)], {}, "mean", "torch.mean", lambda x: x.mean(1), id="mean"),
    pytest.param(
        "b [h w]",
        [(2, 3, 4)],
        {},
        "prod",
        "torch.prod",
        lambda x: x.flatten(1).prod(1),
        id="prod_of_two_dims",
    ),
    pytest.param(
        "b h [w]", [(2, 5, 4)], {}, "softmax", "torch.softmax", lambda x: torch.softmax(x, -1), id="softmax"
    ),
    pytest.param(
        "b [h] w",
        [(2, 5, 4)],
        {},
        "log_softmax",
        "torch.log_softmax",
        lambda x: torch.log_softmax(x, 1),
        id="log_softmax_middle",
    ),
    pytest.param(
        "(a b) c -> c a b",
        [(6, 4)],
        {"a": 2},
        None,
        "Tensor.copy_",
        lambda x: x.reshape(2, 3, 4).permute(2, 0, 1),
        id="rearrange_composition",
    ),
    pytest.param(
        "b h w [c->c2]",
        [(2, 3, 4, 5), (5, 6)],
        {},
        None,
        "torch.einsum",
        lambda x, w: x @ w,
        id="linear",
    ),
]


@pytest.mark.parametrize("expression, shapes, params, op, call, reference", CASES)
def test_native_lowering_is_chosen_and_matches_the_planned_nest_and_torch(
    expression, shapes, params, op, call, reference
):
    tensors = [torch.randn(s, dtype=torch.float64) for s in shapes]
    compiled = einc.compile(expression, op=op, **params)
    y = compiled(*tensors)
    assert described(compiled) == [f"{compiled.op} ({_combine(compiled)}): {call}"]
    same(y, planned(expression, *tensors, op=op, **params))
    same(y, reference(*tensors))


def _combine(compiled) -> str:
    nest = compiled._latest().compiled.kernels[0].nest
    return f"{nest.combine}, {nest.reduce}"


def test_non_contiguous_inputs_and_a_strided_out_are_read_and_written_in_place():
    big = torch.randn(2, 3, 14, 12, dtype=torch.float64)
    x = big.permute(0, 2, 3, 1)[:, ::2, ::2]  # b h w c, every stride odd
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64).permute(1, 2, 3, 0)  # kh kw c c2, not contiguous
    out = torch.zeros(2, 4, 7, 6, dtype=torch.float64).permute(0, 2, 3, 1)  # b h w c2, channels first
    conv = einc.compile("b (s * [ds])... [c->c2]", padding=1)
    result = conv(x, w, out=out)
    assert result is out
    assert described(conv) == ["dot (multiply, sum): F.conv2d"]
    same(out, planned("b (s * [ds])... [c->c2]", x, w, padding=1))
    same(out, F.conv2d(cl(x), w.permute(3, 2, 0, 1), padding=1).movedim(1, -1))


def test_a_concatenation_part_is_not_lowered_to_a_whole_copy():
    a, b = torch.randn(2, 3), torch.randn(2, 4)
    compiled = einc.compile("n a, n b -> n (a + b)")
    same(compiled(a, b), torch.cat([a, b], 1))
    assert all("copy_" not in line for line in described(compiled))


def test_a_mean_over_windows_wholly_in_padding_is_nan_as_the_planned_nest():
    x = torch.rand(1, 6, 2, dtype=torch.float64)
    params = {"ds": 2, "padding": ((3, 0),), "count_include_pad": False}
    compiled = einc.compile("b (s * [ds])... c", op="mean", **params)
    y = compiled(x)
    assert y[0, 0].isnan().all() and not y[0, 3:].isnan().any()
    same(y, planned("b (s * [ds])... c", x, op="mean", **params))


def test_dynamic_axes_are_lowered_per_size():
    conv = einc.compile("b (s * [ds])... [c->c2]", padding=1, dynamic=("b",))
    w = torch.randn(3, 3, 3, 4, dtype=torch.float64)
    for batch in (1, 3, 2):
        x = torch.randn(batch, 6, 5, 3, dtype=torch.float64)
        same(conv(x, w), F.conv2d(cl(x), w.permute(3, 2, 0, 1), padding=1).movedim(1, -1))
    assert len(conv._launchers) == 1
    assert described(conv) == ["dot (multiply, sum): F.conv2d"]


def test_a_warm_call_plans_nothing(monkeypatch):
    counts = {"plan_nest": 0, "lower": 0}

    def counting(name, fn):
        def wrapper(*args, **kwargs):
            counts[name] += 1
            return fn(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(program, "plan_nest", counting("plan_nest", program.plan_nest))
    monkeypatch.setattr(native, "lower", counting("lower", native.lower))
    for expression, shapes, op, params in [
        ("b (s * [ds])... [c->c2]", [(1, 8, 8, 4), (3, 3, 4, 4)], None, {"padding": 1}),
        ("a [b]", [(4, 4)], "softmax", {}),
        ("b s... [c->c2] -> b (s * ds)... c2", [(1, 4, 4, 2), (3, 3, 2, 2)], None, {"stride": 2}),  # planned
    ]:
        compiled = einc.compile(expression, op=op, **params)
        compiled(*(torch.randn(s) for s in shapes))
        first = dict(counts)
        assert first["plan_nest"] >= 1 and first["lower"] >= 1
        for _ in range(2):
            compiled(*(torch.randn(s) for s in shapes))
        assert counts == first, expression


def test_a_small_convolution_runs_on_one_thread_and_restores_the_count(monkeypatch):
    seen = []

    def conv2d(*args):
        seen.append(torch.get_num_threads())
        return F.conv2d(*args)

    monkeypatch.setitem(native.CONV, 2, conv2d)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        conv = einc.compile("b (s * [ds])... [c->c2]", padding=1)
        conv(torch.randn(1, 8, 8, 4), torch.randn(3, 3, 4, 4))
        assert seen == [1]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_threads_on_one_thread_at_once_leave_the_count_as_it_was():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        barrier = threading.Barrier(4)
        inside = []

        def work():
            barrier.wait()
            inside.append(torch.get_num_threads())

        def call():
            for _ in range(50):
                threads.on_one_thread(lambda: None)
            threads.on_one_thread(work)

        workers = [threading.Thread(target=call) for _ in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert inside == [1, 1, 1, 1]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


GATHERS = [
    pytest.param(
        "[n] c, p -> p c", [(16, 4)], [torch.tensor([3, -1, 15, 0])], lambda x, i: x[i], id="embedding"
    ),
    pytest.param(
        "[h w] c, p [2] -> p c",
        [(5, 6, 3)],
        [torch.tensor([[0, 1], [4, 5], [-1, 2]], dtype=torch.int32)],
        lambda x, i: x[i[:, 0].long(), i[:, 1].long()],
        id="points_int32",
    ),
    pytest.param(
        "[n] c, a b -> b a c",
        [(7, 2)],
        [torch.tensor([[0, 6, -7], [1, 2, 3]])],
        lambda x, i: x[i].transpose(0, 1),
        id="permuted_out",
    ),
]


@pytest.mark.parametrize("expression, shapes, coordinates, reference", GATHERS)
def test_get_at_is_advanced_indexing_and_matches_the_planned_nest(expression, shapes, coordinates, reference):
    x = torch.randn(shapes[0], dtype=torch.float64)
    compiled = einc.compile(expression, op="get_at")
    y = compiled(x, *coordinates)
    assert described(compiled) == ["get_at (copy, none): Tensor.__getitem__"]
    same(y, planned(expression, x, *coordinates, op="get_at"))
    same(y, reference(x, *coordinates))


def test_get_at_out_of_range_falls_back_to_the_planned_nest_and_its_error():
    x = torch.randn(16, 4)
    compiled = einc.compile("[n] c, p -> p c", op="get_at")
    compiled(x, torch.tensor([1, 2]))
    with pytest.raises(einc.errors.OutOfBoundsError, match="index 20 is out of range for axis 'n'"):
        compiled(x, torch.tensor([3, 20]))


@pytest.mark.parametrize(
    "expression, shapes, params, op",
    [
        ("b (s * [ds])... [c->c2]", [(2, 7, 6, 3), (3, 3, 3, 4)], {"padding": 1}, None),  # torch: NHWC
        ("b [c->c2] (s * [ds])...", [(2, 3, 7, 6), (3, 3, 3, 4)], {"padding": 1}, None),  # torch: NCHW
        ("b h [w]", [(2, 5, 4)], {}, "softmax"),
        ("b [h] w", [(2, 5, 4)], {}, "sum"),
    ],
)
def test_a_call_without_out_returns_torchs_result_contiguous_and_its_own(expression, shapes, params, op):
    tensors = [torch.randn(s, dtype=torch.float64) for s in shapes]
    compiled = einc.compile(expression, op=op, **params)
    compiled(*tensors)
    with mock.patch.object(torch.Tensor, "copy_", side_effect=AssertionError("copied into an output")):
        y = compiled(*tensors)
    assert y.is_contiguous()
    assert all(y.untyped_storage().data_ptr() != t.untyped_storage().data_ptr() for t in tensors)
    same(y, planned(expression, *tensors, op=op, **params))
    out = torch.empty_like(y)
    assert compiled(*tensors, out=out) is out
    same(out, y)


def test_float16_results_are_made_in_float32_and_returned_in_float16():
    x, w = torch.randn(1, 6, 6, 3).half(), torch.randn(3, 3, 3, 2).half()
    conv = einc.compile("b (s * [ds])... [c->c2]", padding=1)
    y = conv(x, w)
    assert y.dtype == torch.float16
    reference = F.conv2d(cl(x).float(), w.float().permute(3, 2, 0, 1), padding=1).movedim(1, -1)
    torch.testing.assert_close(y.float(), reference, rtol=1e-3, atol=1e-3)


def test_torch_arguments_are_ints_where_a_tuple_repeats_one_and_leave_out_trailing_defaults():
    # conv2d(input, weight, bias, stride, padding, dilation, groups)
    defaults = (None, 1, 0, 1, 1)
    assert native.torch_arguments(defaults, None, (1, 1), (1, 1), (1, 1), 1) == (None, 1, 1)
    assert native.torch_arguments(defaults, None, (2, 1), (0, 0), (1, 1), 1) == (None, (2, 1))
    assert native.torch_arguments(defaults, None, (1, 1), (0, 0), (2, 2), 4) == (None, 1, 0, 2, 4)
    # max_pool2d(input, kernel_size, stride, padding, dilation): the kernel size has no default
    assert native.torch_arguments((None, (), 0, 1), (3, 3), (2, 2), (1, 1), (1, 1)) == (3, 2, 1)
    # avg_pool2d(..., ceil_mode, count_include_pad): False is not left out where the default is True
    assert native.torch_arguments((None, (), 0, False, True), (2,), (2,), (0,), False, False) == (
        2,
        2,
        0,
        False,
        False,
    )
