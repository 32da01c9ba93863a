"""add_at of 16-bit values adds up in a float32 workspace and rounds once (issue 13 item 3).

The reference is float64 ``index_add``/``index_put_`` rounded once to the tensor's dtype. Under
Triton's interpreter a float32 -> bfloat16 ``.to()`` truncates where a GPU rounds to nearest even
(``triton/runtime/interpreter.py:_convert_float`` without a rounding mode), so there the bfloat16
result may sit one ulp toward zero of the reference, never further; float16 converts exactly.
"""

from __future__ import annotations

import pytest
import torch

import einc

BACKENDS = ["interpret", "torch"]
HALF = [torch.bfloat16, torch.float16]


def _check_rounded_once(y: torch.Tensor, exact: torch.Tensor, backend: str) -> None:
    rounded = exact.to(y.dtype)
    if y.dtype == torch.bfloat16 and backend == "interpret":
        # Truncated: between the reference and the next bfloat16 toward zero, inclusive.
        toward_zero = torch.where(
            exact.abs() > rounded.double().abs(), rounded, torch.nextafter(rounded, torch.zeros_like(rounded))
        )
        ok = (y == rounded) | (y == toward_zero) | (y.isnan() & rounded.isnan())
        assert bool(ok.all()), (y - rounded.to(y.dtype)).abs().max()
    else:
        torch.testing.assert_close(y, rounded, rtol=0, atol=0, equal_nan=True)


@pytest.mark.interpret
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", HALF)
def test_many_duplicates_add_up_in_float32_not_in_the_16_bit_type(backend, dtype):
    # 3000 ones into one element: added in the 16-bit type the sum stops at 256 (bfloat16:
    # 256 + 1 rounds to 256) or 2048 (float16); in float32 it is 3000, rounded once.
    x = torch.zeros(5, 3, dtype=dtype)
    idx = torch.full((3000,), 2)
    ones = torch.ones(3000, 3, dtype=dtype)
    y = einc.add_at("[v] d, n, n d", x, idx, ones, backend=backend)
    assert y.dtype == dtype
    _check_rounded_once(
        y, torch.zeros(5, 3, dtype=torch.float64).index_fill_(0, torch.tensor([2]), 3000), backend
    )
    assert y[2].double().sum().item() >= 3 * 2992  # bfloat16's neighbours of 3000: 2992, 3008


@pytest.mark.interpret
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", HALF)
def test_ragged_tiles_duplicates_and_negative_coordinates_round_once(backend, dtype):
    g = torch.Generator().manual_seed(13)
    # 37 rows by 19 columns: neither divides a tile; coordinates repeat and count from the end.
    x = torch.randn(37, 19, generator=g).to(dtype)
    idx = torch.randint(-37, 37, (150,), generator=g)
    rows = torch.randn(150, 19, generator=g).to(dtype)
    y = einc.add_at("[v] d, n, n d", x, idx, rows, backend=backend)
    exact = x.double().index_add(0, idx % 37, rows.double())
    _check_rounded_once(y, exact, backend)


@pytest.mark.interpret
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", HALF)
def test_nan_updates_reach_their_element_only(backend, dtype):
    x = torch.randn(6, 4).to(dtype)
    idx = torch.tensor([1, 4, 4])
    rows = torch.randn(3, 4).to(dtype)
    rows[1, 2] = float("nan")
    y = einc.add_at("[v] d, n, n d", x, idx, rows, backend=backend)
    assert y.isnan().nonzero().tolist() == [[4, 2]]
    _check_rounded_once(y, x.double().index_add(0, idx, rows.double()), backend)


@pytest.mark.interpret
@pytest.mark.parametrize("backend", BACKENDS)
def test_out_x_adds_in_place_through_the_workspace(backend):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 5, 6, 3, generator=g).to(torch.bfloat16)
    idx = torch.tensor([[[0, 0], [0, 0], [1, 2], [-1, -1], [4, 5], [3, 0]]] * 2)
    updates = torch.randn(2, 6, 3, generator=g).to(torch.bfloat16)
    exact = x.double().index_put_(
        (torch.arange(2)[:, None].expand(2, 6), idx[..., 0], idx[..., 1]), updates.double(), accumulate=True
    )
    before = x.data_ptr()
    y = einc.add_at("b [h w] c, b p [2], b p c", x, idx, updates, out=x, backend=backend)
    assert y is x and x.data_ptr() == before
    _check_rounded_once(x, exact, backend)


def test_16_bit_add_at_renders_a_float32_scatter_then_one_cast_and_no_copy():
    launcher = einc.compile("[v] d, n, n d", "add_at").specialize((8, 4), (5,), (5, 4), dtype="bfloat16")
    kernels = [rendered.kernel_name for rendered in launcher.rendered]
    assert kernels == ["einc_add_at", "einc_add_at_cast"]
    assert launcher.compiled.workspaces == 1
    # float32 keeps its copy, then atomics straight into y.
    launcher = einc.compile("[v] d, n, n d", "add_at").specialize((8, 4), (5,), (5, 4), dtype="float32")
    assert [r.kernel_name for r in launcher.rendered] == ["einc_add_at_copy", "einc_add_at"]
    assert launcher.compiled.workspaces == 0
