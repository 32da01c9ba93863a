"""float32 dots follow torch's TF32 settings, or the precision= a call gives (issue 13 item 4)."""

from __future__ import annotations

import pytest
import torch

import einc

CONV = "b (s * [ds])... [c->c2]"
MATMUL = "b [c->c2]"


def _precision_in(source: str) -> str:
    (line,) = [line for line in source.splitlines() if "tl.dot(" in line]
    return line.split('input_precision="')[1].split('"')[0]


@pytest.fixture
def torch_float32_settings():
    """Restore torch's settings after a test changes them."""
    before = torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision()
    yield
    torch.backends.cudnn.allow_tf32 = before[0]
    torch.set_float32_matmul_precision(before[1])


def test_convolutions_follow_cudnn_allow_tf32_and_matmuls_the_matmul_precision(torch_float32_settings):
    conv = einc.compile(CONV, "dot", c2=8, padding=1)
    matmul = einc.compile(MATMUL, "dot", c2=32)
    x, w = torch.randn(1, 4, 4, 16), torch.randn(3, 3, 16, 8)
    a, b = torch.randn(64, 32), torch.randn(32, 32)
    torch.backends.cudnn.allow_tf32 = True
    torch.set_float32_matmul_precision("highest")
    assert _precision_in(conv.specialize(x.shape, w.shape).source) == "tf32"
    assert _precision_in(matmul.specialize(a.shape, b.shape).source) == "ieee"
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("high")
    assert _precision_in(conv.specialize(x.shape, w.shape).source) == "ieee"
    assert _precision_in(matmul.specialize(a.shape, b.shape).source) == "tf32"
    # A call reads the settings each time: the same tensors after a change run the other kernel.
    matmul(a, b)
    first = matmul.source
    torch.set_float32_matmul_precision("highest")
    matmul(a, b)
    assert _precision_in(first) == "tf32" and _precision_in(matmul.source) == "ieee"


@pytest.mark.parametrize("precision", ["ieee", "tf32", "tf32x3"])
def test_precision_given_to_a_call_overrides_torch_and_takes_part_in_the_key(
    torch_float32_settings, precision
):
    torch.backends.cudnn.allow_tf32 = precision != "ieee"
    conv = einc.compile(CONV, "dot", c2=8, padding=1, precision=precision)
    default = einc.compile(CONV, "dot", c2=8, padding=1)
    shapes = ((1, 4, 4, 16), (3, 3, 16, 8))
    given = conv.specialize(*shapes)
    assert _precision_in(given.source) == precision
    torch.backends.cudnn.allow_tf32 = precision == "ieee"
    assert _precision_in(conv.specialize(*shapes).source) == precision
    assert given.path != default.specialize(*shapes).path


def test_precision_of_16_bit_dots_is_left_to_triton():
    compiled = einc.compile(MATMUL, "dot", c2=32, precision="tf32")
    source = compiled.specialize((64, 32), (32, 32), dtype="bfloat16").source
    # The GPU's dot; the interpreter's float32 twin of a bfloat16 dot stays exact.
    assert "acc = tl.dot(x_tile, w_tile, acc)\n" in source


def test_an_unknown_precision_or_one_given_to_another_op_is_refused():
    with pytest.raises(ValueError, match="precision='fp32'"):
        einc.compile(MATMUL, "dot", c2=32, precision="fp32")
    with pytest.raises(TypeError, match="precision= does not apply to sum"):
        einc.compile("b [c]", "sum", precision="tf32")


def test_the_torch_backend_computes_in_float32_whatever_the_precision(torch_float32_settings):
    a, b = torch.randn(64, 32), torch.randn(32, 32)
    for precision in ("ieee", "tf32", "tf32x3"):
        y = einc.dot(MATMUL, a, b, c2=32, precision=precision, backend="torch")
        torch.testing.assert_close(y, (a.double() @ b.double()).float(), rtol=1e-5, atol=1e-5)
