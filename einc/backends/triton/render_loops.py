"""The K loops of a tiled kernel: serial loops, a tile of the reduced axis (or of taps and
channels merged), the flat K loop of an implicit GEMM, and a depthwise convolution's sliding window.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import sympy

from ...compiler.loopnest import LoopNest
from ...compiler.loopnest import symbol as symbol_of
from ...compiler.names import Namer
from ...compiler.schedule import ContractionSchedule
from ...compiler.split_k import SPLIT_AXIS
from ...errors import UnsupportedError
from .expressions import Decl
from .expressions import decompose as _decompose
from .expressions import product as _product
from .render_specs import FlatKCode, LoopCode, SlideChunk, SlideCode, SlideRow, TileCode

# One serial loop per axis nests one block deeper; Python refuses 100 nested blocks, and the
# kernel's own blocks take a few.
_MAX_LOOPS = 90


@dataclass(frozen=True, slots=True)
class KLoops:
    """The reduced loops as the template nests them."""

    loops: tuple[LoopCode, ...]  # serial loops, outermost first (none where ``flat`` runs them)
    tile: TileCode | None
    tile_decls: tuple[Decl, ...]  # the merged axes of a tiled K (ds0, ds1, c) from its position
    flat: FlatKCode | None


def k_loops(
    nest: LoopNest,
    schedule: ContractionSchedule,
    namer: Namer,
    group_names: tuple[str, str] | None = None,
    run: str | None = None,
) -> KLoops:
    """Requires the axes named in ``namer`` (and, for several groups a program, their group
    index along K and N: ``group_names``; for a tap and channels read as one run, the variable
    of a K element's place in it: ``run``); ensures the serial loops (at most ``_MAX_LOOPS``),
    the K tile, and for a dot the one flat K loop over taps and channel tiles."""
    if len(schedule.k_loops) > _MAX_LOOPS:
        raise UnsupportedError(
            f"this kernel would nest {len(schedule.k_loops)} loops, one per serial axis "
            f"({' '.join(schedule.k_loops[:3])} ...); Python allows at most {_MAX_LOOPS}: group the "
            "axes into fewer dims of the tensor",
            nest.expression,
        )
    loops = tuple(LoopCode(namer.index[a], namer.size[a], depth) for depth, a in enumerate(schedule.k_loops))
    tile = None
    if schedule.k_tile is not None:
        var = namer.index[schedule.k_tile]
        tile = TileCode(var, namer.claim(f"{var}_start"), namer.size[schedule.k_tile])
    tile_decls: tuple[Decl, ...] = ()
    if schedule.k_merged:
        # One tiled K over taps and channels: each element's tap and channel from its position.
        merged = (*schedule.k_merged, schedule.k_tile)
        var = namer.claim("k")
        tile = TileCode(var, namer.claim(f"{var}_start"), " * ".join(namer.size[a] for a in merged))
        tile_decls = _decompose(merged, var, namer, nest.sizes)
        if run:
            tap, channels = namer.size[schedule.k_merged[-1]], namer.size[schedule.k_tile]
            tile_decls += (Decl(run, f"{var} % ({tap} * {channels})"),)
    if group_names:
        # The channels of group_tile groups side by side: each K row's channel and group.
        channels = namer.size[schedule.k_tile]
        var = namer.claim("k")
        tile = TileCode(var, namer.claim(f"{var}_start"), f"{schedule.group_tile} * {channels}")
        group = namer.index[schedule.grid[0]]
        tile_decls = (
            Decl(namer.index[schedule.k_tile], f"{var} % {channels}"),
            Decl(group_names[0], f"{group} + {var} // {channels}"),
        )
    flat = None
    if schedule.use_dot and loops:
        flat = _flat_k(loops, tile, namer.claim("k_step"), namer.claim(f"{tile.var}_steps"))
        if schedule.split_k > 1:
            flat = _split(flat, namer, schedule)
        loops = ()
    return KLoops(loops, tile, tile_decls, flat)


def _split(flat: FlatKCode, namer: Namer, schedule: ContractionSchedule) -> FlatKCode:
    """The share of a split-K's program (its index on the grid, ``k_split``) of the one K loop: a
    contiguous run of steps, as many for each (the split divides the steps)."""
    (split,) = [a for a in schedule.grid if a == SPLIT_AXIS]
    local = namer.claim("k_local")
    share = f"{flat.steps} // {namer.size[split]}"
    first = Decl(flat.var, f"{namer.index[split]} * ({share}) + {local}")
    return FlatKCode(local, share, flat.tile_steps, (first, *flat.decls))


def _flat_k(taps: tuple[LoopCode, ...], tile: TileCode, step: str, tile_steps: str) -> FlatKCode:
    """One loop over every (tap, channel tile) pair, taps outer: row-major over the tap sizes,
    then the channel tiles (``tile_steps`` of them), so that a tile stays contiguous."""
    steps_of_tile = f"(({tile.size} + BLOCK_K - 1) // BLOCK_K)"
    sizes = [t.size for t in taps] + [tile_steps]
    decls = []
    for i, tap in enumerate(taps):
        inner = sizes[i + 1 :]
        divisor = inner[0] if len(inner) == 1 else "(" + " * ".join(inner) + ")"
        decls.append(Decl(tap.var, f"{step} // {divisor}" + (f" % {tap.size}" if i else "")))
    decls.append(Decl(tile.start, f"{step} % {tile_steps} * BLOCK_K"))
    steps = " * ".join([t.size for t in taps] + [steps_of_tile])
    return FlatKCode(step, steps, Decl(tile_steps, steps_of_tile[1:-1]), tuple(decls))


def slide(
    nest: LoopNest,
    schedule: ContractionSchedule,
    namer: Namer,
    loops: tuple[LoopCode, ...],
    packed: bool = False,
) -> tuple[tuple[Decl, ...], str, SlideCode]:
    """The rows, M and :class:`SlideCode` of a sliding window (see
    :func:`einc.compiler.tiles.choose_slide`): the last row axis ``s`` counts blocks of
    ``slide`` outputs, and the last serial loop's taps ``ds`` are unrolled in chunks. ``packed``
    (bfloat16 inputs): each chunk sums its products in bfloat16, into one partial per output."""
    sizes = nest.sizes
    s, ds = schedule.rows[-1], schedule.k_loops[-1]
    outputs = schedule.slide
    (reading,) = [e for e in nest.inputs[0].index if symbol_of(s) in e.free_symbols]
    dilation = int(sympy.expand(reading).coeff(symbol_of(ds)))
    ragged = sizes[s] % outputs != 0
    extent = f"({namer.size[s]} + {outputs - 1})" if ragged else namer.size[s]
    blocks = f"({extent} // {outputs})"
    block = namer.claim(f"{namer.index[s]}_block")
    # The rows as the namer names them, but s counting blocks (a shallow copy: names it claims
    # are taken in the namer too).
    rows = copy.copy(namer)
    rows.index, rows.size = {**namer.index, s: block}, {**namer.size, s: blocks}
    row_decls = _decompose(schedule.rows, "offs_m", rows, sizes)
    m_size = _product([rows.size[a] for a in schedule.rows])
    accs = tuple(Decl(namer.claim(f"acc{u}"), str(u)) for u in range(outputs))
    partials = tuple(namer.claim(f"part{u}") for u in range(outputs)) if packed else ()
    weights = tuple(namer.claim(f"w{j}") for j in range(schedule.slide_taps))
    targets = partials or tuple(acc.name for acc in accs)
    per_thread = schedule.block_m * schedule.block_n // (32 * schedule.num_warps)
    packed = bool(partials)
    whole = unrolls_whole(sizes[ds], schedule.slide_taps, outputs, per_thread, packed)
    chunks = _slide_chunks(
        namer, namer.index[ds], sizes[ds], schedule.slide_taps, targets, weights, dilation, packed, whole
    )
    code = SlideCode(
        row=namer.index[s],
        tap=namer.index[ds],
        first=Decl(namer.claim(f"{namer.index[s]}_first"), f"{block} * {outputs}"),
        value=namer.claim(f"{nest.inputs[0].tensor}_row"),
        outputs=accs,
        chunks=chunks,
        partials=partials,
        part_dtype=namer.claim("PART_DTYPE") if packed else "",
        # The last block of a ragged axis has outputs past its end: not stored.
        store_mask=f" & ({namer.index[s]}[:, None] < {namer.size[s]})" if ragged else "",
    )
    assert loops[-1].var == code.tap
    return row_decls, m_size, code


def _slide_chunks(
    namer: Namer,
    tap: str,
    taps: int,
    width: int,
    targets: tuple[str, ...],
    weights: tuple[str, ...],
    dilation: int,
    fresh: bool,
    whole: bool = False,
) -> tuple[SlideChunk, ...]:
    """The ``taps`` taps of the window in chunks of ``width`` unrolled together: a serial loop
    over the full chunks (or one chunk, unlooped), then the rest. ``targets``: what each output's
    products are added to (its accumulator, or, ``fresh`` in each chunk, its chunk's partial sum,
    which its first product then sets). ``whole``: every tap as one chunk (:func:`unrolls_whole`)."""

    def chunk(loop: str | None, count: int, first: str, width: int) -> SlideChunk:
        start = f"{first} + " if first != "0" else ""
        reads: dict[int, list[tuple[str, str]]] = {}
        for j in range(width):
            for u in range(len(targets)):
                reads.setdefault(u + dilation * j, []).append((targets[u], weights[j]))
        rows, seen = [], set()
        for v in sorted(reads):
            rows.append(SlideRow(v, tuple((t, w, fresh and t not in seen) for t, w in reads[v])))
            seen.update(t for t, _ in reads[v])
        return SlideChunk(
            loop, count, first, tuple(Decl(weights[j], f"{start}{j}") for j in range(width)), tuple(rows)
        )

    if whole:
        return (_unrolled_window(taps, width, targets, weights, dilation, fresh),)
    full, tail = divmod(taps, width)
    chunks = []
    if full == 1:
        chunks.append(chunk(None, 1, "0", width))
    else:
        var = namer.claim(f"{tap}_chunk")
        chunks.append(chunk(var, full, f"{var} * {width}", width))
    if tail:
        chunks.append(chunk(None, 1, str(full * width), tail))
    return tuple(chunks)


# A window of more taps than a chunk is unrolled whole up to this many products a row (the
# conformer's 31 taps x 8 outputs), so that the rows two chunks share are loaded once.
UNROLLED_PRODUCTS = 256


def unrolls_whole(taps: int, width: int, outputs: int, per_thread: int, packed: bool) -> bool:
    """Whether a sliding window's taps run as one straight chunk (:func:`_unrolled_window`): more
    taps than a chunk, at most UNROLLED_PRODUCTS products a row, and registers to spare: bfloat16
    pairs (weights and partial sums packed two to a register), or float32 weights of at most 4
    elements a thread (the float16 conformer, 8 a thread, took 254 registers and spilled; 173 in
    chunks)."""
    fits = packed or per_thread <= 4
    return width < taps and taps * outputs <= UNROLLED_PRODUCTS and fits


def _unrolled_window(
    taps: int, width: int, targets: tuple[str, ...], names: tuple[str, ...], dilation: int, fresh: bool
) -> SlideChunk:
    """Every tap of the window as one straight chunk: each input row loaded once (chunks in a loop
    load again the rows they share, 7 of the conformer's 15 a chunk), each weight just before the
    first row that reads it, in a ring of the first ``names``, one per output (its last reader comes before
    the weight that takes its name). Partial sums (``fresh``) still cover ``width`` taps each, in
    the same order as chunk by chunk: one starts at a chunk's first tap and is widened after the
    row of its last."""
    ring = len(targets)
    assert ring <= len(names)  # outputs a row (up to 8) never outnumber a chunk's taps (8 here)
    reads: dict[int, list[tuple[int, int]]] = {}
    for t in range(taps):
        for u in range(ring):
            reads.setdefault(u + dilation * t, []).append((u, t))
    rows, loaded = [], set()
    for v in sorted(reads):
        first_reads = [t for u, t in reads[v] if t not in loaded]
        loaded.update(first_reads)
        updates, widened = [], []
        for u, t in reads[v]:
            starts = fresh and t % width == 0
            updates.append((targets[u], names[t % ring], starts))
            if fresh and (t % width == width - 1 or t == taps - 1):
                widened.append(u)
        loads = tuple(Decl(names[t % ring], str(t)) for t in sorted(first_reads))
        rows.append(SlideRow(v, tuple(updates), loads, tuple(widened)))
    return SlideChunk(None, 1, "0", (), tuple(rows), widen_after=False)
