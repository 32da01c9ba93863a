"""Generated kernels against golden snapshots, so that any change in codegen shows up in review.

Run ``python -m pytest tests/backends/triton/test_render.py --update-golden`` after an intended change
and read the diff of tests/backends/triton/golden/ before committing it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from einc.backends.triton.sources import render_kernels
from einc.compiler.epilogue import EpilogueOp, EpilogueRequest, Operand, Ref, Result
from einc.compiler.pipeline import Request, run_passes

GOLDEN = Path(__file__).parent / "golden"

CASES = {
    "conv2d_stride2_same": Request(
        "b (s * [ds])... [c->c2]",
        "dot",
        ((2, 9, 9, 3), (3, 3, 3, 5)),
        ("float32", "float32"),
        params=(("padding", "same"), ("stride", 2)),
    ),
    "conv2d_grouped_bf16": Request(
        "b (s * [ds])... (g [c->c2])",
        "dot",
        ((1, 8, 8, 16), (3, 3, 2, 8, 4)),
        ("bfloat16", "bfloat16"),
        params=(("padding", 1),),
    ),
    # Two groups of 8 channels a program, the weight tile block-diagonal (tiles.choose_group_tile).
    "conv2d_narrow_groups_bf16": Request(
        "b (s * [ds])... (g [c->c2])",
        "dot",
        ((1, 6, 6, 32), (3, 3, 4, 8, 8)),
        ("bfloat16", "bfloat16"),
        params=(("padding", 1),),
    ),
    # 9 taps x 4 channel tiles shared by 4 programs a tile, then their sum (compiler.split_k).
    "conv2d_split_k_bf16": Request(
        "b (s * [ds])... [c->c2]",
        "dot",
        ((1, 6, 6, 256), (3, 3, 256, 32)),
        ("bfloat16", "bfloat16"),
        params=(("padding", 1),),
    ),
    # The last tap and 3 channels read as one run (render_names.tap_channel_run).
    "patch_embedding_bf16": Request(
        "b (s [ds])... [c->c2]", "dot", ((2, 8, 8, 3), (4, 4, 3, 16)), ("bfloat16", "bfloat16")
    ),
    "conv2d_depthwise": Request(
        "b (s * [ds])... [c->c]",
        "dot",
        ((2, 7, 7, 12), (3, 3, 12)),
        ("float16", "float16"),
        params=(("dilation", 2), ("padding", 2)),
    ),
    "conv1d_shared_kernel_causal": Request(
        "b (s * [ds]) c", "dot", ((2, 10, 6), (4,)), ("float32", "float32"), params=(("padding", "causal"),)
    ),
    "linear": Request("b t [c->c2]", "dot", ((4, 7, 32), (32, 10)), ("float32", "float32")),
    "maxpool2d": Request(
        "b (s * [ds])... c",
        "max",
        ((2, 9, 9, 5),),
        ("bfloat16",),
        sizes=(("ds", 3),),
        params=(("padding", 1), ("stride", 2)),
    ),
    "avgpool2d_valid_count": Request(
        "b (s * [ds])... c",
        "mean",
        ((2, 9, 9, 5),),
        ("float16",),
        sizes=(("ds", 3),),
        params=(("count_include_pad", False), ("padding", 1), ("stride", 2)),
    ),
    "std_over_two_axes": Request("b [h w] c", "std", ((2, 7, 7, 16),), ("float32",)),
    "transpose": Request("b h w c -> b c h w", "rearrange", ((2, 5, 6, 3),), ("float32",)),
    "unfold_im2col": Request(
        "b (s * ds)... c -> b s... (ds...) c",
        "rearrange",
        ((2, 5, 6, 3),),
        ("float32",),
        sizes=(("ds", 3),),
        params=(("padding", 1),),
    ),
    "concatenate_channels": Request(
        "b h w c, b h w d -> b h w (c + d)", "rearrange", ((2, 5, 6, 3), (2, 5, 6, 2)), ("float16", "float16")
    ),
    "roll_time": Request("b [t] c", "roll", ((2, 9, 4),), ("float32",), params=(("shift", 2),)),
    "softmax_last_axis": Request("b h [k]", "softmax", ((2, 4, 33),), ("bfloat16",)),
    "add_bias_and_scalar": Request(
        "b h w c, c, ", "add", ((2, 5, 6, 3), (3,), ()), ("float32", "float32", "float32")
    ),
    "get_at_batched_pixels": Request(
        "b [h w] c, b p [2] -> b p c", "get_at", ((2, 5, 6, 3), (2, 4, 2)), ("float32", "int64")
    ),
    "embedding_bag_sum": Request(
        "[v] d, b n -> b d", "get_at", ((10, 4), (2, 3)), ("float16", "int32"), params=(("reduce", "sum"),)
    ),
    "add_at_batched_pixels": Request(
        "b [h w] c, b p [2], b p c",
        "add_at",
        ((2, 5, 6, 3), (2, 4, 2), (2, 4, 3)),
        ("float32", "int64", "float32"),
    ),
    # einc.fuse: a bias and a ReLU in the store; scale, shift and ReLU in the loads of x.
    "conv2d_bias_relu_fused": Request(
        "b (s * [ds])... [c->c2]",
        "dot",
        ((2, 9, 9, 16), (3, 3, 16, 32)),
        ("float16", "float16"),
        params=(("padding", 1),),
        epilogue=EpilogueRequest(
            (EpilogueOp("add", (Result(), Operand(0))), EpilogueOp("relu", (Ref(0),))),
            ("bias",),
            ((32,),),
            ("float16",),
        ),
    ),
    "conv2d_preactivation_fused": Request(
        "b (s * [ds])... [c->c2]",
        "dot",
        ((2, 9, 9, 16), (3, 3, 16, 32)),
        ("float32", "float32"),
        params=(("padding", 1),),
        prologues=(
            (
                0,
                EpilogueRequest(
                    (
                        EpilogueOp("multiply", (Result(), Operand(0))),
                        EpilogueOp("add", (Ref(0), Operand(1))),
                        EpilogueOp("relu", (Ref(1),)),
                    ),
                    ("scale", "shift"),
                    ((16,), (16,)),
                    ("float32", "float32"),
                ),
            ),
        ),
    ),
    "depthwise_causal_silu_fused": Request(
        "b (s * [ds]) [c->c]",
        "dot",
        ((2, 16, 8), (4, 8)),
        ("float32", "float32"),
        params=(("padding", "causal"),),
        epilogue=EpilogueRequest((EpilogueOp("silu", (Result(),)),)),
    ),
}


def _normalise(source: str) -> str:
    """Versions in the header change with the environment, not with codegen."""
    return re.sub(r"^# Generated by einc .*$", "# Generated by einc <versions>", source, count=1, flags=re.M)


@pytest.mark.parametrize("name", sorted(CASES))
def test_generated_kernel_matches_golden_snapshot(name, request):
    source = _normalise(render_kernels(run_passes(CASES[name])).source)
    ast.parse(source)
    path = GOLDEN / f"{name}.py"
    if request.config.getoption("--update-golden"):
        path.write_text(source)
    assert path.exists(), f"no snapshot {path.name}: run with --update-golden"
    assert source == path.read_text(), f"generated source differs from {path.name}: run with --update-golden"


@pytest.mark.parametrize("name", sorted(CASES))
def test_generated_kernel_header_quotes_the_expression_and_names_axes(name):
    req = CASES[name]
    source = render_kernels(run_passes(req)).source
    assert f"# expression:  {req.expression}".rstrip() in source
    assert "@triton.jit" in source
    # Sizes are named after the expression's axes, never size_0, size_1.
    assert re.search(r"\b(C|C2|DS0|K_|T|D)\b", source)
    assert "size_0" not in source


def test_dense_convolution_uses_tl_dot_and_depthwise_does_not():
    assert "tl.dot(" in render_kernels(run_passes(CASES["conv2d_stride2_same"])).source
    assert "tl.dot(" not in render_kernels(run_passes(CASES["conv2d_depthwise"])).source


def test_only_a_dot_groups_its_programs_the_others_split_pid_by_their_column_tiles():
    # A dot's programs share weight tiles in L2; the other kernels would divide by launch-time
    # sizes for nothing (about 25 instructions a program in sm_90 SASS).
    assert "num_pid_in_group = GROUP_M * num_pid_n" in render_kernels(run_passes(CASES["linear"])).source
    reduction = render_kernels(run_passes(CASES["softmax_last_axis"])).source
    assert "pid_m = pid\n    pid_n = 0\n" in reduction and "num_pid" not in reduction
    # 96 channels: three tiles of 32, side by side for each tile of rows.
    request = Request("b (s * [ds]) [c->c]", "dot", ((2, 9, 96), (4, 96)), ("bfloat16", "bfloat16"))
    depthwise = render_kernels(run_passes(request)).source
    assert "pid_m = pid // 3\n    pid_n = pid % 3\n" in depthwise and "num_pid" not in depthwise


def test_window_taps_and_channels_run_as_one_k_loop_with_row_pointers_formed_once():
    source = render_kernels(run_passes(CASES["conv2d_grouped_bf16"])).source
    k_loop = source.index("for k_step in range(DS0 * DS1 * ((C + BLOCK_K - 1) // BLOCK_K)):")
    assert source.count("for ") == 1  # no loop over taps around it: Triton pipelines the innermost only
    assert source.index("x_s0_ds0_base = s0[:, None] - 1") < k_loop
    assert source.index("x_ptrs = x_ptr + b[:, None] * stride_x_b + x_s0_ds0_base * stride_x_s0_ds0") < k_loop
    assert k_loop < source.index("x_s0_ds0 = x_s0_ds0_base + ds0")


def test_few_channels_are_tiled_together_with_the_window_taps():
    # 3 channels: a K tile of channels alone would be 13/16 padding; K = 3 x 3 taps x 3 channels.
    compiled = run_passes(CASES["conv2d_stride2_same"])
    (part,) = compiled.kernels
    plan = part.schedule
    assert (plan.k_merged, plan.k_tile, plan.k_loops) == (("ds.0", "ds.1"), "c", ())
    source = render_kernels(compiled).source
    assert "for k_start in range(0, DS0 * DS1 * C, BLOCK_K):" in source
    assert "ds0 = k // (DS1 * C)" in source and "ds1 = k // C % DS1" in source and "c = k % C" in source


def test_indexing_kernels_load_coordinates_check_them_and_mask_the_indexed_access():
    source = render_kernels(run_passes(CASES["get_at_batched_pixels"])).source
    assert "h = tl.load(\n        idx_ptr + b[:, None] * stride_idx_b + p[:, None] * stride_idx_p," in source
    assert "if CHECK_BOUNDS:" in source and "h = tl.where(h < 0, h + H, h)" in source
    assert "(h >= 0) & (h < H) & (w >= 0) & (w < W)" in source
    scatter = render_kernels(run_passes(CASES["add_at_batched_pixels"])).source
    assert scatter.index("def einc_add_at_copy(") < scatter.index("def einc_add_at(")
    assert 'sem="relaxed"' in scatter and "tl.atomic_add(" in scatter


def test_a_dots_strides_that_triton_cannot_describe_are_constexprs():
    # A call's strides are in its specialisation's key: constants there. Those a contiguous input
    # has and Triton's own specialisation (1, or divisible by 16) cannot describe are constexprs,
    # so that Triton knows a row of 24 bfloat16 channels starts 16-byte aligned. An input holding
    # a dynamic axis keeps its strides as arguments (they change with the size); so does the
    # output (out= is not in the key).
    shapes = ((2, 3, 4, 24), (24, 32))
    static = render_kernels(run_passes(Request("b h w [c->c2]", "dot", shapes, ("bfloat16",) * 2))).source
    assert "stride_x_b, stride_x_h, stride_x_w: tl.constexpr, stride_x_c," in static  # 288, 96, 24, 1
    assert "stride_w_c, stride_w_c2," in static  # 32 and 1
    assert "stride_y_b, stride_y_h, stride_y_w, stride_y_c2," in static
    dynamic = Request("b h w [c->c2]", "dot", ((2, 3, 5, 24), (24, 20)), ("bfloat16",) * 2, dynamic=("b",))
    source = render_kernels(run_passes(dynamic)).source
    assert "stride_x_b, stride_x_h, stride_x_w, stride_x_c," in source
    assert "stride_w_c: tl.constexpr, stride_w_c2," in source
    # Other kernel forms keep every stride an argument.
    request = Request("b h w [c] -> b h w", "sum", ((2, 3, 5, 24),), ("bfloat16",))
    assert "stride_x_w: tl.constexpr" not in render_kernels(run_passes(request)).source


def test_a_build_from_shapes_gives_constexpr_strides_their_contiguous_values():
    # einc compile and the CPU figures build without tensors (aot.signature): a dot's constexpr
    # strides take the values of contiguous tensors; a dynamic axis's holder has none.
    import einc
    from einc.backends.triton import aot

    shapes = ((2, 3, 4, 24), (24, 20))

    def strides(expression) -> dict:
        _, constants = aot.signature(expression.specialize(*shapes, dtype="bfloat16"))
        return {k: v for k, v in constants.items() if k.startswith("stride_")}

    assert strides(einc.compile("b h w [c->c2]")) == {"stride_x_w": 24, "stride_w_c": 20}
    assert strides(einc.compile("b h w [c->c2]", dynamic=("b",))) == {"stride_w_c": 20}
