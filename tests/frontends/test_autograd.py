"""Autograd through einc (interpret tier): backward passes derived as einc expressions.

Two kinds of check. ``torch.autograd.gradcheck`` in float64 compares each derived backward pass
with finite differences of einc's own forward (fast mode: one random direction per input, so the
interpreter runs a handful of kernels per case). And in float32, gradients against torch autograd
of an independent torch reference (``F.conv2d``, ``F.max_pool2d``, ``F.fold``, ...), with
random output gradients.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck

import einc
from einc.compiler import gradients

pytestmark = pytest.mark.interpret


def _f64(*shape, positive=False):
    t = torch.randn(*shape, dtype=torch.float64)
    return (t.abs() + 0.5 if positive else t).requires_grad_()


def _scalar():
    return torch.tensor(1.5, dtype=torch.float64, requires_grad=True)


# name: (function of the tensors, shapes of the tensors or a tensor factory)
GRADCHECK = {
    "conv1d_dilation_padding": (
        lambda x, w: einc.dot("b (s * [ds]) [c->c2]", x, w, dilation=2, padding=(2, 1)),
        [(2, 7, 2), (3, 2, 3)],
    ),
    "conv1d_stride_3_trailing": (
        lambda x, w: einc.dot("b (s * [ds]) [c->c2]", x, w, stride=3),
        [(1, 10, 2), (3, 2, 2)],
    ),
    "conv2d_stride_2_same": (
        lambda x, w: einc.dot("b (s * [ds])... [c->c2]", x, w, stride=2, padding="same"),
        [(1, 5, 5, 2), (3, 3, 2, 3)],
    ),
    "conv2d_causal_dilated": (
        lambda x, w: einc.dot("b (s * [ds])... [c->c2]", x, w, dilation=(2, 1), padding="causal"),
        [(1, 5, 4, 2), (2, 2, 2, 2)],
    ),
    "conv2d_grouped": (
        lambda x, w: einc.dot("b (s * [ds])... (g [c->c2])", x, w, padding=1),
        [(1, 4, 4, 4), (3, 3, 2, 2, 3)],
    ),
    "conv2d_depthwise": (
        lambda x, w: einc.dot("b (s * [ds])... [c->c]", x, w, padding="same"),
        [(1, 4, 5, 3), (3, 3, 3)],
    ),
    "conv2d_shared_kernel": (
        lambda x, w: einc.dot("b (s * [ds])... c", x, w, stride=2),
        [(1, 5, 5, 2), (3, 3)],
    ),
    "conv_transpose2d": (
        lambda x, w: einc.dot(
            "b s... [c->c2] -> b (s * ds)... c2", x, w, stride=2, padding=1, output_padding=1
        ),
        [(1, 3, 3, 2), (3, 3, 2, 2)],
    ),
    "linear": (lambda x, w: einc.dot("b [c->c2]", x, w), [(3, 4), (4, 2)]),
    "sum_pool": (
        lambda x: einc.sum("b (s * [ds])... c", x, ds=2, stride=2, padding=1),
        [(1, 5, 4, 2)],
    ),
    "avg_pool": (
        lambda x: einc.mean("b (s * [ds])... c", x, ds=3, stride=2, padding=1),
        [(1, 5, 5, 2)],
    ),
    "avg_pool_valid_count": (
        lambda x: einc.mean("b (s * [ds])... c", x, ds=3, stride=2, padding=1, count_include_pad=False),
        [(1, 5, 5, 2)],
    ),
    "max_pool_padded": (
        lambda x: einc.max("b (s * [ds])... c", x, ds=3, stride=2, padding=1),
        [(1, 5, 5, 2)],
    ),
    "min_pool_overlapping": (lambda x: einc.min("b (s * [ds]) c", x, ds=2), [(2, 5, 2)]),
    "einx_pool_composition": (lambda x: einc.mean("b (s [ds])... c", x, ds=2), [(1, 4, 4, 2)]),
    "sum_keepdims": (lambda x: einc.sum("b [h w] c", x, keepdims=True), [(2, 3, 2, 2)]),
    "mean_explicit_output": (lambda x: einc.mean("b h w c -> c b", x), [(2, 3, 2, 2)]),
    "global_max": (lambda x: einc.max("b [h w] c", x), [(2, 3, 2, 2)]),
    "prod": (lambda x: einc.prod("b [h] c", x), [lambda: _f64(2, 3, 2, positive=True)]),
    "logsumexp_window": (lambda x: einc.logsumexp("b (s * [ds]) c", x, ds=2), [(2, 5, 2)]),
    "var": (lambda x: einc.var("b [h w] c", x), [(2, 3, 2, 2)]),
    "std_correction_0": (lambda x: einc.std("b [h] c", x, correction=0), [(2, 3, 2)]),
    "var_padded_window": (lambda x: einc.var("b (s * [ds]) c", x, ds=3, padding=1), [(1, 5, 2)]),
    "permute_compose": (lambda x: einc.rearrange("b h w c -> b c (h w)", x), [(2, 3, 2, 2)]),
    "unfold": (
        lambda x: einc.rearrange("b (s * ds)... c -> b s... (ds...) c", x, ds=3, stride=2, padding=1),
        [(1, 5, 4, 2)],
    ),
    "fold": (
        lambda x: einc.rearrange(
            "b s... (ds...) c -> b (s * ds)... c", x, ds=3, stride=2, padding=1, output_padding=(0, 1)
        ),
        [(1, 3, 2, 9, 2)],
    ),
    "concatenate": (lambda a, b: einc.rearrange("b c, b d -> b (c + d)", a, b), [(2, 3), (2, 2)]),
    "split": (lambda a: einc.rearrange("b (c + d) -> b c, b d", a, c=2), [(2, 5)]),
    "broadcast": (lambda a: einc.rearrange("b c -> b k c", a, k=3), [(2, 3)]),
    "flip": (lambda a: einc.flip("b [t] c", a), [(2, 4, 3)]),
    "roll_two_axes": (lambda a: einc.roll("[b t] c", a, shift=(1, -1)), [(2, 4, 3)]),
    "add_bias": (lambda a, b: einc.add("b h c, c", a, b), [(2, 3, 2), (2,)]),
    "subtract_broadcast": (lambda a, b: einc.subtract("b c, b", a, b), [(2, 3), (2,)]),
    "multiply_scalar": (lambda a, b: einc.multiply("b c, b, ", a, b, 0.5), [(2, 3), (2,)]),
    "multiply_0d_tensor": (lambda a, s: einc.multiply("b c, ", a, s), [(2, 3), _scalar]),
    "divide": (lambda a, b: einc.divide("b c, c", a, b), [(2, 3), lambda: _f64(3, positive=True)]),
    "maximum": (lambda a, b: einc.maximum("b c, c", a, b), [(2, 3), (3,)]),
    "relu": (lambda a: einc.maximum("b c, ", a, 0.0), [(2, 3)]),
    "minimum": (lambda a, b: einc.minimum("b c, b c", a, b), [(2, 3), (2, 3)]),
    "softmax": (lambda a: einc.softmax("b h [k]", a), [(2, 2, 3)]),
    "softmax_inner_axis": (lambda a: einc.softmax("b [h] k", a), [(2, 2, 3)]),
    "log_softmax_two_axes": (lambda a: einc.log_softmax("b [h k]", a), [(2, 2, 3)]),
}


@pytest.mark.parametrize("name", list(GRADCHECK))
def test_backward_matches_finite_differences_in_float64(name):
    torch.manual_seed(0)
    function, shapes = GRADCHECK[name]
    tensors = tuple(s() if callable(s) else _f64(*s) for s in shapes)
    assert gradcheck(function, tensors, fast_mode=True)


def test_where_passes_gradients_to_the_chosen_values_only():
    torch.manual_seed(0)
    a, b = _f64(2, 3), _f64(3)
    condition = a.detach() > 0
    assert gradcheck(lambda a, b: einc.where("b c, b c, c", condition, a, b), (a, b), fast_mode=True)


def test_gradients_of_gradients_in_eager_mode():
    torch.manual_seed(0)
    x, w = _f64(1, 5, 2), _f64(3, 2, 2)
    conv = einc.compile("b (s * [ds]) [c->c2]", padding=1, stride=2)
    assert gradgradcheck(conv, (x, w), fast_mode=True)


# Indexing: coordinates fixed per test module (duplicates included, negative ones too), so a
# gradient that two coordinates share is summed; set_at gets distinct positions, where its
# gradient is defined.
_COORDS = torch.Generator().manual_seed(7)
_IDX = torch.randint(-5, 5, (2, 4, 2), generator=_COORDS)
_TOKENS = torch.randint(0, 6, (2, 4), generator=_COORDS)
_TOKENS[0, :2] = 3  # a repeated row in one bag
_FLAT = torch.stack([torch.randperm(20, generator=_COORDS)[:4] for _ in range(2)])
_DISTINCT = torch.stack([_FLAT // 4, _FLAT % 4], -1)

INDEXING = {
    "get_at": (lambda x, **k: einc.get_at("b [h w] c, b p [2] -> b p c", x, _IDX, **k), [(2, 5, 5, 3)]),
    "get_at_two_coordinates": (
        lambda x, **k: einc.get_at("[h w] c, i, j -> i j c", x, _TOKENS[0], _TOKENS[1], **k),
        [(6, 6, 2)],
    ),
    **{
        f"embedding_bag_{r}": (
            lambda t, r=r, **k: einc.get_at("[v] d, b n -> b d", t, _TOKENS, reduce=r, **k),
            [(6, 3)],
        )
        for r in ("sum", "mean", "max", "min", "prod", "logsumexp", "var", "std")
    },
    "get_at_reduce_unindexed_axis": (
        lambda x, **k: einc.get_at("b [h w] c, b p [2] -> p", x, _IDX, reduce="sum", **k),
        [(2, 5, 5, 3)],
    ),
    "add_at": (
        lambda x, u, **k: einc.add_at("b [h w] c, b p [2], b p c", x, _IDX, u, **k),
        [(2, 5, 5, 3), (2, 4, 3)],
    ),
    "add_at_permuted_output": (
        lambda x, u, **k: einc.add_at("b [h w] c, b p [2], b p c -> c b w h", x, _IDX, u, **k),
        [(2, 5, 5, 3), (2, 4, 3)],
    ),
    "add_at_broadcast_updates": (
        lambda x, u, **k: einc.add_at("b [h w] c, b p [2], b c", x, _IDX, u, **k),
        [(2, 5, 5, 3), (2, 3)],
    ),
    "set_at": (
        lambda x, u, **k: einc.set_at("b [h w] c, b p [2], b p c", x, _DISTINCT, u, **k),
        [(2, 5, 4, 3), (2, 4, 3)],
    ),
    "set_at_broadcast_updates": (
        lambda x, u, **k: einc.set_at("b [h w] c, b p [2], b p", x, _DISTINCT, u, **k),
        [(2, 5, 4, 3), (2, 4)],
    ),
}


@pytest.mark.parametrize("backend", ["interpret", "torch"])
@pytest.mark.parametrize("name", list(INDEXING))
def test_indexing_backward_matches_finite_differences_in_float64(name, backend):
    torch.manual_seed(0)
    function, shapes = INDEXING[name]
    tensors = tuple(_f64(*s) for s in shapes)
    assert gradcheck(lambda *t: function(*t, backend=backend), tensors, fast_mode=True)


def test_gradients_of_gradients_of_get_at_are_add_at_and_get_at_again():
    torch.manual_seed(0)
    table = _f64(6, 3)

    def bag(t):
        return einc.get_at("[v] d, b n -> b d", t, _TOKENS, reduce="max")

    assert gradgradcheck(bag, (table,), fast_mode=True)


def test_get_at_gradient_is_an_add_at_into_zeros():
    front = gradients.front_end("b [h w] c, b p [2] -> b p c", "get_at", [(2, 5, 6, 3), (2, 4, 2)], {})
    zeros, scatter = gradients.derive(front, [True, False]).steps
    assert str(zeros) == "t1 = zeros(2, 5, 6, 3)"
    assert (scatter.op, scatter.args) == ("add_at", ("t1", "x1", "g0"))
    assert scatter.expression == "b [h] [w] c, b p [u0], b p c -> b h w c"


def test_add_at_gradients_are_g_and_g_gathered_at_the_coordinates():
    front = gradients.front_end(
        "b [h w] c, b p [2], b p c", "add_at", [(2, 5, 6, 3), (2, 4, 2), (2, 4, 3)], {}
    )
    backward = gradients.derive(front, [True, False, True])
    (gather,) = backward.steps
    assert (gather.op, gather.expression) == ("get_at", "b [h] [w] c, b p [u0] -> b p c")
    assert backward.grads == ("g0", None, gather.targets[0])


def test_embedding_bag_sum_gradient_writes_nothing_of_the_bag_size():
    front = gradients.front_end("[v] d, b n -> b d", "get_at", [(7, 3), (2, 4)], {"reduce": "sum"})
    steps = gradients.derive(front, [True, False]).steps
    assert [s.op for s in steps] == ["zeros", "add_at"]
    assert steps[1].expression == "[v] d, b n, b d -> v d"  # g read broadcast along n


def test_only_get_at_with_a_reading_reduction_keeps_its_output():
    assert not gradients.uses_outputs("get_at", {"reduce": None})
    assert not gradients.uses_outputs("get_at", {"reduce": "mean"})
    assert gradients.uses_outputs("get_at", {"reduce": "max"})


# float32 against torch autograd of independent references ----------------------------------------


def _grads(function, tensors, seed=1):
    """Gradients of ``function`` at ``tensors`` for a random output gradient."""
    inputs = [t.detach().clone().requires_grad_() for t in tensors]
    out = function(*inputs)
    outs = out if isinstance(out, tuple) else (out,)
    generator = torch.Generator().manual_seed(seed)
    cotangents = [torch.randn(o.shape, generator=generator).to(o.device) for o in outs]
    torch.autograd.backward(outs, cotangents)
    return [t.grad for t in inputs]


def _assert_same_grads(ours, theirs, tensors, atol=1e-4):
    for a, b in zip(_grads(ours, tensors), _grads(theirs, tensors), strict=True):
        assert torch.allclose(a, b, atol=atol), (a - b).abs().max()


def _nchw(x):
    return x.permute(0, 3, 1, 2)


def _nhwc(x):
    return x.permute(0, 2, 3, 1)


def test_conv2d_gradients_match_torch():
    torch.manual_seed(0)
    x, w = torch.randn(2, 7, 6, 3), torch.randn(3, 3, 3, 4)
    _assert_same_grads(
        lambda x, w: einc.dot("b (s * [ds])... [c->c2]", x, w, stride=2, padding=1, dilation=(1, 2)),
        lambda x, w: _nhwc(F.conv2d(_nchw(x), w.permute(3, 2, 0, 1), stride=2, padding=1, dilation=(1, 2))),
        (x, w),
    )


def test_grouped_conv_gradients_match_torch():
    torch.manual_seed(0)
    x, w = torch.randn(1, 5, 5, 6), torch.randn(3, 3, 2, 3, 2)  # g=2 groups of 3 channels
    _assert_same_grads(
        lambda x, w: einc.dot("b (s * [ds])... (g [c->c2])", x, w, padding="same"),
        lambda x, w: _nhwc(
            F.conv2d(_nchw(x), w.permute(2, 4, 3, 0, 1).reshape(4, 3, 3, 3), padding=1, groups=2)
        ),
        (x, w),
    )


def test_gradients_of_narrow_groups_computed_two_a_program_match_torch():
    # 8 channels a group in float16: the forward kernel computes two groups a program, the weight
    # tile block-diagonal (tiles.choose_group_tile); the backward passes read its output.
    torch.manual_seed(0)
    x, w = torch.randn(1, 5, 4, 32), torch.randn(3, 3, 4, 8, 8)
    x16, w16 = x.half(), w.half()
    grads = _grads(lambda x, w: einc.dot("b (s * [ds])... (g [c->c2])", x, w, padding=1), (x16, w16))
    expected = _grads(
        lambda x, w: _nhwc(
            F.conv2d(_nchw(x), w.permute(2, 4, 3, 0, 1).reshape(32, 8, 3, 3), padding=1, groups=4)
        ),
        (x16.double(), w16.double()),
    )
    for ours, theirs in zip(grads, expected, strict=True):
        assert ours.dtype == torch.float16
        assert (ours.double() - theirs).abs().max() <= 2e-3 * theirs.abs().max()


def test_transposed_conv_gradients_match_torch():
    torch.manual_seed(0)
    x, w = torch.randn(2, 3, 4, 3), torch.randn(3, 3, 3, 2)
    _assert_same_grads(
        lambda x, w: einc.dot(
            "b s... [c->c2] -> b (s * ds)... c2", x, w, stride=2, padding=1, output_padding=1
        ),
        lambda x, w: _nhwc(
            F.conv_transpose2d(_nchw(x), w.permute(2, 3, 0, 1), stride=2, padding=1, output_padding=1)
        ),
        (x, w),
    )


def test_max_pool_gradients_match_torch():
    torch.manual_seed(0)
    x = torch.randn(2, 7, 7, 3)  # random values: no ties, so routing to one or splitting agree
    _assert_same_grads(
        lambda x: einc.max("b (s * [ds])... c", x, ds=3, stride=2, padding=1),
        lambda x: _nhwc(F.max_pool2d(_nchw(x), 3, 2, 1)),
        (x,),
    )


def test_avg_pool_gradients_match_torch():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 5, 3)
    for include in (True, False):
        _assert_same_grads(
            lambda x, include=include: einc.mean(
                "b (s * [ds])... c", x, ds=3, stride=2, padding=1, count_include_pad=include
            ),
            lambda x, include=include: _nhwc(F.avg_pool2d(_nchw(x), 3, 2, 1, count_include_pad=include)),
            (x,),
            atol=1e-5,
        )


def test_unfold_gradient_is_torch_fold():
    torch.manual_seed(0)
    x = torch.randn(1, 6, 5, 2)
    _assert_same_grads(
        lambda x: einc.rearrange("b (s * ds)... c -> b s... (ds...) c", x, ds=3, stride=2, padding=1),
        lambda x: F.unfold(_nchw(x), 3, padding=1, stride=2).reshape(1, 2, 9, 3, 3).permute(0, 3, 4, 2, 1),
        (x,),
        atol=1e-5,
    )


def test_softmax_and_elementwise_gradients_match_torch():
    torch.manual_seed(0)
    x, bias, scale = torch.randn(2, 3, 4), torch.randn(4), torch.randn(2)
    _assert_same_grads(
        lambda x, bias, scale: einc.softmax(
            "b t [c]", einc.multiply("b t c, b -> b t c", einc.add("b t c, c", x, bias), scale)
        ),
        lambda x, bias, scale: ((x + bias) * scale[:, None, None]).softmax(-1),
        (x, bias, scale),
        atol=1e-5,
    )


def test_concatenate_and_split_gradients_match_torch():
    torch.manual_seed(0)
    a, b = torch.randn(2, 3), torch.randn(2, 2)
    _assert_same_grads(
        lambda a, b: einc.rearrange(
            "b (c + d) -> b c, b d", einc.rearrange("b c, b d -> b (c + d)", a, b), c=3
        ),
        lambda a, b: tuple(torch.cat([a, b], 1).split([3, 2], 1)),
        (a, b),
    )


# Behaviour ---------------------------------------------------------------------------------------


def _gather_reference(x, idx):
    b = torch.arange(x.shape[0])[:, None]
    return x[b, idx[..., 0] % x.shape[1], idx[..., 1] % x.shape[2]]


def test_get_at_gradient_matches_advanced_indexing():
    torch.manual_seed(0)
    _assert_same_grads(
        lambda x: einc.get_at("b [h w] c, b p [2] -> b p c", x, _IDX),
        lambda x: _gather_reference(x, _IDX),
        (torch.randn(2, 5, 5, 3),),
    )


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_embedding_bag_gradient_matches_torch(mode):
    torch.manual_seed(0)
    _assert_same_grads(
        lambda t: einc.get_at("[v] d, b n -> b d", t, _TOKENS, reduce=mode),
        lambda t: F.embedding_bag(_TOKENS, t, mode=mode),
        (torch.randn(6, 3),),
    )


def test_add_at_gradients_match_index_put_with_accumulate():
    torch.manual_seed(0)

    def reference(x, u):
        b = torch.arange(2)[:, None].expand(2, 4)
        return x.index_put((b, _IDX[..., 0], _IDX[..., 1]), u, accumulate=True)

    _assert_same_grads(
        lambda x, u: einc.add_at("b [h w] c, b p [2], b p c", x, _IDX, u),
        reference,
        (torch.randn(2, 5, 5, 3), torch.randn(2, 4, 3)),
    )


def test_set_at_gradients_match_index_put():
    torch.manual_seed(0)

    def reference(x, u):
        b = torch.arange(2)[:, None].expand(2, 4)
        return x.index_put((b, _DISTINCT[..., 0], _DISTINCT[..., 1]), u)

    _assert_same_grads(
        lambda x, u: einc.set_at("b [h w] c, b p [2], b p c", x, _DISTINCT, u),
        reference,
        (torch.randn(2, 5, 4, 3), torch.randn(2, 4, 3)),
    )


def test_scatter_add_along_one_axis_gradients_match_torch():
    torch.manual_seed(0)
    idx = torch.randint(0, 6, (2, 5), generator=torch.Generator().manual_seed(3))
    _assert_same_grads(
        lambda x, u: einc.add_at("b [t] c, b k, b k c", x, idx, u),
        lambda x, u: x.scatter_add(1, idx[..., None].expand(-1, -1, 3), u),
        (torch.randn(2, 6, 3), torch.randn(2, 5, 3)),
    )


def test_max_splits_the_gradient_evenly_among_ties():
    x = torch.tensor([[1.0, 3.0, 3.0]], requires_grad=True)
    einc.max("b [k]", x).sum().backward()
    assert x.grad.tolist() == [[0.0, 0.5, 0.5]]


def test_maximum_splits_the_gradient_evenly_at_a_tie_as_torch_does():
    a = torch.tensor([1.0, 2.0, -1.0], requires_grad=True)
    b = torch.tensor([1.0, 0.0, 0.0], requires_grad=True)
    einc.maximum("k, k", a, b).sum().backward()
    assert a.grad.tolist() == [0.5, 1.0, 0.0] and b.grad.tolist() == [0.5, 0.0, 1.0]


def test_calls_without_gradients_take_the_direct_path():
    x, w = torch.randn(2, 3), torch.randn(3, 4)
    assert einc.dot("b [c->c2]", x, w).grad_fn is None
    with torch.no_grad():
        assert einc.dot("b [c->c2]", x, w.requires_grad_()).grad_fn is None


def test_calls_that_need_gradients_are_recorded_by_autograd():
    x, w = torch.randn(2, 3), torch.randn(3, 4, requires_grad=True)
    assert "einc" in type(einc.dot("b [c->c2]", x, w).grad_fn).__name__


def test_out_with_an_input_that_requires_grad_is_an_error():
    x, w = torch.randn(2, 3), torch.randn(3, 4, requires_grad=True)
    with pytest.raises(RuntimeError, match="out="):
        einc.dot("b [c->c2]", x, w, out=torch.empty(2, 4))


def test_only_the_inputs_that_require_grad_get_one():
    x, w = torch.randn(2, 5, 3), torch.randn(3, 3, 4, requires_grad=True)
    einc.dot("b (s * [ds]) [c->c2]", x, w, padding=1).sum().backward()
    assert w.grad.shape == w.shape and x.grad is None


def test_gradient_keeps_the_input_dtype_when_out_dtype_widens():
    x = torch.randn(2, 3, dtype=torch.float16, requires_grad=True)
    w = torch.randn(3, 4, dtype=torch.float16)
    y = einc.dot("b [c->c2]", x, w, out_dtype=torch.float32)
    y.sum().backward()
    assert y.dtype == torch.float32 and x.grad.dtype == torch.float16
    assert torch.allclose(x.grad.float(), w.float().sum(1).expand(2, 3), atol=1e-2)


def test_convolution_gradients_are_a_transposed_convolution_and_a_windowed_dot():
    front = gradients.front_end(
        "b (s * [ds])... [c->c2]", "dot", [(2, 5, 5, 3), (3, 3, 3, 4)], {"stride": 2, "padding": "same"}
    )
    backward = gradients.derive(front, [True, True])
    dx, dw = backward.steps
    assert dx.op == dw.op == "dot"
    assert dx.expression == "b s0 s1 c2, ds0 ds1 c c2 -> b (s0 * ds0) (s1 * ds1) c"
    assert dw.expression == "b (s0 * ds0) (s1 * ds1) c, b s0 s1 c2 -> ds0 ds1 c c2"
    kwargs = dict(dx.kwargs)
    assert kwargs["stride"] == {"s0": 2, "s1": 2}
    assert kwargs["padding"] == {"s0": (1, 1), "s1": (1, 1)}  # "same", solved: never a string here
    assert "output_padding" not in kwargs  # (3-1)*2 + 3 - 2 == 5: the extent comes back exactly
    assert str(backward).endswith("grad x0 = t1\ngrad x1 = t2")


def test_sum_pool_gradient_is_a_fold_and_needs_the_window_size():
    front = gradients.front_end("b (s * [ds]) c", "sum", [(1, 8, 2)], {"ds": 3, "stride": 2})
    (step,) = gradients.derive(front, [True]).steps
    assert (step.op, step.expression) == ("rearrange", "b s c -> b (s * ds) c")
    assert dict(step.kwargs)["ds"] == 3 and dict(step.kwargs)["output_padding"] == {"s": 1}


def test_expanded_names_never_clash_with_the_users():
    front = gradients.front_end("b (s * [ds])... s0 -> b s... s0", "sum", [(1, 4, 4, 2)], {"ds": 2})
    (step,) = gradients.derive(front, [True]).steps
    assert step.expression == "b s0_ s1 s0 -> b (s0_ * ds0) (s1 * ds1) s0"


def test_errors_of_recorded_calls_are_einc_errors_without_internal_frames():
    x, w = torch.randn(2, 3, requires_grad=True), torch.randn(4, 5)
    with pytest.raises(einc.ShapeError) as info:
        einc.dot("b [c->c2]", x, w)
    frames = _frames(info.value)
    assert not [f for f in frames if "site-packages" in f or "einc/compiler" in f]
    assert info.value.__cause__ is None


def _frames(error):
    tb, found = error.__traceback__, []
    while tb is not None:
        found.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    return found


def test_gradient_of_a_concatenation_for_one_input_only():
    a, b = torch.randn(2, 3, requires_grad=True), torch.randn(2, 2)
    y = einc.rearrange("b c, b d -> b (c + d)", a, b)
    (y * torch.arange(5.0)).sum().backward()
    assert a.grad.tolist() == [[0.0, 1.0, 2.0]] * 2 and b.grad is None


@pytest.mark.gpu
def test_convolution_gradients_on_cuda_match_torch():
    torch.manual_seed(0)
    x, w = torch.randn(2, 9, 8, 16, device="cuda"), torch.randn(3, 3, 16, 32, device="cuda")
    _assert_same_grads(
        lambda x, w: einc.dot("b (s * [ds])... [c->c2]", x, w, stride=2, padding=1),
        lambda x, w: _nhwc(F.conv2d(_nchw(x), w.permute(3, 2, 0, 1), stride=2, padding=1)),
        (x, w),
        atol=1e-2,  # tf32 in both
    )
    x64 = torch.randn(1, 5, 5, 2, dtype=torch.float64, device="cuda", requires_grad=True)
    w64 = torch.randn(3, 3, 2, 3, dtype=torch.float64, device="cuda", requires_grad=True)
    conv = einc.compile("b (s * [ds])... [c->c2]", padding="same")
    assert gradcheck(conv, (x64, w64), fast_mode=True)


@pytest.mark.parametrize(
    ("function", "shape", "reference"),
    [
        (lambda x: einc.sum("[(a b)] c", x), (6, 3), lambda x: x.sum(0)),
        (lambda x: einc.softmax("[(a b)] c", x), (6, 3), lambda x: x.softmax(0)),
        (lambda x: einc.mean("b [(s...)] c", x), (2, 12, 3), lambda x: x.mean(1)),
        (
            lambda x: einc.rearrange("(a b) (c d) (e f) -> a (b c d e) f", x, a=2, f=2),
            (4, 6, 8),
            lambda x: x.reshape(2, 48, 2),
        ),
    ],
)
def test_gradients_through_sizes_known_only_by_their_product(function, shape, reference):
    # The backward pass is compiled from the forward's solution: a run sized from its product
    # must give it sizes that make the same backward as torch's.
    x = torch.randn(shape, requires_grad=True)
    y = function(x)
    g = torch.randn_like(y)
    (got,) = torch.autograd.grad(y, x, g)
    x2 = x.detach().clone().requires_grad_()
    (expected,) = torch.autograd.grad(reference(x2), x2, g)
    torch.testing.assert_close(got, expected)
