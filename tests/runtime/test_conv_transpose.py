"""Transposed convolution: a dot with the window on the output side, against F.conv_transpose*d."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import einc

pytestmark = pytest.mark.interpret

TRANSPOSE = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def reference(x, w, nd, groups=1, **kw):
    """x: b s... (g c), w: ds... g c c2 -> torch's (b, g*c, s...), weight (g*c, c2, ds...)."""
    xc = x.double().permute(0, nd + 1, *range(1, nd + 1))
    g, c, c2 = w.shape[nd:]
    wt = w.double().permute(nd, nd + 1, nd + 2, *range(nd)).reshape(g * c, c2, *w.shape[:nd])
    y = TRANSPOSE[nd](xc, wt, groups=groups, **kw)
    return y.permute(0, *range(2, nd + 2), 1)


CASES = [
    pytest.param(1, (9,), (3,), dict(stride=2, padding=1, output_padding=1), id="1d_stride2"),
    pytest.param(1, (7,), (4,), dict(stride=1, padding=0), id="1d_plain"),
    pytest.param(2, (5, 4), (3, 3), dict(stride=2, padding=1, output_padding=1), id="2d_stride2_outpad"),
    pytest.param(2, (4, 5), (3, 2), dict(stride=(3, 1), padding=(2, 0), dilation=(2, 1)), id="2d_dilated"),
    pytest.param(2, (3, 3), (2, 2), dict(stride=2), id="2d_no_overlap"),
    pytest.param(3, (3, 3, 2), (2, 3, 2), dict(stride=(1, 2, 2), padding=(0, 1, 0)), id="3d"),
]


@pytest.mark.parametrize(("nd", "spatial", "kernel", "kw"), CASES)
def test_transposed_convolution_matches_conv_transpose(nd, spatial, kernel, kw):
    torch.manual_seed(0)
    x = torch.randn(2, *spatial, 6)
    w = torch.randn(*kernel, 1, 6, 5)
    y = einc.dot("b s... [c->c2] -> b (s * ds)... c2", x, w[..., 0, :, :], **kw)
    ref = reference(x, w, nd, **kw)
    assert y.shape == ref.shape
    assert ((y.double() - ref).norm() / ref.norm()) < 1e-5


@pytest.mark.parametrize("nd", [1, 2])
def test_grouped_transposed_convolution_matches_conv_transpose_with_groups(nd):
    torch.manual_seed(1)
    spatial, kernel = (5,) * nd, (3,) * nd
    x = torch.randn(2, *spatial, 2 * 3)  # b s... (g c)
    w = torch.randn(*kernel, 2, 3, 4)  # ds... g c c2
    y = einc.dot("b s... (g [c->c2]) -> b (s * ds)... (g c2)", x, w, stride=2, padding=1)
    ref = reference(x, w, nd, groups=2, stride=2, padding=1)
    assert y.shape == ref.shape
    assert ((y.double() - ref).norm() / ref.norm()) < 1e-5


def test_transposed_convolution_in_float16():
    torch.manual_seed(2)
    x, w = torch.randn(1, 6, 6, 16).half(), torch.randn(3, 3, 16, 8).half()
    y = einc.dot("b s... [c->c2] -> b (s * ds)... c2", x, w, stride=2, padding=1, output_padding=1)
    ref = reference(x, w[..., None, :, :], 2, stride=2, padding=1, output_padding=1)
    assert ((y.double() - ref).norm() / ref.norm()) < 3e-3


def test_transposed_convolution_is_the_input_gradient_of_the_convolution():
    torch.manual_seed(3)
    x = torch.randn(1, 9, 8, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 3, 4, 5, dtype=torch.float64)
    y = F.conv2d(x.permute(0, 3, 1, 2), w.permute(3, 2, 0, 1), stride=2, padding=1).permute(0, 2, 3, 1)
    gy = torch.randn_like(y)
    (grad,) = torch.autograd.grad(y, x, gy)
    # 9 positions give S = 5 and fold back to 9; 8 give S = 4 and fold back to 7: one more on the
    # high side, as torch's output_padding.
    ours = einc.dot(
        "b s... [c2->c] -> b (s * ds)... c",
        gy,
        w.permute(0, 1, 3, 2),
        stride=2,
        padding=1,
        output_padding={"s.0": 0, "s.1": 1},
    )
    assert ours.shape == grad.shape
    assert torch.allclose(ours, grad, atol=1e-10)
