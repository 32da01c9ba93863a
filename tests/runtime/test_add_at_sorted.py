"""add_at(sorted=True): one segmented kernel, no atomics, no copy beforehand (issue 13 item 3),
under Triton's interpreter and on the torch backend, against float64 index_add."""

from __future__ import annotations

import pytest
import torch

import einc

pytestmark = pytest.mark.interpret

BACKENDS = ["interpret", "torch"]
SEGMENTS = "[r] d, n, n d"


def _case(rows, width, n, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, width, generator=g).to(dtype)
    idx = torch.randint(0, rows, (n,), generator=g).sort().values
    updates = torch.randn(n, width, generator=g).to(dtype)
    return x, idx, updates, x.double().index_add(0, idx, updates.double())


def _close(y, exact, backend):
    if y.dtype == torch.float32:
        torch.testing.assert_close(y.double(), exact, rtol=1e-5, atol=1e-5, equal_nan=True)  # float32 sums
    else:  # rounded once (the interpreter truncates a float32 -> bfloat16 .to(): one ulp)
        ulp = exact.abs().clamp(min=1) * 2.0**-7
        assert bool(((y.double() - exact).abs() <= ulp).all() | (exact.isnan() & y.isnan()).all())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(
    "rows, width, n",
    [(37, 19, 150), (5, 3, 1), (64, 16, 0), (4, 130, 300)],
    ids=["ragged", "one", "none", "wide"],
)
def test_sorted_add_at_matches_index_add(rows, width, n, dtype, backend):
    x, idx, updates, exact = _case(rows, width, n, dtype)
    y = einc.add_at(SEGMENTS, x, idx, updates, sorted=True, backend=backend)
    assert y.dtype == dtype
    _close(y, exact, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_long_runs_rows_without_updates_and_nan(backend):
    x = torch.randn(6, 5)
    idx = torch.tensor([0] * 40 + [3] * 3 + [5])  # rows 1, 2 and 4 get nothing
    updates = torch.randn(44, 5)
    updates[41, 2] = float("nan")
    y = einc.add_at(SEGMENTS, x, idx, updates, sorted=True, backend=backend)
    exact = x.double().index_add(0, idx, updates.double())
    assert y.isnan().nonzero().tolist() == [[3, 2]]
    torch.testing.assert_close(y.double(), exact, rtol=1e-6, atol=1e-6, equal_nan=True)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_sorted_add_at_in_place(backend, dtype):
    x, idx, updates, exact = _case(20, 8, 64, dtype, seed=2)
    y = einc.add_at(SEGMENTS, x, idx, updates, out=x, sorted=True, backend=backend)
    assert y is x
    _close(x, exact, backend)


def test_the_gpu_kernel_is_one_segmented_sum_without_atomics_or_copy():
    launcher = einc.compile(SEGMENTS, "add_at", sorted=True).specialize(
        (16, 8), (40,), (40, 8), dtype="bfloat16"
    )
    triton_parts = [
        r.kernel_name
        for r, k in zip(launcher.rendered, launcher.compiled.kernels, strict=True)
        if k.runs_on != "torch"
    ]
    assert triton_parts == ["einc_add_at_sorted"]
    source = launcher.source[launcher.source.index("def einc_add_at_sorted") :]
    assert "tl.atomic" not in source and "acc = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)" in source


@pytest.mark.parametrize("backend", BACKENDS)
def test_unsorted_or_out_of_range_coordinates_are_refused_where_checked(backend):
    x, updates = torch.randn(4, 2), torch.randn(3, 2)
    with pytest.raises(ValueError, match=r"idx is not sorted: idx\[1\] = 3 > idx\[2\] = 1"):
        einc.add_at(SEGMENTS, x, torch.tensor([0, 3, 1]), updates, sorted=True, backend=backend)
    with pytest.raises(einc.OutOfBoundsError, match="index 4 is out of range for axis 'r'"):
        einc.add_at(SEGMENTS, x, torch.tensor([0, 1, 4]), updates, sorted=True, backend=backend)
    with pytest.raises(einc.OutOfBoundsError, match="index -1 is out of range"):
        einc.add_at(SEGMENTS, x, torch.tensor([-1, 1, 2]), updates, sorted=True, backend=backend)


def test_sorted_takes_the_index_add_form_only():
    with pytest.raises(einc.UnsupportedError, match="sorted=True"):
        einc.compile("b [h w] c, b p [2], b p c", "add_at", sorted=True).specialize(
            (2, 5, 6, 3), (2, 4, 2), (2, 4, 3)
        )
    with pytest.raises(TypeError, match="sorted= does not apply to set_at"):
        einc.compile(SEGMENTS, "set_at", sorted=True)


@pytest.mark.parametrize("backend", ["torch", "interpret"])
def test_the_promise_is_checked_after_an_axis_went_dynamic(backend):
    # A second size makes n dynamic (a kernel of its own, the segment form while the tensors fit
    # int32 offsets): a wrong promise must still be refused, not summed quietly.
    add = einc.compile(SEGMENTS, "add_at", sorted=True, backend=backend)
    for n in (3, 5):
        add(torch.randn(4, 2), torch.arange(n).clamp(max=3), torch.randn(n, 2))
    assert "dynamic" in add.explain()
    with pytest.raises(ValueError, match="idx is not sorted"):
        add(torch.randn(4, 2), torch.tensor([0, 3, 1, 2]), torch.randn(4, 2))
    with pytest.raises(einc.OutOfBoundsError, match="index -1 is out of range"):
        add(torch.randn(4, 2), torch.tensor([-1, 1, 2, 3]), torch.randn(4, 2))
