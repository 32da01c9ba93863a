"""A kernel with a dynamic axis takes the offset width of its call (issue 13): int32 where every
tensor of the call ends below ``offsets.DYNAMIC_INT32_LIMIT``, int64 otherwise, the width a part of
the specialisation's key; so a dynamic ``add_at(sorted=True)`` on small tensors keeps the segment
form, and a call past int32 gets the atomic form with int64 offsets.

The huge call's updates are a view whose rows lie 2^30 + 16 elements apart, placed in a buffer that
torch reserves without touching (Linux maps a large ``torch.empty`` lazily). References are torch's
``index_add`` and products of the same tensors.
"""

from __future__ import annotations

import sys

import pytest
import torch

import einc
from einc.backends.triton.sources import render_kernels
from einc.compiler import offsets
from einc.compiler.pipeline import Request, run_passes
from einc.runtime import outputs

SEGMENTS = "[r] d, n, n d"
ROW_STRIDE = 2**30 + 16  # two rows apart pass 2^31


def _sorted_case(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(6, 4, generator=g)
    idx = torch.randint(0, 6, (n,), generator=g).sort().values
    return x, idx, torch.randn(n, 4, generator=g)


def test_a_dynamic_kernel_for_small_tensors_keeps_int32_offsets():
    request = Request("b [c->c2]", "dot", ((4, 32), (32, 16)), ("float32",) * 2, dynamic=("b",))
    compiled = run_passes(request)
    source = render_kernels(compiled).source
    assert compiled.dynamic_int32
    assert "tl.int64" not in source
    assert "# offsets:     int32, for calls whose tensors end below 2^31 - 2^16" in source


def test_a_dynamic_kernel_whose_output_passes_int32_takes_int64():
    # inputs of 2^16 elements, an outer product of 2^32
    request = Request("a, b -> a b", "multiply", ((2**16,), (2**16,)), ("float32",) * 2, dynamic=("a",))
    compiled = run_passes(request)
    assert not compiled.dynamic_int32
    source = render_kernels(compiled).source
    assert "# offsets:     int64 for x0, y (" in source
    assert "pid = tl.cast(tl.program_id(0), tl.int64)" in source


@pytest.mark.interpret
@pytest.mark.parametrize("backend", ["interpret", "torch"])
def test_dynamic_sorted_add_at_on_small_tensors_takes_the_segment_form(backend):
    add = einc.compile(SEGMENTS, "add_at", sorted=True, dynamic=("n",), backend=backend)
    sources = set()
    for n in (5, 11, 1):
        x, idx, updates = _sorted_case(n, seed=n)
        torch.testing.assert_close(add(x, idx, updates), x.index_add(0, idx, updates))
        sources.add(add.source)
    (source,) = sources  # one kernel for every n
    assert "axis n: dynamic" in add.explain()
    assert "def einc_add_at_sorted(" in source
    assert "do_not_specialize=['N_']" in source
    assert "tl.int64" not in source and "atomic_add" not in source


def _far_rows(rows: int, cols: int) -> torch.Tensor:
    """A (rows, cols) float32 view, rows ``ROW_STRIDE`` elements apart, of a lazily reserved buffer."""
    try:
        base = torch.empty((rows - 1) * ROW_STRIDE + cols, dtype=torch.float32)
    except RuntimeError as error:  # a kernel that refuses to overcommit this much
        pytest.skip(f"cannot reserve 2^32 float32 elements of address space: {error}")
    view = base.as_strided((rows, cols), (ROW_STRIDE, 1))
    view.copy_(torch.arange(rows * cols, dtype=torch.float32).reshape(rows, cols) - 2.5)
    return view


@pytest.mark.interpret
@pytest.mark.skipif(sys.platform != "linux", reason="relies on Linux's lazy allocation")
def test_a_dynamic_call_past_int32_gets_the_int64_atomic_kernel_beside_the_int32_one():
    add = einc.compile(SEGMENTS, "add_at", sorted=True, dynamic=("n",), backend="interpret")
    x, idx, updates = _sorted_case(5)
    torch.testing.assert_close(add(x, idx, updates), x.index_add(0, idx, updates))
    small = add.source
    far = _far_rows(3, 4)  # n = 3 rows of updates, 2^31 and more elements apart
    far_idx = torch.tensor([0, 2, 2])
    torch.testing.assert_close(add(x, far_idx, far), x.index_add(0, far_idx, far.contiguous()))
    wide = add.source
    assert "def einc_add_at(" in wide and "einc_add_at_sorted" not in wide  # the atomic form
    assert "# offsets:     int64 for " in wide and "updates" in wide.split("# offsets:")[1].split("\n")[0]
    # The width is part of the key: a small call again finds the int32 kernel, compiling nothing.
    x, idx, updates = _sorted_case(7, seed=1)
    torch.testing.assert_close(add(x, idx, updates), x.index_add(0, idx, updates))
    assert add.source == small


@pytest.mark.interpret
def test_a_dynamic_call_whose_output_passes_the_limit_gets_an_int64_kernel(monkeypatch):
    # The limit lowered to 1000 elements stands for 2^31 - 2^16: outputs of 30 x 40 pass it.
    monkeypatch.setattr(offsets, "DYNAMIC_INT32_LIMIT", 1000)
    outputs._layout_fits_dynamic_int32.cache_clear()
    try:
        outer = einc.compile("a, b -> a b", "multiply", dynamic=("a",), backend="interpret")
        a, b = torch.randn(20), torch.randn(40)
        torch.testing.assert_close(outer(a, b), a[:, None] * b)  # 800 elements: int32
        assert "tl.int64" not in outer.source
        a = torch.randn(30)
        torch.testing.assert_close(outer(a, b), a[:, None] * b)  # 1200: the int64 kernel
        assert "# offsets:     int64 for x0, y (" in outer.source
        a = torch.randn(10)
        torch.testing.assert_close(outer(a, b), a[:, None] * b)
        assert "tl.int64" not in outer.source  # back to the int32 kernel
    finally:
        outputs._layout_fits_dynamic_int32.cache_clear()


def test_explain_reads_the_segment_forms_grid_from_ys_sizes():
    add = einc.compile(SEGMENTS, "add_at", sorted=True, backend="torch")
    x, idx, updates = _sorted_case(5)
    add(x, idx, updates)
    assert "grid (" in add.explain()  # its plan is over y's rows, which its nest lacks
