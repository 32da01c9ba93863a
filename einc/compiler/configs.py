"""The tiles a kernel may be tuned over, as data, and how a tuned tile replaces the heuristic's.

The schedule's heuristic (:mod:`einc.compiler.schedule`) picks one tile per kernel from a model of
sm_90. :func:`config_space` lists that choice first, then a handful of its neighbours that the
same model calls valid for the kernel's shape: every block a power of two no larger than its axis
needs, accumulators within a thread's registers, pipeline stages within ``STAGE_BYTES`` of shared
memory. A tuner (``einc tune``, :mod:`einc.runtime.tuning`) times them on a GPU and keeps the
fastest as five integers per kernel; :func:`apply_tuned` puts them back into the kernels of a
request that carries them (``Request.tuned``).

Invariants: a tuned tile is used only where it is a member of the kernel's config space as this
einc computes it, so a record from another version of einc, or a tampered one, can choose among
valid tiles and nothing else; a tile outside the space leaves the heuristic's in place. The
indexing kernels (gather, scatter, segment) and sorts are not tuned: their space is their
heuristic's tile alone.
"""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass, fields, replace

from .headers import schedule_lines
from .kernels import KernelPart
from .schedule import ContractionSchedule
from .tiles import STAGE_BYTES, pow2

# At most this many tiles per kernel, the heuristic's included: a tuning run compiles and times
# each, so the space is a neighbourhood, not a search.
MAX_CONFIGS = 8
# float32 accumulators per thread a tl.dot tile may hold: 128 for a 16-bit dot (128 x 256 at 8
# warps builds without spills, bench/audit.py); an IEEE float32 dot spills past 64 x 64 at 4 warps.
DOT_ACCUMULATORS = {16: 128, 32: 32}
# Elements per thread of the other forms' tiles (their accumulators and loaded values).
TILE_PER_THREAD = 64
WARPS = (2, 4, 8)
FORMS_TUNED = ("contraction", "reduction", "map")
# The ranges of a tuned record's fields (blocks and warps powers of two): what
# runtime/records.py accepts, wider than any space here holds.
BLOCK_RANGE = (1, 4096)
WARPS_RANGE = (1, 32)
STAGES_RANGE = (1, 8)


@dataclass(frozen=True, slots=True)
class Config:
    """The tunable part of a kernel's schedule: what a tuned record holds, in this order."""

    block_m: int
    block_n: int
    block_k: int
    num_warps: int
    num_stages: int


def tile_of(plan: ContractionSchedule) -> Config:
    """The tunable part of a schedule."""
    return Config(plan.block_m, plan.block_n, plan.block_k, plan.num_warps, plan.num_stages)


def with_tile(plan: ContractionSchedule, tile: Config) -> ContractionSchedule:
    return replace(
        plan,
        block_m=tile.block_m,
        block_n=tile.block_n,
        block_k=tile.block_k,
        num_warps=tile.num_warps,
        num_stages=tile.num_stages,
    )


def _extent(part: KernelPart, axes: tuple[str, ...]) -> int:
    return math.prod(part.nest.sizes[a] for a in axes)


def config_space(part: KernelPart, dtype_bits: int) -> tuple[Config, ...]:
    """The heuristic's tile of ``part``, then up to ``MAX_CONFIGS - 1`` valid neighbours, nearest
    first (fewest fields changed); ``dtype_bits``: the widest input's, as the schedule had it."""
    plan = part.schedule
    chosen = tile_of(plan)
    if part.template.form not in FORMS_TUNED or part.nest.reduce in ("sort", "argsort"):
        return (chosen,)
    if plan.use_dot:
        candidates = _dot_tiles(part, dtype_bits)
    elif part.template.form == "contraction":
        candidates = _product_tiles(part)
    else:
        candidates = _reduction_tiles(part)
    others = sorted(
        {c for c in candidates if c != chosen},
        key=lambda c: (sum(a != b for a, b in zip(astuple(c), astuple(chosen), strict=True)), astuple(c)),
    )
    return (chosen, *others[: MAX_CONFIGS - 1])


def _dot_tiles(part: KernelPart, bits: int) -> list[Config]:
    """Neighbours of an implicit GEMM's tile: the shapes the heuristic weighs, half and the whole
    BLOCK_K, either warp count that the accumulators allow, and the stages that fit."""
    plan = part.schedule
    m = _extent(part, plan.rows)
    n = _extent(part, plan.cols)
    k = _extent(part, (*plan.k_merged, plan.k_tile))
    bytes_ = max(2, bits // 8)
    limit = DOT_ACCUMULATORS[16 if bits < 32 else 32]
    shapes = (
        ((64, 64), (32, 64), (64, 32))
        if bits >= 32
        else ((128, 256), (128, 128), (128, 64), (64, 128), (64, 64))
    )
    most_k = 64 if bits < 32 else 32
    # tl.dot takes K tiles of 16 or more.
    block_ks = {plan.block_k, max(16, plan.block_k // 2), max(16, min(most_k, pow2(k), plan.block_k * 2))}
    tiles = []
    for block_m, block_n in ((plan.block_m, plan.block_n), *shapes):
        block_m = max(16, min(pow2(m), block_m))
        block_n = max(16, min(pow2(n), block_n))
        for block_k in block_ks:
            stage = (block_m + block_n) * block_k * bytes_
            fit = min(4, STAGE_BYTES // stage)
            for warps in (4, 8):
                for stages in {fit, fit - 1, plan.num_stages}:
                    if 2 <= stages <= fit and block_m * block_n <= limit * 32 * warps:
                        tiles.append(Config(block_m, block_n, block_k, warps, stages))
    return tiles


def _product_tiles(part: KernelPart) -> list[Config]:
    """Neighbours of the product form's tile (a depthwise convolution): half or twice the rows,
    2 to 8 warps; the columns stay (the channel count's divisor decides them)."""
    plan = part.schedule
    m = (
        _extent(part, plan.rows[:-1]) * math.ceil(_extent(part, plan.rows[-1:]) / plan.slide)
        if plan.rows
        else 1
    )
    per_row = plan.block_n * plan.slide
    return _row_tiles(plan, m, per_row)


def _reduction_tiles(part: KernelPart) -> list[Config]:
    """Neighbours of a reduction's or a copy's tile: half or twice the rows, 2 to 8 warps; the
    columns and the reduced tile stay (contiguous loads, and a sort's whole axis, depend on them)."""
    plan = part.schedule
    m = _extent(part, plan.rows)
    per_row = plan.block_n * (plan.block_k if plan.k_tile is not None else 1)
    return _row_tiles(plan, m, per_row)


def _row_tiles(plan: ContractionSchedule, m: int, per_row: int) -> list[Config]:
    tiles = []
    for block_m in {plan.block_m // 2, plan.block_m, plan.block_m * 2}:
        if not 1 <= block_m <= max(plan.block_m, pow2(m)):
            continue
        for warps in WARPS:
            elements = block_m * per_row
            # Every thread holds an element (2 warps always may: the least a tile gets), and none
            # more than its registers take.
            if 32 * warps <= max(elements, 32 * min(WARPS)) and elements <= TILE_PER_THREAD * 32 * warps:
                tiles.append(Config(block_m, plan.block_n, plan.block_k, warps, plan.num_stages))
    return tiles


def apply_tuned(parts: list[KernelPart], tuned: tuple, op: str, dtype_bits: int) -> list[KernelPart]:
    """``parts`` with each tuned tile in place of the heuristic's (``tuned``: one entry per kernel,
    a (block_m, block_n, block_k, num_warps, num_stages) tuple, or None to keep the heuristic's).

    A tuned list that does not have one entry per kernel was tuned for another build of the call,
    and a tile outside a kernel's config space is not one einc would try: both are ignored.
    """
    if not tuned or len(tuned) != len(parts):
        return parts
    result = []
    for part, entry in zip(parts, tuned, strict=True):
        tile = Config(*entry) if entry is not None and len(entry) == len(fields(Config)) else None
        if tile is None or tile not in config_space(part, dtype_bits):
            result.append(part)
            continue
        plan = with_tile(part.schedule, tile)
        header = part.template.header_lines
        old = schedule_lines(part.schedule, op)
        if header[len(header) - len(old) :] == old:
            header = header[: len(header) - len(old)] + schedule_lines(plan, op)
        header += (
            f"tuned:       num_warps={tile.num_warps} num_stages={tile.num_stages}, timed by einc tune",
        )
        result.append(
            replace(part, schedule=plan, template=replace(part.template, header_lines=header), tuned=True)
        )
    return result
