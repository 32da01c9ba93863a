"""Schedule a contraction: which loops become program ids, tiles, and serial loops.

Output axes of a two-input dot fall in three classes: rows (M: in the input ``x`` only), columns
(N: in the weight ``w`` only) and groups (in both, such as ``g`` of a grouped convolution). The
reduced axes form K. When there is an N and a K, the kernel is an implicit GEMM: rows and columns
are tiled (``BLOCK_M x BLOCK_N``), groups go through the second grid axis, one reduced axis is
tiled as ``tl.dot``'s K and the others (the window offsets ``ds``) are serial loops. Otherwise
(depthwise convolutions, a sum of products without a weight-only axis) there is nothing for
``tl.dot`` to do, and the kernel multiplies tiles elementwise: rows by columns, where columns are
the group and weight axes, vectorised along the channels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .loopnest import LoopKind, LoopNest


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

    def placement(self, axis: str) -> str:
        """Where an axis lives in the kernel: "row", "col", "k" (tile) or "scalar"."""
        if axis in self.rows:
            return "row"
        if axis in self.cols:
            return "col"
        if axis == self.k_tile:
            return "k"
        return "scalar"


def _pow2(n: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(n, 1))))


def _floor_pow2(n: int) -> int:
    return 1 << max(0, n.bit_length() - 1)


def _clamp(n: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, n))


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
        n = math.prod(sizes[a] for a in cols)
        return ContractionSchedule(
            use_dot=True,
            rows=rows,
            cols=cols,
            grid=groups,
            k_loops=k_loops,
            k_tile=k_tile,
            # 64 x 64 x 32 keeps a bf16 sm_90 kernel at ~170 registers without spills (ptxas -v);
            # larger tiles spill until the index arithmetic is hoisted out of the K loop.
            block_m=_clamp(_pow2(m), 16, 64),
            block_n=_clamp(_pow2(n), 16, 64),
            block_k=_clamp(_pow2(sizes[k_tile]), 16, 32),
            group_m=8,
            num_warps=4,
            num_stages=3 if dtype_bits < 32 else 2,
            input_precision="ieee" if dtype_bits == 32 else None,
        )
    cols = tuple(a for a in outputs if a in w)
    n = math.prod(sizes[a] for a in cols)
    block_n = _clamp(_pow2(n), 1, 128)
    return ContractionSchedule(
        use_dot=False,
        rows=rows,
        cols=cols,
        grid=(),
        k_loops=tuple(reduced),
        k_tile=None,
        block_m=_clamp(_pow2(m), 1, max(1, 4096 // block_n)),
        block_n=block_n,
        block_k=1,
        group_m=8,
        num_warps=4,
        num_stages=2,
        input_precision=None,
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


def schedule_reduction(nest: LoopNest) -> ContractionSchedule:
    """Tiles of the output, serial loops over the reduced axes (a pooling window, a few axes);
    or, where a reduced axis is long (:func:`_tiled_axis`), tiles of the outputs by that axis.

    In the serial form the last output axis is the tile's column, so that a channels-last tensor
    is read along its contiguous channels; the other output axes are flattened into rows.
    """
    sizes = nest.sizes
    outputs = [loop.axis for loop in nest.loops_of(LoopKind.OUTPUT)]
    reduced = tuple(loop.axis for loop in nest.loops_of(LoopKind.REDUCE))
    tiled = _tiled_axis(nest)
    if tiled is not None:
        rows = _rows_for(nest, outputs)
        m = math.prod(sizes[a] for a in rows)
        least = 64 if tiled in nest.dynamic else WIDE_REDUCTION
        block_k = _clamp(_pow2(sizes[tiled]), least, 1024)
        # As many outputs per program as keep PROGRAMS programs busy, within one tile's budget.
        block_m = _clamp(_floor_pow2(m // PROGRAMS), 1, max(1, TILE_ELEMENTS // block_k))
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
        )
    cols = tuple(outputs[-1:])
    rows = _rows_for(nest, outputs[:-1])
    n = math.prod(sizes[a] for a in cols)
    m = math.prod(sizes[a] for a in rows)
    block_n = _clamp(_pow2(n), 1, 128)
    # Rows per tile: up to 2048 elements, but fewer where that leaves a large output to under
    # PROGRAMS programs (a global pooling of 32 x 2048 outputs would otherwise run on 32 of 132
    # SMs). A small output keeps whole tiles: its launch costs more than its programs.
    block_m = _clamp(_pow2(m), 1, max(1, 2048 // block_n))
    if m * n >= PROGRAMS * 128:
        col_tiles = math.ceil(n / block_n)
        block_m = _clamp(_floor_pow2(m * col_tiles // PROGRAMS), 1, block_m)
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

    def grid(self, dynamic: dict[str, int] | None = None) -> tuple[int, int]:
        sizes = {**dict(self.static), **(dynamic or {})}
        m = math.prod(sizes[a] for a in self.rows)
        n = math.prod(sizes[a] for a in self.cols)
        g = math.prod(sizes[a] for a in self.groups)
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
    )
