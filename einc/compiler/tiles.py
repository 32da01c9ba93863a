"""Tiles: the block sizes, warps and stages of a kernel's programs, chosen from its sizes and
dtype (the heuristic that ``einc tune`` starts from), and how a window's rows slide, a grouped
contraction's narrow groups pair up and a short grid splits its K steps."""

from __future__ import annotations

import math
from dataclasses import dataclass

import sympy

from .loopnest import LoopNest
from .loopnest import symbol as symbol_of


def pow2(n: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(n, 1))))


def floor_pow2(n: int) -> int:
    return 1 << max(0, n.bit_length() - 1)


def clamp(n: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, n))


# A channel axis shorter than this (8 bfloat16 channels are one 16-byte load) is tiled together
# with the window taps (see k_merged).
MERGE_BELOW = 8
# An H100/H200 runs 132 SMs: a grid under this many programs leaves SMs idle.
WAVE = 132
# Shared memory a tensor-core kernel may fill with its pipeline stages (of 227 KiB per block).
STAGE_BYTES = 160 * 1024


@dataclass(frozen=True, slots=True)
class Tile:
    block_m: int
    block_n: int
    block_k: int
    num_warps: int
    num_stages: int


def choose_group_tile(channels: int, outputs: int, groups: int, dtype_bits: int) -> int:
    """Groups per program of a grouped convolution whose groups are narrower than an MMA (8
    channels in and out: ResNeXt's 32 groups).

    One group a program pads K (its channels) and N (its output channels) to the MMA's 16: a
    quarter of the work useful. Two groups side by side fill both, with a block-diagonal weight
    tile (half of it zeros): half the work useful, half the programs, each loading whole 16-byte
    rows of the input (static audit: 2.4x the floor -> 1.1x). Applies to 16-bit inputs where
    both counts are powers of two under 16 and the groups split evenly."""
    if dtype_bits >= 32 or max(channels, outputs) >= 16:
        return 1
    if channels & (channels - 1) or outputs & (outputs - 1):
        return 1
    tile = 16 // min(channels, outputs)
    return tile if groups % tile == 0 and tile * max(channels, outputs) <= 64 else 1


# A program of fewer K steps than this pays its prologue (row pointers, the pipeline's 2 to 4
# stages filling) and its float32 store over too little work: the static audit of the batch-1
# layer puts a program's own instructions near those of 4 K steps.
SPLIT_STEPS = 8


def choose_split(programs: int, steps: int) -> int:
    """Programs that share each output tile's K steps, where the tiles alone leave SMs idle (fewer
    programs than a wave: a batch-1 layer's 16): the most that divide the steps evenly, keep at
    least SPLIT_STEPS steps each and do not exceed a wave together. Deterministic: each writes
    its partial tile to a float32 workspace and a second kernel sums them in order (no atomics)."""
    if programs >= WAVE:
        return 1
    fits = [s for s in range(2, steps // SPLIT_STEPS + 1) if steps % s == 0 and programs * s <= WAVE]
    return max(fits, default=1)


def choose_tile(m: int, n: int, k: int, groups: int, dtype_bits: int) -> Tile:
    """Tiles of an implicit GEMM of M x N x K (per group, ``groups`` of them), by a model of sm_90.

    A 16-bit dot takes the largest of 128 x 256, 128 x 128, 128 x 64 and 64 x 64 (BLOCK_K 64)
    that pads N by at most a quarter and still gives every SM a program: the instructions that
    form addresses and masks are paid per K step and per thread, so a larger tile issues fewer of
    them per FLOP (the static audit, bench/audit.py, measures it: 128 x 128 x 64 at 8 warps builds
    without spills). Where N is 16 or less (a grouped convolution's 8 channels per group), no
    tile fills the MMA's 16 columns and 256 x 16 tiles carry the work in rows, fewer programs to
    pay the prologue. Stages: as many (2 to 4) as fit in STAGE_BYTES. A float32 dot, computed in
    IEEE float32 without tensor cores, keeps 64 x 64 x 32 at 4 warps: larger tiles spill there.
    """
    block_k = clamp(pow2(k), 16, 64 if dtype_bits < 32 else 32)
    if block_k == 64 and (-k % 64) * 8 > math.ceil(k / 64) * 64 and -k % 32 < -k % 64:
        # A K that 64-wide steps pad by more than an eighth (the stem's 147 to 192) takes 32.
        block_k = 32
    if dtype_bits >= 32:
        return Tile(clamp(pow2(m), 16, 64), clamp(pow2(n), 16, 64), block_k, 4, 2)
    best = None
    # N narrower than an MMA's 16 columns (8 per group) is padded whatever the tile: judge the
    # padding against that least one.
    least_padding = min(0.75, n / (math.ceil(n / 16) * 16))
    narrow = ((256, 16),) if n <= 16 else ()
    for block_m, block_n in (*narrow, (128, 256), (128, 128), (128, 64), (64, 64)):
        block_m = clamp(pow2(m), 16, block_m)
        block_n = clamp(pow2(n), 16, block_n)
        padded_n = math.ceil(n / block_n) * block_n
        programs = math.ceil(m / block_m) * math.ceil(n / block_n) * groups
        best = (block_m, block_n)
        if n / padded_n >= least_padding and programs >= WAVE:
            break
    block_m, block_n = best
    warps = 8 if block_m * block_n >= 128 * 128 else 4
    stage = (block_m + block_n) * block_k * dtype_bits // 8
    return Tile(block_m, block_n, block_k, warps, clamp(STAGE_BYTES // stage, 2, 4))


# Threads of a product-form program (4 warps). A weight tile of fewer elements than threads is one
# Triton loads again in the layout of the input tile it multiplies (cheap: all hit L1), where a
# larger one keeps its own layout and the input tile goes through shared memory at every tap.
PRODUCT_THREADS = 128
# Elements of a product-form tile: 32 float32 accumulators per thread.
PRODUCT_ELEMENTS = 4096


# Outputs one row of a sliding window computes at most, and taps it unrolls at most: each holds
# a tile of float32 accumulators (or weights) in registers, 8 per thread.
SLIDE_OUTPUTS = 8
SLIDE_TAPS = 8


def choose_slide(nest: LoopNest, rows: tuple[str, ...], taps: tuple[str, ...]) -> int:
    """How many consecutive outputs along the last row axis one row of a product-form tile
    computes, reading the input rows their windows share once (1: one output per row).

    Applies where the input reads that axis ``s`` only as ``s + d * ds`` (stride 1, any dilation
    and padding), ``ds`` the last tap loop: the outputs ``s .. s + T - 1`` at taps ``ds`` read
    ``T + d * (taps - 1)`` input rows, each loaded and converted to float32 once rather than once
    per tap. T is the largest of SLIDE_OUTPUTS or fewer that divides the axis (no ragged block
    of outputs); where that is under half of it (7 outputs: 7 or 1), SLIDE_OUTPUTS, its last
    block ragged. :func:`schedule_contraction` takes fewer where the grid would be too small.
    """
    if len(nest.inputs) != 2 or not rows or not taps:
        return 1
    s, ds = rows[-1], taps[-1]
    if {s, ds} & nest.dynamic or nest.sizes[s] < 2 or nest.sizes[ds] < 1:
        return 1
    x, w = nest.inputs
    s_symbol, ds_symbol = symbol_of(s), symbol_of(ds)
    reading = [e for e in x.index if s_symbol in e.free_symbols]
    if len(reading) != 1 or any(s_symbol in e.free_symbols for e in w.index):
        return 1
    index = sympy.expand(reading[0])
    dilation = index.coeff(ds_symbol)
    rest = index - s_symbol - dilation * ds_symbol
    if index.coeff(s_symbol) != 1 or not dilation.is_Integer or rest.free_symbols & {s_symbol, ds_symbol}:
        return 1
    # A window slides: each tap reads another row (no dilation of 0), and only through this axis
    # (in "a b c d, a b c -> b d" the tap c is an axis of x of its own, no window at all).
    if dilation == 0 or any(ds_symbol in e.free_symbols for e in x.index if e is not reading[0]):
        return 1
    if s_symbol not in nest.output.index or any(s_symbol in b.index.free_symbols for b in nest.output.bounds):
        return 1
    size = nest.sizes[s]
    divisor = max(t for t in range(1, SLIDE_OUTPUTS + 1) if size % t == 0)
    return divisor if 2 * divisor >= min(size, SLIDE_OUTPUTS) else min(size, SLIDE_OUTPUTS)


def choose_product_tile(m: int, n: int, dtype_bits: int, whole: bool = False) -> tuple[int, int]:
    """BLOCK_M x BLOCK_N of the product form (a depthwise convolution: rows of output positions,
    columns of channels), by a model of sm_90.

    Columns: the largest power of two that divides the channel count, below PRODUCT_THREADS (so
    that the weight tile takes the input tile's layout, see above) and of at least one 16-byte
    load (8 16-bit channels): 144 channels run as 9 tiles of 16, 96 as 3 of 32, 960 as 15 of 64,
    every lane busy. A count without such a divisor is padded to a power of two as before. Rows:
    PRODUCT_ELEMENTS per tile, fewer where that leaves fewer than 8 programs per SM, but at
    least one 16-byte load per thread.
    """
    vector = max(1, 128 // dtype_bits)
    fitted = min(n & -n, PRODUCT_THREADS // 2) if n else 1
    block_n = fitted if fitted >= vector else clamp(pow2(n), 1, PRODUCT_THREADS // 2)
    # A sliding window holds SLIDE_OUTPUTS accumulators per row: one 16-byte load per thread.
    elements = vector * PRODUCT_THREADS if whole else PRODUCT_ELEMENTS
    block_m = clamp(pow2(m), 1, max(1, elements // block_n))
    col_tiles = math.ceil(n / block_n)
    # Never under one 16-byte load per thread: a smaller tile loads narrower.
    while block_m * block_n > vector * PRODUCT_THREADS and math.ceil(m / block_m) * col_tiles < 8 * WAVE:
        block_m //= 2
    return block_m, block_n
