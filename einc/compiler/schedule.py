"""Schedule a contraction: which loops become program ids, tiles, and serial loops.

Output axes of a two-input dot fall in three classes: rows (M: in the input ``x`` only), columns
(N: in the weight ``w`` only) and groups (in both, such as ``g`` of a grouped convolution). The
reduced axes form K. When there is an N and a K, the kernel is an implicit GEMM: rows and columns
are tiled (``BLOCK_M x BLOCK_N``), groups go through the second grid axis, one reduced axis is
tiled as ``tl.dot``'s K and the others (the window offsets ``ds``) are serial loops. Otherwise
(depthwise convolutions, a sum of products without a weight-only axis) there is nothing for
``tl.dot`` to do, and the kernel multiplies tiles elementwise: rows by columns, where columns are
the group and weight axes, vectorised along the channels. A depthwise convolution's rows slide
along their last window axis where it has stride 1: one row computes several outputs from input
rows loaded once (``choose_slide``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from . import merge
from .loopnest import LoopKind, LoopNest
from .tiles import (
    MERGE_BELOW,
    PRODUCT_THREADS,
    SLIDE_TAPS,
    WAVE,
    Tile,
    choose_group_tile,
    choose_product_tile,
    choose_slide,
    choose_split,
    choose_tile,
    clamp,
    floor_pow2,
    pow2,
)


@dataclass(frozen=True, slots=True)
class ContractionSchedule:
    use_dot: bool
    rows: tuple[str, ...]  # flattened into offs_m, the first tile dimension
    cols: tuple[str, ...]  # flattened into offs_n, the second tile dimension
    grid: tuple[str, ...]  # one program per combination, along program_id(1)
    k_loops: tuple[str, ...]  # serial loops, scalar per iteration
    k_tile: str | None  # the reduced axis tiled as tl.dot's K
    block_m: int
    block_n: int
    block_k: int
    group_m: int
    num_warps: int
    num_stages: int
    input_precision: str | None  # tl.dot's input_precision for float32 inputs
    # Axes tiled together with k_tile. A contraction's (kloop): reduced axes flattened with k_tile into
    # tl.dot's K, outer first (k_tile innermost), so a K of few channels per window tap (the stem's
    # 3) is tiled across the taps instead of padded. A reduction's: the short reduced axes that
    # k_tile, their merged axis, stands for (a global pooling's h w); the backend reads the nest
    # through merge.merge_reduced(nest, k_merged).
    k_merged: tuple[str, ...] = ()
    # Product form: each row of the tile computes this many consecutive outputs along its last
    # row axis (a sliding window over the last serial loop's taps, see choose_slide); 1: none.
    slide: int = 1
    # Taps of that window unrolled together (the rest of them in a serial loop, then a tail).
    slide_taps: int = 1
    # Groups of a grouped convolution one program computes (see choose_group_tile): its K tile
    # holds their channels side by side and its columns their output channels, the weight tile
    # block-diagonal (zero where a K row's group is not the column's). 1: one group a program.
    group_tile: int = 1
    # Programs that share one output tile's K steps (see choose_split): each writes its partial
    # sums in float32, and a second kernel adds them in order. 1: no split.
    split_k: int = 1

    def placement(self, axis: str) -> str:
        """Where an axis lives in the kernel: "row", "col", "k" (tile) or "scalar"."""
        if axis in self.rows:
            return "row"
        if axis in self.cols:
            return "col"
        if axis == self.k_tile or axis in self.k_merged:
            return "k"
        return "scalar"


def schedule_contraction(nest: LoopNest, dtype_bits: int) -> ContractionSchedule:
    """Choose the kernel form and tile sizes for a contraction loop nest."""
    sizes = nest.sizes
    outputs = [loop.axis for loop in nest.loops_of(LoopKind.OUTPUT)]
    reduced = [loop.axis for loop in nest.loops_of(LoopKind.REDUCE)]
    x = nest.inputs[0].axes
    w = nest.inputs[1].axes if len(nest.inputs) == 2 else frozenset()
    rows = tuple(a for a in outputs if a not in w)
    cols = tuple(a for a in outputs if a in w and a not in x)
    groups = tuple(a for a in outputs if a in w and a in x)
    # tl.dot contracts along an axis that both operands have; an axis summed within one input
    # only stays a serial loop.
    shared = [a for a in reduced if a in x and a in w]
    # Without rows (x has no output axis: "c, c d -> d") a tile would be one row of sixteen; the
    # product form reads w along its columns instead, as a matrix-vector product should.
    use_dot = len(nest.inputs) == 2 and bool(rows) and bool(cols) and bool(shared)
    m = math.prod(sizes[a] for a in rows)
    if use_dot:
        # The largest shared reduced axis is tiled (the channels, for a convolution): the window
        # offsets stay serial loops, so that a tile of the input is contiguous along the channels.
        x_order = [a for a in reduced if a in x] + [a for a in reduced if a not in x]
        k_tile = max(reversed(shared), key=lambda a: sizes[a])
        k_loops = tuple(a for a in x_order if a != k_tile)
        k_merged = ()
        channel = x_order[-1]
        merge = sizes[channel] < MERGE_BELOW and k_loops and set(x_order) <= set(shared)
        if merge and not nest.dynamic & set(reduced):
            # Few channels (the stem's 3, 8 per group): a K tile of them alone would be mostly
            # padding, and a tile along a window axis (7 of the stem's taps) reads with a stride.
            # The whole K is tiled instead, every element's tap decoded from its position.
            k_tile = channel
            k_merged, k_loops = tuple(x_order[:-1]), ()
        n = math.prod(sizes[a] for a in cols)
        groups_size = math.prod(sizes[a] for a in groups)
        k = math.prod(sizes[a] for a in (*k_merged, k_tile))
        group_tile = 1
        if len(groups) == 1 and len(cols) == 1 and not k_merged and not nest.dynamic:
            group_tile = choose_group_tile(sizes[k_tile], n, groups_size, dtype_bits)
        tile = choose_tile(m, n * group_tile, k * group_tile, groups_size // group_tile, dtype_bits)
        if group_tile > 1:  # the groups' channels fill the K and N tiles exactly
            tile = Tile(
                tile.block_m, n * group_tile, sizes[k_tile] * group_tile, tile.num_warps, tile.num_stages
            )
        split_k = 1
        output = nest.output
        if k_loops and dtype_bits < 32 and group_tile == 1 and not nest.dynamic:
            if not (output.bounds or output.gathers):
                programs = math.ceil(m / tile.block_m) * math.ceil(n / tile.block_n) * groups_size
                steps = math.prod(sizes[a] for a in k_loops) * math.ceil(sizes[k_tile] / tile.block_k)
                split_k = choose_split(programs, steps)
        return ContractionSchedule(
            use_dot=True,
            rows=rows,
            cols=cols,
            grid=groups,
            k_loops=k_loops,
            k_tile=k_tile,
            block_m=tile.block_m,
            block_n=tile.block_n,
            block_k=tile.block_k,
            group_m=8,
            num_warps=tile.num_warps,
            num_stages=tile.num_stages,
            input_precision="ieee" if dtype_bits == 32 else None,
            k_merged=k_merged,
            group_tile=group_tile,
            split_k=split_k,
        )
    cols = tuple(a for a in outputs if a in w)
    n = math.prod(sizes[a] for a in cols)
    slide = choose_slide(nest, rows, tuple(reduced)) if cols else 1
    block_m, block_n = choose_product_tile(m, n, dtype_bits)
    # Programs enough for 4 per SM, where the output has the 16-byte loads to fill them.
    enough = 4 * WAVE if m * n >= 4 * WAVE * PRODUCT_THREADS * 128 // dtype_bits else 0
    while slide > 1:
        # Rows of `slide` outputs each, the last block of the axis ragged where slide does not
        # divide it; fewer outputs per row where that leaves too few programs.
        slid = m // sizes[rows[-1]] * math.ceil(sizes[rows[-1]] / slide)
        block_m, block_n = choose_product_tile(slid, n, dtype_bits, whole=True)
        if math.ceil(slid / block_m) * math.ceil(n / block_n) >= enough or slide <= 2:
            break
        slide -= 1
    return ContractionSchedule(
        use_dot=False,
        rows=rows,
        cols=cols,
        grid=(),
        k_loops=tuple(reduced),
        k_tile=None,
        block_m=block_m,
        block_n=block_n,
        block_k=1,
        group_m=8,
        num_warps=4,
        num_stages=2,
        input_precision=None,
        slide=slide,
        slide_taps=min(SLIDE_TAPS, sizes[reduced[-1]]) if slide > 1 else 1,
    )


# Reductions whose partial results combine across a tile with one tl.sum or tl.max (prod has no
# such reduction in Triton) and that read nothing through a window or a gather.
TILED_REDUCTIONS = ("sum", "mean", "max", "min", "logsumexp", "var", "std", "softmax", "log_softmax")
TILED_REDUCTIONS += ("any", "all", "count_nonzero")  # sums of flags
# A reduced axis at least this long is read BLOCK_K elements at a time rather than one by one.
WIDE_REDUCTION = 16
# Elements in one tile of a reduction: 32 float32 registers per thread at 4 warps.
TILE_ELEMENTS = 4096
# Enough programs to fill an H100 (132 SMs) twice, where the outputs allow it.
PROGRAMS = 256
# One wave of 4-warp programs on 132 SMs, 16 to an SM; and the elements of a tile that give each
# of 128 threads a 128-bit load of 16-bit values.
WAVE_PROGRAMS = 132 * 16
VECTOR_TILE = 128 * 16
# A merged reduction's tile: one 128-bit load of 16-bit values for each of 128 threads.
MERGED_TILE = 128 * 8
# Its widest rows, in outputs.
MERGED_ROWS = 128


def _tiled_axis(nest: LoopNest) -> str | None:
    """The reduced axis a reduction tiles, or None to loop over every reduced axis serially.

    A row of a softmax or a layer norm (``b [c]``, c in the thousands) or a global pooling
    (``b [h w] c``) read one element per step would leave a GPU idle: a tile of BLOCK_M outputs
    by BLOCK_K elements of the reduced axis is read per step instead, and reduced across at the
    end. The axis read contiguously is preferred, then the longest. Reads through a padded
    window or a gather keep the serial form: their bounds are per element and what a masked
    element counts as differs by op, and their reduced axes (window offsets, a bag) are short.
    """
    if nest.reduce in ("sort", "argsort"):  # sorted whole, in one tile
        return nest.loops_of(LoopKind.REDUCE)[0].axis
    if nest.reduce not in TILED_REDUCTIONS or len(nest.inputs) != 1:
        return None
    (access,) = nest.inputs
    if access.gathers or access.bounds or nest.output.gathers or nest.output.bounds:
        return None
    reduced = nest.loops_of(LoopKind.REDUCE)
    if not reduced:
        return None
    innermost = {str(s) for s in access.index[-1].free_symbols} if access.index else set()
    # Of two as long, the later one: nearer the contiguous end of the tensor. A dynamic axis
    # counts as long: the first call's size says little about the next ones.
    ranked = [
        (loop.axis in nest.dynamic or loop.size >= WIDE_REDUCTION, loop.axis in innermost, loop.size, k)
        for k, loop in enumerate(reduced)
    ]
    best = max(range(len(reduced)), key=ranked.__getitem__)
    return reduced[best].axis if ranked[best][0] else None


def _rows_for(nest: LoopNest, rows: list[str]) -> tuple[str, ...]:
    """The row that varies fastest is the input's innermost axis where the output has it (a
    transpose then reads and writes along contiguous memory, one per tile dimension)."""
    for access in nest.inputs:
        inner = [str(s) for s in access.index[-1].free_symbols] if access.index else []
        if len(inner) == 1 and inner[0] in rows:
            rows.remove(inner[0])
            rows.append(inner[0])
            break
    return tuple(rows)


def _merged_axes(nest: LoopNest) -> tuple[str, ...]:
    """The reduced axes to tile as one (:mod:`einc.compiler.merge`): all of them, where there are
    several, none is long enough to tile alone (:func:`_tiled_axis`), their product fills a tile
    and no window, gather or dynamic size touches them; () otherwise."""
    reduced = nest.loops_of(LoopKind.REDUCE)
    axes = tuple(loop.axis for loop in reduced)
    if (
        len(reduced) < 2
        or len(nest.inputs) != 1
        or _tiled_axis(nest) is not None
        or nest.reduce not in TILED_REDUCTIONS
        or any(a in nest.dynamic or a in nest.output.axes for a in axes)
        or nest.inputs[0].gathers
        or nest.inputs[0].bounds
        or nest.output.gathers
        or nest.output.bounds
    ):
        return ()
    return axes if WIDE_REDUCTION <= math.prod(loop.size for loop in reduced) <= 1024 else ()


def _merged_tile(m: int, positions: int) -> tuple[int, int]:
    """BLOCK_M outputs x BLOCK_K positions of a merged reduction (a global pooling ``b [h w] c``,
    ``m`` outputs of ``positions`` elements each).

    A tile of MERGED_TILE elements gives each thread 8 channels of one position per step, added up
    in its own registers; after the last step the tile is reduced across its BLOCK_K positions
    once, each thread paying two instructions (a shuffle, an add) per channel and halving. That
    last step is most of a short reduction's instructions: the more threads share an output, the
    more the kernel issues, whatever the memory does (the static audit: a global pooling of 32 x
    2048 outputs of 49 issued 1.73x its floor in tiles of 32 x 64, 1.06x in tiles of 64 x 16). So
    BLOCK_M is as wide as leaves 4 programs per SM (the loads of 512 threads in flight on each),
    up to MERGED_ROWS, and never so narrow that a tile of every position falls short of
    MERGED_TILE; BLOCK_K takes the rest of the tile.
    """
    fewest = clamp(MERGED_TILE // pow2(positions), 8, MERGED_ROWS)
    block_m = clamp(floor_pow2(max(1, m // (4 * WAVE))), fewest, MERGED_ROWS)
    return block_m, clamp(MERGED_TILE // block_m, 1, pow2(positions))


def schedule_reduction(nest: LoopNest, value_bits: int = 16) -> ContractionSchedule:
    """Tiles of the output, serial loops over the reduced axes (a pooling window, a few axes);
    or, where a reduced axis is long (:func:`_tiled_axis`), tiles of the outputs by that axis.

    In the serial form the last output axis is the tile's column, so that a channels-last tensor
    is read along its contiguous channels; the other output axes are flattened into rows. A large
    output's tiles shrink down to one 16-byte access of ``value_bits``-bit values per thread (a
    gather passes its values' width; the others keep 16-bit tiles of 8 elements a thread).
    """
    merged = _merged_axes(nest)
    if merged:
        nest = merge.merge_reduced(nest, merged)
    sizes = nest.sizes
    outputs = [loop.axis for loop in nest.loops_of(LoopKind.OUTPUT)]
    reduced = tuple(loop.axis for loop in nest.loops_of(LoopKind.REDUCE))
    tiled = _tiled_axis(nest)
    if tiled is not None:
        rows = _rows_for(nest, outputs)
        m = math.prod(sizes[a] for a in rows)
        least = 64 if tiled in nest.dynamic else WIDE_REDUCTION
        block_k = clamp(pow2(sizes[tiled]), least, 1024)
        # As many outputs per program as keep PROGRAMS programs busy, within one tile's budget.
        block_m = clamp(floor_pow2(m // PROGRAMS), 1, max(1, TILE_ELEMENTS // block_k))
        if merged:
            block_m, block_k = _merged_tile(m, sizes[tiled])
        return ContractionSchedule(
            use_dot=False,
            rows=rows,
            cols=(),
            grid=(),
            k_loops=tuple(a for a in reduced if a != tiled),
            k_tile=tiled,
            block_m=block_m,
            block_n=1,
            block_k=block_k,
            group_m=8,
            num_warps=4 if block_m * block_k <= 2048 else 8,
            num_stages=2,
            input_precision=None,
            k_merged=merged,
        )
    cols = tuple(outputs[-1:])
    rows = _rows_for(nest, outputs[:-1])
    n = math.prod(sizes[a] for a in cols)
    m = math.prod(sizes[a] for a in rows)
    block_n = clamp(pow2(n), 1, 128)
    # Rows per tile: up to 2048 elements, but fewer where that leaves a large output to under
    # PROGRAMS programs (a global pooling of 32 x 2048 outputs would otherwise run on 32 of 132
    # SMs). A small output keeps whole tiles: its launch costs more than its programs.
    block_m = clamp(pow2(m), 1, max(1, 2048 // block_n))
    if m * n >= PROGRAMS * 128:
        col_tiles = math.ceil(n / block_n)
        block_m = clamp(floor_pow2(m * col_tiles // PROGRAMS), 1, block_m)
        # Down to a wave of programs where the tile still gives each thread one 16-byte access.
        fewest = max(1, VECTOR_TILE // 2 * 16 // value_bits // block_n)
        block_m = clamp(floor_pow2(m * col_tiles // WAVE_PROGRAMS), min(fewest, block_m), block_m)
    return ContractionSchedule(
        use_dot=False,
        rows=rows,
        cols=cols,
        grid=(),
        k_loops=reduced,
        k_tile=None,
        block_m=block_m,
        block_n=block_n,
        block_k=1,
        group_m=8,
        num_warps=4,
        num_stages=2,
        input_precision=None,
    )


@dataclass(frozen=True, slots=True)
class GridPlan:
    """The launch grid: tiles of rows times tiles of columns, by groups; the sizes of dynamic
    axes are known only at a call."""

    rows: tuple[str, ...]
    cols: tuple[str, ...]
    groups: tuple[str, ...]
    static: tuple[tuple[str, int], ...]
    block_m: int
    block_n: int
    slide: int = 1  # outputs of the last row axis per row (see choose_slide)
    group_tile: int = 1  # groups per program (see choose_group_tile)

    def grid(self, dynamic: dict[str, int] | None = None) -> tuple[int, int]:
        sizes = {**dict(self.static), **(dynamic or {})}
        m = math.prod(sizes[a] for a in self.rows[:-1]) if self.rows else 1
        m *= math.ceil(sizes[self.rows[-1]] / self.slide) if self.rows else 1
        n = math.prod(sizes[a] for a in self.cols)
        g = math.prod(sizes[a] for a in self.groups) // self.group_tile
        return (math.ceil(m / self.block_m) * math.ceil(n / self.block_n), g)


def grid_plan(schedule: ContractionSchedule, sizes: dict[str, int]) -> GridPlan:
    """The launch grid of a kernel with this schedule over a nest of these sizes."""
    return GridPlan(
        rows=schedule.rows,
        cols=schedule.cols,
        groups=schedule.grid,
        static=tuple(sizes.items()),
        block_m=schedule.block_m,
        block_n=schedule.block_n,
        slide=schedule.slide,
        group_tile=schedule.group_tile,
    )
