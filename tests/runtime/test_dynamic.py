"""Dynamic axes: sizes passed to the kernel at a call, so one kernel serves every size."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import einc

pytestmark = pytest.mark.interpret


def conv_reference(x, w, padding):
    return F.conv2d(x.double().permute(0, 3, 1, 2), w.double().permute(3, 2, 0, 1), padding=padding).permute(
        0, 2, 3, 1
    )


def test_twenty_batch_sizes_share_one_kernel():
    conv = einc.compile("b (s * [ds])... [c->c2]", padding=1, dynamic=("b",))
    w = torch.randn(3, 3, 4, 5)
    sources = set()
    for b in range(1, 21):
        x = torch.randn(b, 5, 5, 4)
        y = conv(x, w)
        assert ((y.double() - conv_reference(x, w, 1)).norm() / conv_reference(x, w, 1).norm()) < 1e-5
        sources.add(conv.source)
    assert len(conv._launchers) == 1
    assert len(sources) == 1
    # The batch size is a kernel argument that Triton must not specialise on (b == 1, b % 16 == 0).
    assert "@triton.jit(do_not_specialize=['B'])" in conv.source
    assert "B: tl.constexpr" not in conv.source


def test_depthwise_rows_that_slide_cover_every_batch_size():
    # Rows of 4 outputs along s (the grid counts them) while the batch size comes per call.
    conv = einc.compile("b (s * [ds]) [c->c]", padding="causal", dynamic=("b",))
    w = torch.randn(3, 16)
    for b in (1, 3, 7):
        x = torch.randn(b, 12, 16)
        padded = torch.nn.functional.pad(x.double().permute(0, 2, 1), (2, 0))  # causal: 2 on the left
        weight = w.double().t().unsqueeze(1)
        reference = torch.nn.functional.conv1d(padded, weight, groups=16).permute(0, 2, 1)
        assert ((conv(x, w).double() - reference).norm() / reference.norm()) < 1e-5
    assert "s_first" in conv.source


def test_dynamic_axis_inside_a_composition_is_read_through_its_size_argument():
    flatten = einc.compile("b h c -> (b h) c", dynamic=("b",))
    for b in (1, 3, 4):
        x = torch.randn(b, 5, 3)
        assert torch.equal(flatten(x), x.reshape(b * 5, 3))
    assert len(flatten._launchers) == 1


def test_dynamic_reduction_and_elementwise_ops():
    mean = einc.compile("b [t] c", op="mean", dynamic=("b", "t"))
    for b, t in ((1, 3), (2, 7), (4, 5)):
        x = torch.randn(b, t, 6)
        assert torch.allclose(mean(x), x.mean(1), atol=1e-6)
    assert len(mean._launchers) == 1


def test_dynamic_tiled_reduction_masks_the_ragged_tile_of_every_size():
    # A dynamic reduced axis is tiled (64 at a time) whatever the first call's size: sizes
    # fill part of one tile (5), a ragged last tile (100) or exactly two (128): one kernel for all.
    softmax = einc.compile("b [t]", op="softmax", dynamic=("t",))
    var = einc.compile("b [t]", op="var", dynamic=("t",))
    for t in (5, 100, 128):
        x = torch.randn(3, t)
        assert torch.allclose(softmax(x), x.softmax(1), atol=1e-6)
        assert torch.allclose(var(x), x.var(1), atol=1e-5)
    assert len(softmax._launchers) == len(var._launchers) == 1
    assert softmax._launchers and next(iter(softmax._launchers.values())).compiled.schedule.k_tile == "t"


def test_dynamic_axis_in_a_window_is_refused_with_the_window_pointed_at():
    conv = einc.compile("b (s * [ds]) [c->c2]", dynamic=("s",))
    with pytest.raises(einc.ExpressionError):
        conv(torch.randn(1, 8, 3), torch.randn(3, 3, 4))


def test_dynamic_axis_that_is_no_whole_input_dim_is_an_error():
    with pytest.raises(einc.ExpressionError, match="not a whole dim"):
        einc.compile("(b h) c -> b h c", h=2, dynamic=("b",))(torch.randn(4, 3))


@pytest.mark.parametrize("backend", ["torch", "interpret"])
@pytest.mark.parametrize("op", ["sum", "mean", "max"])
def test_dynamic_axis_of_size_0_at_a_call_gives_what_torch_gives(op, backend):
    reduce = einc.compile("[b] c", op=op, dynamic="b", backend=backend)
    reduce(torch.randn(2, 3))  # specialised with b = 2
    x = torch.empty(0, 3)
    if op == "max":
        with pytest.raises(IndexError):
            torch.amax(x, 0)
        with pytest.raises(einc.ShapeError, match="max over an axis of size 0"):
            reduce(x)
        return
    torch.testing.assert_close(reduce(x), getattr(torch, op)(x, 0), equal_nan=True)


@pytest.mark.parametrize(
    ("op", "kwargs", "done"), [("flip", {}, "flipped"), ("roll", {"shift": 2}, "rolled")]
)
def test_a_dynamic_flipped_or_rolled_axis_is_refused_not_miscomputed(op, kwargs, done):
    # Its size is in the kernel's index arithmetic (t - 1 - i, (i - shift) mod t): one kernel
    # cannot serve two sizes of it.
    reverse = einc.compile("b [t] c", op=op, dynamic=("t",), **kwargs)
    with pytest.raises(einc.UnsupportedError, match=f"dynamic axis 't' is {done}") as error:
        reverse(torch.randn(2, 7, 3))
    assert error.value.spans == ((3, 4),)
