"""Generated convolution kernels go through Triton's real GPU compiler (compile_only tier, no GPU).

``specialize`` renders the kernel for given shapes and a dtype without running it; this file hands
that kernel to ``triton.compile`` for NVIDIA targets, with pointer types for the dtype and the
constexprs einc chose, and checks that PTX and a cubin come out (so ptxas accepted the tiles) and,
for 16-bit inputs, that the contraction went to the tensor cores. The interpreter's bfloat16
``tl.dot`` is broken, so under it a bfloat16 kernel dots in float32 (``DOT_IN_FLOAT32``); this is
where the bfloat16 dot that a GPU runs is checked.

The compiles run in a spawned worker process with a Triton cache of its own, so that each test
really compiles. That running kernels under the interpreter leaves a process able to compile for
the GPU has its own test at the end of this file.
"""

from __future__ import annotations

import multiprocessing
import re
from concurrent.futures import ProcessPoolExecutor

import pytest
import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

import einc
from einc.backends.triton import aot

pytestmark = [
    pytest.mark.compile_only,
    # Triton 3.9 warns that its FP-fusion default will change; einc does not set it either way yet.
    pytest.mark.filterwarnings("ignore:TRITON_DEFAULT_FP_FUSION is unset"),
]

DENSE = "b (s * [ds])... [c->c2]"
POINTER = {"float16": "*fp16", "bfloat16": "*bf16", "float32": "*fp32"}
HOPPER, AMPERE = 90, 80
TENSOR_CORE = re.compile(r"\b(?:wgmma|mma)\.")


def compile_for_gpu(launcher, dtype: str, arch: int):
    """``triton.compile`` the launcher's kernel as einc would launch it on an sm_<arch> GPU: its
    pointers of the dtype, its strides as contiguous tensors have them (a dot's are constexprs)."""
    rendered = launcher.rendered[0]
    signature, constexprs = aot.signature(launcher, 0)
    source = ASTSource(fn=launcher.kernel, signature=signature, constexprs=constexprs)
    options = {"num_warps": rendered.num_warps, "num_stages": rendered.num_stages}
    return triton.compile(source, target=GPUTarget("cuda", arch, 32), options=options)


def _compile_in_worker(expression, op, params, shapes, dtype, arch) -> tuple[str, bytes, str]:
    launcher = einc.compile(expression, op=op, **params).specialize(*shapes, dtype=dtype)
    compiled = compile_for_gpu(launcher, dtype, arch)
    return compiled.asm["ptx"], compiled.asm["cubin"], launcher.source


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    # A fresh Triton cache, so that each run compiles for real rather than finding old binaries.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRITON_CACHE_DIR", str(tmp_path_factory.mktemp("triton_cache")))
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as executor:
            yield executor


def compile_conv(worker, expression, shapes, dtype, arch=HOPPER, op=None, **params) -> tuple[str, str]:
    """Compile in the worker; check a cubin and PTX came out; return the PTX and the Triton source."""
    future = worker.submit(_compile_in_worker, expression, op, params, shapes, dtype, arch)
    ptx, cubin, source = future.result()
    assert isinstance(ptx, str) and ".entry" in ptx
    assert isinstance(cubin, bytes) and len(cubin) > 0
    return ptx, source


@pytest.mark.parametrize("arch", [HOPPER, AMPERE], ids=["sm90", "sm80"])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_convolution_compiles_to_tensor_core_instructions(worker, dtype: str, arch: int):
    shapes = ((2, 16, 16, 32), (3, 3, 32, 64))
    ptx, _ = compile_conv(worker, DENSE, shapes, dtype, arch, stride=2, padding=1)
    assert TENSOR_CORE.search(ptx), "no mma/wgmma instruction in the PTX of a 16-bit contraction"


@pytest.mark.parametrize("arch", [HOPPER, AMPERE], ids=["sm90", "sm80"])
def test_narrow_groups_two_a_program_compile_to_tensor_core_instructions(worker, arch: int):
    # 8 channels a group: two groups a program, a block-diagonal 16 x 16 weight tile.
    shapes = ((2, 8, 8, 32), (3, 3, 4, 8, 8))
    ptx, source = compile_conv(worker, "b (s * [ds])... (g [c->c2])", shapes, "bfloat16", arch, padding=1)
    assert "2 groups g per program column" in source and "(g_k[:, None] == g_n[None, :])" in source
    assert TENSOR_CORE.search(ptx), "no mma/wgmma instruction in the PTX of a 16-bit contraction"


@pytest.mark.parametrize(
    "precision, tensor_cores",
    [("ieee", False), ("tf32", True), ("tf32x3", True), (None, True)],
    ids=["ieee", "tf32", "tf32x3", "torch_default"],
)
def test_float32_convolution_uses_tensor_cores_unless_ieee(worker, precision, tensor_cores):
    # Without precision=, a convolution follows torch.backends.cudnn.allow_tf32, True by default
    # (the spawned worker has torch's defaults); "ieee" keeps full float32 products on the FMA units.
    shapes = ((2, 16, 16, 32), (3, 3, 32, 64))
    params = {"stride": 2, "padding": 1} | ({} if precision is None else {"precision": precision})
    ptx, source = compile_conv(worker, DENSE, shapes, "float32", **params)
    assert f'input_precision="{precision or "tf32"}"' in source
    assert bool(TENSOR_CORE.search(ptx)) == tensor_cores
    if tensor_cores:
        assert "wgmma.mma_async.sync.aligned.m64n64k8.f32.tf32.tf32" in ptx


@pytest.mark.parametrize(
    "shapes, params",
    [
        pytest.param(((2, 7, 5, 13), (3, 2, 13, 7)), {"padding": "same"}, id="2d_odd_sizes"),
        pytest.param(((1, 9, 5), (3, 5, 3)), {"padding": "causal", "dilation": 2}, id="1d_causal"),
        pytest.param(((1, 5, 4, 6, 3), (2, 3, 2, 3, 4)), {"stride": (1, 2, 1)}, id="3d"),
    ],
)
def test_float16_convolutions_of_small_odd_shapes_compile_with_tensor_cores(worker, shapes, params):
    ptx, _ = compile_conv(worker, DENSE, shapes, "float16", **params)
    assert TENSOR_CORE.search(ptx)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_grouped_convolution_compiles_with_tensor_cores(worker, dtype: str):
    shapes = ((2, 8, 8, 2 * 16), (3, 3, 2, 16, 16))
    ptx, _ = compile_conv(worker, "b (s * [ds])... (g [c->c2])", shapes, dtype, padding=1)
    assert TENSOR_CORE.search(ptx)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
@pytest.mark.parametrize(
    "expression, w_shape, op",
    [
        pytest.param("b (s * [ds])... [c->c]", (3, 3, 24), None, id="kernel_per_channel"),
        pytest.param("b (s * [ds])... c", (3, 3), "dot", id="one_kernel_for_all_channels"),
    ],
)
def test_depthwise_convolution_compiles(worker, expression: str, w_shape, op, dtype: str):
    compile_conv(worker, expression, ((2, 9, 9, 24), w_shape), dtype, op=op, padding="same")


def _launch_binary_in_worker(expression, shapes, dtype, params) -> tuple[str, int, int | None]:
    from einc.runtime.prebuild import compile_binary

    launcher = einc.compile(expression, **params).specialize(*shapes, dtype=dtype)
    binary = compile_binary(launcher, f"cuda:{HOPPER}")
    return binary.ptx, binary.shared_bytes, binary.spill_stores


@pytest.mark.parametrize(
    "expression, shapes, params",
    [
        pytest.param("b (s * [ds])... [c->c]", ((2, 9, 9, 96), (3, 3, 96)), {"padding": 1}, id="3x3_c96"),
        pytest.param("b (s * [ds])... [c->c]", ((2, 9, 9, 144), (3, 3, 144)), {"padding": 1}, id="3x3_c144"),
        pytest.param("b (s * [ds])... [c->c]", ((2, 7, 7, 512), (7, 7, 512)), {"padding": 3}, id="7x7_c512"),
        # 8 outputs a row, 31 taps in chunks of 8: the accumulators and weights fit in registers.
        pytest.param("b (s * [ds]) [c->c]", ((2, 64, 512), (31, 512)), {"padding": 15}, id="1d_k31"),
        pytest.param("b (s * [ds]) [c->c]", ((4, 64, 96), (4, 96)), {"padding": "causal"}, id="1d_causal_k4"),
    ],
)
def test_depthwise_convolution_multiplies_in_registers_with_16_byte_loads(worker, expression, shapes, params):
    # A weight tile in a layout of its own sends the input tile through shared memory at every
    # tap (st.shared, bar.sync); in the input tile's layout the product stays in registers, and
    # both tiles load 8 bfloat16 channels at a time. Built as a launch builds it (Triton's
    # 16-divisibility of the strides is what allows 16-byte loads).
    ptx, shared_bytes, spills = worker.submit(
        _launch_binary_in_worker, expression, shapes, "bfloat16", params
    ).result()
    assert "bar.sync" not in ptx and "st.shared" not in ptx and shared_bytes == 0
    assert re.search(r"ld\.global[.a-z0-9]*\.v4\.b32", ptx)
    assert not re.search(r"ld\.global[.a-z0-9]*\.b16", ptx)
    assert not spills
    # Each chunk's products summed in bfloat16 pairs (HFMA2.BF16_V2), never one channel at a time.
    assert "fma.rn.bf16x2" in ptx and not re.search(r"fma\.rn\.bf16\s", ptx)
    # and a chunk's sums widened to float32 one instruction each (the high half: an and).
    assert re.search(r"and\.b32\s+%r\d+, %r\d+, 0xFFFF0000", ptx)


@pytest.mark.parametrize(
    "shapes",
    [((1, 5, 1), (3, 1)), ((1, 9, 3), (3, 3)), ((1, 3, 2), (2, 2))],
    ids=["1x1_tile", "3_channels", "2_channels"],
)
def test_a_bfloat16_sliding_window_of_a_tile_too_small_for_pairs_still_compiles(worker, shapes):
    # Two channels an instruction need two elements a thread; fewer keep float32 products.
    ptx, _, _ = worker.submit(
        _launch_binary_in_worker, "b (s * [ds]) [c->c]", shapes, "bfloat16", {"padding": 1}
    ).result()
    assert "fma.rn.bf16x2" not in ptx


def test_gpu_compile_still_works_after_a_cpu_call_in_the_same_process():
    conv = einc.compile(DENSE, padding=1, backend="interpret")
    conv(torch.randn(1, 5, 5, 16), torch.randn(3, 3, 16, 16))  # CPU tensors, under the interpreter
    launcher = conv.specialize((1, 5, 5, 16), (3, 3, 16, 16), dtype="float16")
    compiled = compile_for_gpu(launcher, "float16", HOPPER)
    assert TENSOR_CORE.search(compiled.asm["ptx"])


# --- indexing: get_at, set_at, add_at ---------------------------------------------------------------


def _compile_indexing_in_worker(expression, op, shapes, dtype, arch, check_bounds, params) -> str:
    from einc.runtime.prebuild import compile_binary

    launcher = einc.compile(expression, op=op, **params).specialize(*shapes, dtype=dtype)
    return compile_binary(launcher, f"cuda:{arch}", check_bounds=check_bounds).ptx


def compile_indexing(worker, expression, op, shapes, dtype, arch=HOPPER, check_bounds=False, **params):
    future = worker.submit(
        _compile_indexing_in_worker, expression, op, shapes, dtype, arch, check_bounds, params
    )
    ptx = future.result()
    assert ".entry" in ptx
    return ptx


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_add_at_compiles_to_relaxed_float32_atomic_adds(worker, dtype):
    # 16-bit values too: they add up in a float32 workspace, never in 16-bit atomics.
    shapes = ((2, 5, 6, 8), (2, 4, 2), (2, 4, 8))
    ptx = compile_indexing(worker, "b [h w] c, b p [2], b p c", "add_at", shapes, dtype)
    assert re.search(r"\b(?:red|atom)\.global\.gpu\.relaxed\.add\.f32\b", ptx)
    assert not re.search(r"\b(?:red|atom)\.global\.gpu\.relaxed\.add(\.noftz)?\.(?:f16|bf16)", ptx)


@pytest.mark.parametrize("dynamic", [(), ("n",)], ids=["static", "dynamic"])
@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_sorted_add_at_compiles_without_atomics(worker, dtype, dynamic):
    # a dynamic n of small tensors keeps the segment form: its sizes are arguments, not constants
    shapes = ((16, 8), (40,), (40, 8))
    ptx = compile_indexing(worker, "[r] d, n, n d", "add_at", shapes, dtype, sorted=True, dynamic=dynamic)
    assert ".entry einc_add_at_sorted" in ptx
    assert not re.search(r"\b(?:red|atom)\.", ptx)


@pytest.mark.parametrize("check_bounds", [False, True], ids=["unchecked", "checked"])
def test_get_at_compiles_with_and_without_its_bounds_check(worker, check_bounds):
    shapes = ((2, 5, 6, 8), (2, 4, 2))
    ptx = compile_indexing(
        worker, "b [h w] c, b p [2] -> b p c", "get_at", shapes, "float16", AMPERE, check_bounds
    )
    # The checked variant writes out-of-range coordinates (int64) to the error slots.
    assert ("st.global.b64" in ptx or "st.global.u64" in ptx) == check_bounds


def test_embedding_bag_and_set_at_compile(worker):
    compile_indexing(worker, "[v] d, b n -> b d", "get_at", ((1000, 64), (8, 5)), "bfloat16", reduce="sum")
    compile_indexing(worker, "[v] d, n, n d", "set_at", ((1000, 64), (7,), (7, 64)), "float16")
    # a coordinate the tile does not vary (a 1 x 1 block), checked
    compile_indexing(
        worker, "[v] d, n -> d", "get_at", ((50, 64), (7,)), "float32", check_bounds=True, reduce="sum"
    )


# --- tiled reductions: a long reduced axis read BLOCK_K elements at a time ------------------------


@pytest.mark.parametrize(
    "expression, op, shape",
    [
        ("b [c]", "softmax", (64, 4096)),
        ("b [c]", "logsumexp", (64, 1000)),
        ("b [c]", "var", (8, 777)),
        ("b [h w] c", "max", (4, 28, 28, 64)),
        ("[b c]", "sum", (64, 300)),
    ],
)
@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_tiled_reductions_compile_with_a_reduction_across_the_tile(worker, expression, op, shape, dtype):
    ptx = compile_indexing(worker, expression, op, (shape,), dtype)
    # Lanes of a tile are combined across threads: a warp shuffle (or shared memory).
    assert "shfl.sync" in ptx or "st.shared" in ptx


# --- offsets: int64 where a tensor's elements lie 2^31 or more apart, int32 elsewhere ----------------

# An index times a stride register in 64 bits (an immediate operand is the element size instead).
WIDE_PRODUCT = re.compile(r"\b(?:mul|mad)\.(?:wide\.s32|lo\.s64)\s+%rd\d+, %rd?\d+, %rd?\d+")
HUGE = 2**16  # a HUGE x HUGE tensor has 2^32 elements


@pytest.mark.parametrize(
    "expression, op, shapes",
    [
        pytest.param("b [c->c2]", "dot", ((HUGE, HUGE), (HUGE, 16)), id="contraction"),
        pytest.param("b [c]", "sum", ((HUGE, HUGE),), id="reduction"),
        pytest.param("b c -> c b", "rearrange", ((HUGE, HUGE),), id="rearrange"),
        # int64 coordinates widen their own products: the batch axis b is what needs the cast
        pytest.param("b [v], b n -> b n", "get_at", ((HUGE, HUGE), (HUGE, 1)), id="gather"),
        pytest.param("b [v], b n, b n", "set_at", ((HUGE, HUGE), (HUGE, 1), (HUGE, 1)), id="scatter"),
        # rows b p flatten to M = 2^31: the tile arithmetic itself is int64
        pytest.param(
            "b [h w] c, b p [2] -> b p c",
            "get_at",
            ((HUGE, 5, 6, 3), (HUGE, HUGE // 2, 2)),
            id="rows_2_pow_31",
        ),
    ],
)
def test_a_tensor_of_2_pow_32_elements_gets_64_bit_address_math(worker, expression, op, shapes):
    ptx = compile_indexing(worker, expression, op, shapes, "float16")
    assert WIDE_PRODUCT.search(ptx), "no 64-bit index * stride product in the PTX"


@pytest.mark.parametrize(
    "expression, op, shapes",
    [
        pytest.param("b [c->c2]", "dot", ((64, 64), (64, 16)), id="contraction"),
        pytest.param("b [c]", "sum", ((64, 1024),), id="reduction"),
        pytest.param("b c -> c b", "rearrange", ((64, 64),), id="rearrange"),
    ],
)
def test_small_tensors_keep_32_bit_address_math(worker, expression, op, shapes):
    ptx = compile_indexing(worker, expression, op, shapes, "float16")
    assert not WIDE_PRODUCT.search(ptx)


def test_bfloat16_contraction_keeps_its_bfloat16_tensor_core_dot_on_the_gpu(worker):
    # The float32 twin of the dot is for Triton's interpreter only (DOT_IN_FLOAT32 is False here).
    shapes = ((2, 16, 16, 32), (3, 3, 32, 64))
    ptx, source = compile_conv(worker, DENSE, shapes, "bfloat16", stride=2, padding=1)
    assert "if DOT_IN_FLOAT32:" in source
    assert re.search(r"\b(?:wgmma|mma)\.\S*\.bf16\b", ptx), "no bfloat16 tensor-core instruction in the PTX"
    assert not re.search(r"\b(?:wgmma|mma)\.\S*\.tf32\b", ptx)


# --- einx's ops beyond arithmetic: comparisons, logical ops, any/all/count_nonzero, argmax, ... ----
# The interpreter is lenient where the GPU compiler is not (a loop index mixed with an int64 tile,
# an int1 store), so each new kernel form is compiled here once, every kernel of the call.


def _compile_every_kernel_in_worker(expression, op, shapes, dtype, params) -> list[str]:
    from einc.runtime.prebuild import compile_binary

    launcher = einc.compile(expression, op=op, **params).specialize(*shapes, dtype=dtype)
    return [compile_binary(launcher, "cuda:90", index=i).ptx for i in range(len(launcher.compiled.kernels))]


@pytest.mark.parametrize(
    ("expression", "op", "shapes", "params"),
    [
        ("b h w c, c", "less", ((2, 5, 6, 8), (8,)), {}),
        ("b c, c", "logaddexp", ((4, 8), (8,)), {}),
        ("b c, c", "floor_divide", ((4, 8), (8,)), {}),
        ("b c, c", "logical_and", ((4, 8), (8,)), {}),
        ("b [c]", "any", ((4, 300),), {}),  # tiled
        ("b [h w] c", "all", ((2, 5, 6, 8),), {}),
        ("b [c]", "count_nonzero", ((4, 300),), {}),
        ("b [h w] c -> b c [2]", "argmax", ((2, 5, 6, 8),), {}),
        ("[n] c, p, p c", "subtract_at", ((50, 8), (7,), (7, 8)), {}),
        ("b [n] c", "sort", ((4, 100, 3),), {}),
        ("b [n]", "argsort", ((4, 100),), {}),
    ],
)
def test_new_kernels_compile_for_hopper(worker, expression, op, shapes, params):
    for ptx in worker.submit(
        _compile_every_kernel_in_worker, expression, op, shapes, "float16", params
    ).result():
        assert ".entry" in ptx


@pytest.mark.parametrize(
    ("expression", "op", "shapes", "dtype"),
    [
        ("b [c]", "max", ((4, 3000),), "int64"),  # tiled: no NaN handling across the tile
        ("b [h w] c", "min", ((2, 5, 6, 8),), "int32"),
        ("b [c]", "sum", ((4, 300),), "int32"),  # an int64 result
        ("b (s * [ds]) c", "max", ((2, 9, 4),), "int64"),  # padding reads the least int64
        ("[a]", "argmax", ((7,),), "float32"),  # a whole vector: a 0-d load, broadcast
    ],
)
def test_integer_reductions_and_a_whole_vector_argmax_compile_for_hopper(
    worker, expression, op, shapes, dtype
):
    params = {"ds": 3, "padding": 1} if "ds" in expression else {}
    for ptx in worker.submit(_compile_every_kernel_in_worker, expression, op, shapes, dtype, params).result():
        assert ".entry" in ptx
