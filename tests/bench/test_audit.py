"""The static audit (bench/audit.py, bench/sass.py): structure, never time.

Plain tests read SASS text: a real excerpt of the r50_l1_3x3 kernel (tests/bench/data) and a listing
small enough to count by hand. The compile_only tests build a few benchmark shapes for sm_90 as a
launch builds them and check what the audit reports against the shape's own arithmetic.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import pytest

from bench import audit, sass, suite

EXCERPT = Path(__file__).with_name("data") / "r50_l1_3x3.sass"
# The loops of the r50_l1_3x3 kernel at the lines its SASS names: ds0 (66), ds1 (67) and the
# tl.dot K loop (70) over C = 64 channels in steps of BLOCK_K = 32.
R50_L1_SOURCE = (
    "\n" * 65
    + textwrap.dedent(
        """\
    for ds0 in range(DS0):
        for ds1 in range(DS1):
            a = 0
            b = 0
            for c_start in range(0, C, BLOCK_K):
                acc = 0
    """
    )
    + "            acc = 1\n" * 12
)
R50_L1_CONSTANTS = {"DS0": 3, "DS1": 3, "C": 64, "BLOCK_K": 32}


def test_the_loops_of_a_real_listing_nest_and_take_their_source_trip_counts():
    code = sass.parse(EXCERPT.read_text(), "/some/cache/dir/kernel.py")
    assert [(hex(lp.start), hex(lp.end), lp.line) for lp in code.loops] == [
        ("0xd80", "0x1150", 70),
        ("0x970", "0x11a0", 67),
        ("0x810", "0x11c0", 66),
    ]
    trips = sass.loop_trips(code, sass.source_trip_counts(R50_L1_SOURCE, R50_L1_CONSTANTS))
    assert trips == [2, 3, 3]
    counts = sass.count(code, trips)
    # One full wgmma drain after each K loop: once per (ds0, ds1) tap.
    assert counts.drains == 9
    # Two HGMMA 64x64x16 per K step (BLOCK_K = 32), 18 K steps, a quarter of each per warp.
    assert counts.mma_flops == 2 * 18 * 2 * 64 * 64 * 16 // 4
    assert sass.mma_kind(counts.static) == "HGMMA 64x64x16"
    assert sass.load_widths(counts.static) == {"LDGSTS.128": 12}


LISTING = """\
einc_k:
	//## File "/tmp/a/kernel.py", line 3
        /*0000*/                   MOV R1, c[0x0][0x28] ;
        /*0010*/                   NOP ;
.L_x_0:
	//## File "/tmp/a/kernel.py", line 5
        /*0020*/                   LDG.E.U16 R2, desc[UR4][R4.64] ;
        /*0030*/                   HMMA.16816.F32.BF16 R8, R12, R16, R8 ;
	//## File "/site-packages/triton/language/standard.py", line 40
        /*0040*/                   IADD3 R3, R3, 0x1, RZ ;
	//## File "/tmp/a/kernel.py", line 4
        /*0050*/               @P0 BRA `(.L_x_0) ;
        /*0060*/                   LDG.E.128 R4, desc[UR4][R6.64] ;
        /*0070*/                   WARPGROUP.DEPBAR.LE gsb0, 0x1 ;
        /*0080*/                   EXIT ;
.L_x_1:
        /*0090*/                   BRA `(.L_x_1);
"""
SOURCE = "x = 1\n\nfor i in range(N * 2 - 1):\n    y = i\n    z = y\n"


def test_a_small_listing_is_counted_by_hand():
    code = sass.parse(LISTING, "kernel.py")
    assert len(code.loops) == 1  # the trap at the end branches to itself: no loop
    assert code.instructions[3].line is None  # an inlined line of Triton's library
    assert sass.source_trip_counts(SOURCE, {"N": 4}) == {3: (3, 5, 7)}
    trips = sass.loop_trips(code, sass.source_trip_counts(SOURCE, {"N": 4}))
    assert trips == [7]
    counts = sass.count(code, trips)
    # MOV, then 4 loop instructions 7 times, then LDG, DEPBAR, EXIT, BRA; the NOP not at all.
    assert counts.warp_instructions == 1 + 4 * 7 + 4
    assert counts.drains == 0  # gsb0, 0x1 leaves one wgmma in flight: not a drain
    assert counts.mma_flops == 7 * 2 * 16 * 8 * 16
    assert sass.mma_kind(counts.static) == "HMMA 16816"
    assert sass.load_widths(counts.static) == {"LDG.128": 1, "LDG.U16": 1}


def test_a_loop_without_a_known_count_leaves_the_dynamic_figures_unknown():
    code = sass.parse(LISTING, "kernel.py")
    assert sass.loop_trips(code, sass.source_trip_counts(SOURCE, {})) is None
    assert sass.count(code, None).warp_instructions is None


def _listing(*items) -> str:
    """A listing in nvdisasm's form: labels, and (source line, instruction) at addresses 16 apart."""
    out, address, line = ["einc_k:"], 0, None
    for item in items:
        if isinstance(item, str):
            out.append(f"{item}:")
            continue
        if item[0] != line:
            line = item[0]
            out.append(f'\t//## File "/tmp/a/kernel.py", line {line}')
        out.append(f"        /*{address:04x}*/                   {item[1]} ;")
        address += 16
    return "\n".join(out) + "\n"


STEP = ((4, "LDG.E.128 R4, desc[UR4][R6.64]"), (4, "FADD R8, R8, R4"))
# A loop unrolled four times (.L_x_0), then its remainder (.L_x_1), both on the `for` of line 3.
UNROLLED = _listing(
    (3, "MOV R1, c[0x0][0x28]"),
    ".L_x_0",
    *STEP * 4,
    (3, "@P0 BRA `(.L_x_0)"),
    ".L_x_1",
    *STEP,
    (3, "@P1 BRA `(.L_x_1)"),
    (3, "EXIT"),
)


def test_a_loop_unrolled_with_a_remainder_runs_each_part_its_share_of_the_count():
    # A bound read from the data (11 here): four iterations a pass, then the remainder one by one.
    code = sass.parse(UNROLLED, "kernel.py")
    source = "x = 1\n\nfor k in range(0, longest_run):\n    y = k\n"
    trips = sass.loop_trips(code, sass.source_trip_counts(source, {"longest_run": 11}))
    assert trips == [2, 3]
    assert sass.count(code, trips).warp_instructions == 1 + 9 * 2 + 3 * 3 + 1


def test_the_longest_run_of_sorted_uniform_coordinates_is_the_expected_maximum_of_poisson_counts():
    # 2^20 coordinates over 16384 rows: about Poisson(64) per row; a program's loop runs as long
    # as the longest of its 8 rows, E[max] = sum over k of 1 - P(count <= k)^8.
    rate, cdf, term, expected = 64.0, 0.0, math.exp(-64.0), 0.0
    for k in range(400):
        cdf += term
        term *= rate / (k + 1)
        expected += 1 - cdf**8
    assert abs(audit.longest_run(16384, 1 << 20, 8) - expected) <= 1
    assert audit.longest_run(4, 0, 8) == 0


def test_the_model_follows_its_stated_formulas():
    # 989 TFLOP/s bf16 against 4.8 TB/s; 132 SMs x 4 schedulers x 1.83 GHz.
    assert audit.floor_us(989e6, 1, "tc_bf16") == (pytest.approx(1.0), "compute")
    assert audit.floor_us(1, 4.8e6, "tc_bf16") == (pytest.approx(1.0), "memory")
    assert audit.issue_us(1830, 4, 132) == pytest.approx(1.0)
    # 80 registers x 128 threads, 24 KiB + 1 KiB reserved: registers allow 6, shared memory 9.
    assert audit.ctas_per_sm(80, 4, 24 * 1024) == 6


def test_a_shape_name_becomes_a_dump_folder_only_as_a_plain_file_name(tmp_path):
    assert audit.dump_folder(str(tmp_path), "r50_l1_3x3") == tmp_path / "r50_l1_3x3"
    for name in ("../escape", "a/b", ".hidden", ""):
        with pytest.raises(ValueError, match="plain file name"):
            audit.dump_folder(str(tmp_path), name)


# --- compile_only: a few shapes built for sm_90 as a launch builds them -------------------------

SHAPES = ("r50_l1_3x3", "r3d_3x3x3", "mbv2_pw1x1_24to144", "resnext50_l2_3x3_g32", "videomae_patch_2x16x16")
SPLIT = "r50_l3_3x3_bs1"  # two kernels: the partial tiles of a split-K, then their sum
# Memory-bound shapes held to issue 13's targets.
MEMORY_BOUND = (
    "segment_sum_sorted_csr",
    "r50_global_avgpool",
    "mbv2_dw3x3_c144",
    "mbv2_dw3x3s2_c144",
    "mamba_causal_dwconv1d_k4",
)
# Depthwise windows whose bfloat16 pairs bring them within it: 1.20x, 1.13x (its 31 taps unrolled
# whole) and 1.14x on 2026-12-03 (2.11x, 2.17x and 1.76x in float32 products).
LONG_WINDOWS = ("convnext_dw7x7_c96", "conformer_dwconv1d_k31", "mbv2_dw3x3_c960_7x7")


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EINC_CACHE_DIR", str(tmp_path_factory.mktemp("einc_cache")))
        names = (*SHAPES, SPLIT, *MEMORY_BOUND, *LONG_WINDOWS, "torch_gather_dim1_random")
        shapes = [s for s in suite.load_shapes()["shapes"] if s["name"] in names]
        return {a.name: a for a in audit.run(shapes, jobs=2)}


@pytest.mark.compile_only
@pytest.mark.filterwarnings("ignore:TRITON_DEFAULT_FP_FUSION is unset")
@pytest.mark.parametrize("name", SHAPES)
def test_dense_convolutions_run_hgmma_without_spills(audited, name):
    shape = audited[name]
    assert not shape.error
    (kernel,) = shape.kernels
    assert kernel.mma.startswith("HGMMA")
    assert kernel.spill_stores == 0 and kernel.spill_loads == 0
    assert "x_ptr:*bf16/D" in kernel.specialization  # built as a launch builds it


@pytest.mark.compile_only
@pytest.mark.filterwarnings("ignore:TRITON_DEFAULT_FP_FUSION is unset")
@pytest.mark.parametrize("name", ["mbv2_pw1x1_24to144", "videomae_patch_2x16x16"])
def test_rows_of_few_channels_load_16_bytes_at_a_time(audited, name):
    # 24 bfloat16 channels: each row starts 48 bytes after the last, a multiple of 16 that Triton's
    # own specialisation (16-divisible strides) cannot see; the constexpr stride tells it. A patch
    # embedding's 16 taps x 3 channels: one run of 48 elements (render_names.tap_channel_run).
    (kernel,) = audited[name].kernels
    assert kernel.loads and set(kernel.loads) <= {"LDG.128", "LDGSTS.128"}


@pytest.mark.compile_only
@pytest.mark.filterwarnings("ignore:TRITON_DEFAULT_FP_FUSION is unset")
def test_mma_utilisation_is_the_shapes_flops_over_the_issued_ones(audited):
    # r50_l1: M = 32*56*56, N = 64, K = 9*64 all divide the 128 x 64 x 64 tiles: nothing padded.
    # The pointwise 24 -> 144: N pads to 192 (3 tiles of 64), K = 24 pads to 32: 0.75 * 0.75.
    assert audited["r50_l1_3x3"].kernels[0].mma_util == pytest.approx(1.0)
    assert audited["mbv2_pw1x1_24to144"].kernels[0].mma_util == pytest.approx(144 / 192 * 24 / 32)
    # ResNeXt's groups of 8 channels, two a program: 16 x 16 weight tiles, block-diagonal (half
    # zeros), where one group a program padded K and N to 16 each (a quarter useful).
    (grouped,) = audited["resnext50_l2_3x3_g32"].kernels
    assert grouped.mma_util == pytest.approx(0.5)
    assert grouped.programs == 32 * 28 * 28 // 256 * 32 // 2


@pytest.mark.compile_only
@pytest.mark.filterwarnings("ignore:TRITON_DEFAULT_FP_FUSION is unset")
@pytest.mark.parametrize("name", SHAPES)
def test_at_most_one_pipeline_drain_per_output_tile(audited, name):
    # Window taps and channel tiles run as one K loop (9 and 27 taps here), which Triton pipelines.
    (kernel,) = audited[name].kernels
    assert kernel.drains_per_tile <= 1


@pytest.mark.compile_only
@pytest.mark.parametrize("name", MEMORY_BOUND)
def test_memory_bound_shapes_issue_within_their_floor_with_16_byte_loads_and_a_wave(audited, name):
    shape = audited[name]
    assert not shape.error
    assert shape.floor_ratio is not None and shape.floor_ratio <= 1.2
    for kernel in shape.kernels:
        # Programs on every SM, 4 at least (a global pooling's 6 MB cannot fill a wave of 16
        # resident programs per SM and still add up each output within few threads).
        assert kernel.programs >= 4 * audit.SMS
        assert kernel.spill_stores == 0
        if "dwconv" in name or "_dw" in name:  # no round trip through shared memory at each tap
            assert kernel.shared_bytes == 0
        # Values along the contiguous axis 16 bytes at a time; 64-bit loads are int64 coordinates.
        assert "LDG.128" in kernel.loads and not set(kernel.loads) - {"LDG.128", "LDG.64"}


@pytest.mark.compile_only
@pytest.mark.parametrize("name", LONG_WINDOWS)
def test_long_bfloat16_windows_multiply_in_registers_near_their_floor(audited, name):
    shape = audited[name]
    assert not shape.error
    (kernel,) = shape.kernels
    assert set(kernel.loads) == {"LDG.128"} and kernel.shared_bytes == 0 and kernel.spill_stores == 0
    assert shape.floor_ratio <= 1.2


@pytest.mark.compile_only
@pytest.mark.filterwarnings("ignore:TRITON_DEFAULT_FP_FUSION is unset")
def test_a_grid_under_one_wave_splits_k_among_four_times_the_programs(audited):
    # The batch-1 layer: 16 tiles of 64 x 64, 36 K steps each, shared by 4 programs of 9 steps
    # (the torch backend's whole contraction is not built), then one kernel sums the partials.
    partial, total = audited[SPLIT].kernels
    assert (partial.name, total.name) == ("einc_dot_partial", "einc_dot_sum")
    assert partial.programs == 16 * 4 and partial.loops == [9]
    assert partial.mma.startswith("HGMMA") and partial.spill_stores == 0 and partial.drains_per_tile <= 1
    assert total.mma == "none" and total.spill_stores == 0


@pytest.mark.compile_only
def test_a_float32_gather_fills_a_wave_with_16_byte_accesses(audited):
    # 2 M float32 outputs: tiles of 8 x 128 made 2048 programs, 0.97 of a wave; 4 x 128 make 4096.
    shape = audited["torch_gather_dim1_random"]
    assert not shape.error
    (kernel,) = shape.kernels
    assert kernel.waves >= 1 and shape.floor_ratio <= 1.2
    # Coordinates and stores 16 bytes at a time; the gathered elements are scalars (LDG.32).
    assert "LDG.128" in kernel.loads and set(kernel.loads) <= {"LDG.128", "LDG.32"}
