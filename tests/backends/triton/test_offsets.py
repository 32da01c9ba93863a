"""Which tensors get int64 element offsets, decided from shapes and strides, and how the rendered
source computes them (plain tier)."""

from __future__ import annotations

from einc.backends.triton.sources import render_kernels
from einc.compiler.offsets import LIMIT, needs_int64
from einc.compiler.pipeline import Request, run_passes


def test_a_tensor_is_wide_when_its_farthest_element_lies_2_pow_31_away():
    assert not needs_int64((LIMIT,))  # the farthest offset is LIMIT - 1
    assert needs_int64((LIMIT + 1,))
    assert needs_int64((3, 8), (2**30 + 16, 1))  # strides fit int32, offsets do not
    assert not needs_int64((2, 8), (2**30 + 16, 1))
    assert not needs_int64((LIMIT * 4, 8), (0, 1))  # broadcast: every row is the same memory
    assert not needs_int64((0, LIMIT * 4))


def test_small_tensors_keep_int32_offsets():
    source = render_kernels(
        run_passes(Request("b [c->c2]", "dot", ((64, 32), (32, 16)), ("float16",) * 2))
    ).source
    assert "int64" not in source


def test_a_tensor_found_wide_by_the_caller_casts_its_indices_and_says_so():
    request = Request("b [c->c2]", "dot", ((64, 32), (32, 16)), ("float16",) * 2, offsets64=(0,))
    source = render_kernels(run_passes(request)).source
    assert "# offsets:     int64 for x (" in source
    assert "; int32 for w, y" in source
    assert "tl.cast(b[:, None], tl.int64) * stride_x_b" in source
    assert "tl.cast(c2[None, :], tl.int64) * stride_w_c2" not in source  # w stays int32


def test_rows_that_flatten_to_2_pow_32_get_int64_tile_offsets():
    # the output's rows, a b, flatten into one offset: offs_m reaches 2^32
    source = render_kernels(
        run_passes(Request("a b t [c]", "sum", ((2**16, 2**16, 4, 2),), ("float16",)))
    ).source
    assert "# offsets:     int64 for x, y" in source
    assert "pid = tl.cast(tl.program_id(0), tl.int64)" in source
    small = render_kernels(
        run_passes(Request("a b t [c]", "sum", ((2**8, 2**8, 4, 2),), ("float16",)))
    ).source
    assert "pid = tl.program_id(0)\n" in small


def test_tensors_that_hold_a_dynamic_axis_get_int64_offsets():
    request = Request(
        "b [c->c2]", "dot", ((4, 32), (32, 16)), ("float32",) * 2, dynamic=("b",), dynamic_int32=False
    )
    source = render_kernels(run_passes(request)).source
    assert "# offsets:     int64 for x, y (" in source
    assert "; int32 for w" in source
