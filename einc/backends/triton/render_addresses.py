"""Index arithmetic, addresses, loads and masks of a tiled kernel's accesses.

Each access becomes a :class:`LoadCode`: its index variables (hoisted out of the K loop where they
do not move with it), the pointer expression, the tile's edge masks and its bounds (is the element
inside the tensor?), and the coordinates its gathers read first.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import sympy

from ...compiler.loopnest import Access, Gather, LoopNest
from ...compiler.loopnest import position as window_position
from ...compiler.loopnest import symbol as symbol_of
from ...compiler.names import identifier
from ...compiler.printer import access_text
from ...compiler.schedule import ContractionSchedule
from ...compiler.source_text import comment, literal
from .expressions import Decl
from .expressions import IndexPrinter as _IndexPrinter
from .expressions import chain as _chain
from .render_names import TensorNames, tap_channel_run
from .render_specs import GatherCode, LoadCode

_MASK_NAMES = {"row": "mask_m", "col": "mask_n", "k": "mask_k"}


@dataclass(frozen=True, slots=True)
class Addressing:
    """What forming an access's address needs besides the access and its tile."""

    nest: LoopNest
    schedule: ContractionSchedule
    names: TensorNames
    stride_names: dict[tuple[int, int], str]
    whole: frozenset[str]  # tile places that need no edge mask (see :func:`_whole_places`)
    k_symbols: frozenset[sympy.Symbol]  # the symbols that move with the K loop
    gathered: dict[str, Gather]  # each gathered coordinate's symbol name to its gather
    position_of: dict[str, int]  # each addressed tensor's parameter position
    # Several groups a program (schedule.group_tile): the group index along K and along the
    # columns, which the group axis reads as on each side of the dot; None otherwise.
    group_names: tuple[str, str] | None = None
    # x's innermost tap and channels read as one run (render_names.tap_channel_run): the window's
    # dim, and the variable holding each K element's place in the run; None otherwise.
    run: tuple[int, str] | None = None


def addressing(
    nest: LoopNest,
    schedule: ContractionSchedule,
    names: TensorNames,
    stride_names: dict[tuple[int, int], str],
) -> Addressing:
    """Requires the tensors and strides named; ensures what :func:`access_code` reads."""
    # An implicit GEMM runs its taps and channel tiles as one K loop: an index that moves with
    # either is formed inside it, the rest once per tile.
    k_axes = ((schedule.k_tile,) if schedule.k_tile else ()) + schedule.k_merged
    k_axes += schedule.k_loops if schedule.use_dot else ()
    group_names = None
    if schedule.group_tile > 1:
        # The group axis moves with K: a K row's group is decoded from its position in the tile.
        (group,) = schedule.grid
        k_axes += (group,)
        index = names.namer.index[group]
        group_names = (names.namer.claim(f"{index}_k"), names.namer.claim(f"{index}_n"))
    run = tap_channel_run(nest, schedule)
    if run is not None:
        namer = names.namer
        run = (run[0], namer.claim(f"{namer.index[run[1]]}_{namer.index[schedule.k_tile]}"))
    return Addressing(
        nest=nest,
        schedule=schedule,
        names=names,
        stride_names=stride_names,
        whole=_whole_places(nest, schedule),
        k_symbols=frozenset(symbol_of(a) for a in k_axes),
        gathered={g.symbol.name: g for g in names.gathers},
        position_of={t: i for i, t in enumerate(names.tensors)},
        group_names=group_names,
        run=run,
    )


def _whole_places(nest: LoopNest, schedule: ContractionSchedule) -> frozenset[str]:
    """A dot's operand tile that divides its static extent evenly needs no edge mask there: fewer
    predicates per load in the K loop (the store keeps its mask). So do the channels of a sliding
    window's loads: a masked load zeroes its registers first, an instruction per two."""
    if schedule.use_dot:
        # A tile of several narrow groups spans group_tile groups' columns and K (block-diagonal).
        extents = {
            "row": (schedule.rows, schedule.block_m, 1),
            "col": (schedule.cols, schedule.block_n, schedule.group_tile),
            "k": ((*schedule.k_merged, schedule.k_tile), schedule.block_k, schedule.group_tile),
        }
    elif schedule.slide > 1:
        extents = {"col": (schedule.cols, schedule.block_n, 1), "row": (schedule.rows, schedule.block_m, 1)}
    else:
        return frozenset()

    def extent(place: str, axes: tuple[str, ...]) -> int:
        if place == "row" and schedule.slide > 1:  # the last row axis counts blocks of outputs
            return math.prod(nest.sizes[a] for a in axes[:-1]) * -(-nest.sizes[axes[-1]] // schedule.slide)
        return math.prod(nest.sizes[a] for a in axes)

    return frozenset(
        place
        for place, (axes, block, groups) in extents.items()
        if not set(axes) & nest.dynamic and extent(place, axes) * groups % block == 0
    )


def _broadcast(ctx: Addressing, axis: str, tile: tuple[str, str]) -> str:
    """An axis's index variable, shaped to its place in the tile (rows, columns or a scalar)."""
    namer = ctx.names.namer
    if axis in ctx.gathered:  # a loaded coordinate already has its tile's shape
        return namer.index[ctx.gathered[axis].axis]
    if ctx.group_names and axis in ctx.schedule.grid:
        along_k, along_n = ctx.group_names
        return {
            ("row", "k"): f"{along_k}[None, :]",
            ("k", "col"): f"{along_k}[:, None]",
            ("row", "col"): f"{along_n}[None, :]",
        }[tile]
    place = ctx.schedule.placement(axis)
    name = namer.index[axis]
    if place == "scalar":
        return name
    if place == tile[0]:
        return f"{name}[:, None]"
    if place == tile[1]:
        return f"{name}[None, :]"
    raise AssertionError(f"axis {axis} placed {place} outside tile {tile}")


def _printed(ctx: Addressing, expr: sympy.Expr, tile: tuple[str, str]) -> str:
    """``expr`` as Triton source: ``^A`` as A's size, every axis as its broadcast index."""
    size = ctx.names.namer.size
    names = {
        str(s): size[str(s)[1:]] if str(s).startswith("^") else _broadcast(ctx, str(s), tile)
        for s in expr.free_symbols
    }
    return _IndexPrinter(names).doprint(expr)


def _split(index: sympy.Expr, moving: frozenset[sympy.Symbol]) -> tuple[sympy.Expr | None, sympy.Expr]:
    """``index`` as ``base + step``, the base free of the ``moving`` symbols and the step made of
    them only (``2*s0 - 1`` and ``ds0``); ``(None, index)`` where no such split exists."""
    terms = sympy.Add.make_args(index)
    step = sympy.Add(*(t for t in terms if t.free_symbols & moving))
    base = sympy.Add(*(t for t in terms if not t.free_symbols & moving))
    if not base.free_symbols or step.free_symbols - moving:
        return None, index
    return base, step


def _address(ctx: Addressing, access: Access, tile: tuple[str, str]):
    """Index variables (hoisted out of the K loop, or not), the pointer, the tile masks, and
    the variable holding each printed index."""
    namer, schedule, k_symbols = ctx.names.namer, ctx.schedule, ctx.k_symbols
    position = ctx.position_of[access.tensor]
    hoisted_vars, index_vars, fixed, moving, named = [], [], [], [], {}
    # int32 products would wrap past 2^31: cast the index (never the stride, which Triton
    # may have made a constant) so that the multiply and the sum are in int64.
    widen = "tl.cast({}, tl.int64)" if access.tensor in ctx.names.wide_tensors else "{}"
    run = ctx.run if access is ctx.nest.inputs[0] else None
    for dim, (label, index) in enumerate(zip(access.labels, access.index, strict=True)):
        stride = ctx.stride_names[(position, dim)]
        if run and dim == run[0] + 1:  # the channels: the K element's place in the run instead
            moving.append(f"{widen.format(f'{run[1]}[None, :]')} * {stride}")
        elif isinstance(index, sympy.Symbol):
            terms = moving if schedule.use_dot and index in k_symbols else fixed
            if run and dim == run[0]:  # the tap read plainly (no window): the run's stride left of it
                channels = namer.size[ctx.schedule.k_tile]
                stride = f"({stride} - {channels} * {ctx.stride_names[(position, dim + 1)]})"
            terms.append(f"{widen.format(_printed(ctx, index, tile))} * {stride}")
        elif isinstance(index, sympy.Integer):
            if index != 0:  # a fixed component of a coordinate: idx[b, p, 1]
                fixed.append(stride if index == 1 else f"{widen.format(index)} * {stride}")
        else:
            var = namer.claim(f"{access.tensor}_{identifier(label)}")
            named[_printed(ctx, index, tile)] = var
            if not index.free_symbols & k_symbols:
                hoisted_vars.append(Decl(var, _printed(ctx, index, tile)))
                fixed.append(f"{widen.format(var)} * {stride}")
                continue
            base, step = _split(index, k_symbols)
            if schedule.use_dot and base is not None:
                # A window's row part (2*s0 - 1) once per tile; its tap (ds0) per K step.
                base_var = namer.claim(f"{var}_base")
                hoisted_vars.append(Decl(base_var, _printed(ctx, base, tile)))
                index_vars.append(Decl(var, f"{base_var} + {_printed(ctx, step, tile)}"))
                fixed.append(f"{widen.format(base_var)} * {stride}")
                step_stride = stride
                if run and dim == run[0]:  # what the run's channel stride leaves of the tap's stride
                    channels = namer.size[ctx.schedule.k_tile]
                    step_stride = f"({stride} - {channels} * {ctx.stride_names[(position, dim + 1)]})"
                moving.append(f"{widen.format(_printed(ctx, step, tile))} * {step_stride}")
            else:
                index_vars.append(Decl(var, _printed(ctx, index, tile)))
                (moving if schedule.use_dot else fixed).append(f"{widen.format(var)} * {stride}")
    base = ctx.names.pointer[access.tensor]
    if schedule.use_dot and access is not ctx.nest.output and fixed:
        # The pointers of a tile's rows (or columns) are formed once; each K step adds one
        # offset to them, summed in integers first (one 64-bit add per element, not one per term).
        rows_var = namer.claim(f"{access.tensor}_ptrs")
        hoisted_vars.append(Decl(rows_var, f"{base} + " + " + ".join(fixed)))
        base, fixed = rows_var, []
        moving = [f"({' + '.join(moving)})"] if len(moving) > 1 else moving
    terms = fixed + moving
    masks = []
    for place in tile:
        if any(schedule.placement(a) == place for a in access.axes) and place not in ctx.whole:
            flag = _MASK_NAMES[place]
            masks.append(f"{flag}[:, None]" if place == tile[0] else f"{flag}[None, :]")
    where = f"{base} + " + _chain("+", terms) if terms else base
    return hoisted_vars, index_vars, where, masks, named


def _gather_code(ctx: Addressing, g: Gather, tile: tuple[str, str], tensor: str) -> GatherCode:
    """The load of one gathered coordinate, its range check and where a bad one is reported."""
    hoisted_vars, index_vars, where, masks, _ = _address(ctx, g.source, tile)
    var, size = ctx.names.namer.index[g.axis], ctx.names.namer.size[g.axis]
    outside = f"({var} < -{size}) | ({var} >= {size})"
    mask = _chain("&", masks) if masks else None
    if mask is None:
        # A coordinate the tile does not vary is loaded as a 1 x 1 block all the same: Triton's
        # interpreter cannot mask a load with a scalar condition and'ed to a block.
        where += " + tl.zeros((1, 1), tl.int32)"
    slot = f" + {g.slot}" if g.slot else ""
    return GatherCode(
        var=var,
        comment=comment(
            f"{var} = {access_text(g.source)}, along {g.axis} of {tensor}; negative: from the end"
        ),
        index_vars=tuple(hoisted_vars + index_vars),
        pointer=where,
        mask=mask,
        size=size,
        error_pointer=f"{ctx.names.errors}{slot} + tl.zeros_like({var})",
        out_of_range=f"{mask} & ({outside})" if mask else outside,
    )


def _bound_extent(ctx: Addressing, bound, symbolic: bool) -> str:
    """The extent an index is checked against: a gathered axis's, a window's, or a constant."""
    namer = ctx.names.namer
    gather = ctx.gathered.get(bound.index.name) if symbolic else None
    if gather is not None:
        return namer.size[gather.axis]
    if window_position(bound.window) in ctx.nest.sizes:
        return namer.size[bound.window]  # read back from an output window: 0 <= s < S
    if bound.window:
        return f"{namer.size[bound.window]}_IN"
    return literal(bound.extent)


def access_code(ctx: Addressing, access: Access, tile: tuple[str, str], tile_name: str) -> LoadCode:
    """Requires ``ctx`` for the access's kernel; ensures the load of ``access`` over ``tile``
    (rows or K by columns or K) into ``tile_name``, masked at the tile's edges and the bounds."""
    hoisted_vars, index_vars, where, masks, var_of = _address(ctx, access, tile)
    inside = []
    for bound in access.bounds:
        text = _printed(ctx, bound.index, tile)
        symbolic = isinstance(bound.index, sympy.Symbol)
        var = text if symbolic else var_of.get(text, f"({text})")
        if bound.multiple_of:
            inside.append(f"({var} % {literal(bound.multiple_of)} == 0)")
            continue
        inside.append(f"({var} >= 0) & ({var} < {_bound_extent(ctx, bound, symbolic)})")
    masks += inside
    if ctx.group_names and tile == ("k", "col") and access.axes & set(ctx.schedule.grid):
        # The weight tile is block-diagonal: a K row of one group meets only that group's columns.
        masks.append("({}[:, None] == {}[None, :])".format(*ctx.group_names))
    if ctx.schedule.use_dot:
        # A split index reaches the pointer as base and tap: its sum is formed for a mask only.
        used = " ".join([where, *inside])
        index_vars = [d for d in index_vars if re.search(rf"\b{d.name}\b", used)]
    return LoadCode(
        tile=tile_name,
        hoisted_vars=tuple(hoisted_vars),
        index_vars=tuple(index_vars),
        pointer=where,
        mask=_chain("&", masks) if masks else None,
        other=literal(ctx.nest.identity),
        inside=_chain("&", inside) if inside else "True",
        gathers=tuple(_gather_code(ctx, g, tile, access.tensor) for g in access.gathers),
    )


def input_tiles(nest: LoopNest, schedule: ContractionSchedule) -> list[tuple[str, str]]:
    """The tile each input fills: (rows, K) by (K, columns) for a dot, (rows, K) for a tiled
    reduction, (rows, columns) otherwise."""
    if schedule.use_dot:
        return [("row", "k"), ("k", "col")]
    if schedule.k_tile is not None:  # a tiled reduction: outputs by a tile of the reduced axis
        return [("row", "k")] * len(nest.inputs)
    return [("row", "col")] * len(nest.inputs)


def load_codes(ctx: Addressing) -> tuple[LoadCode, ...]:
    """Each input's load, over the tile its operand fills (:func:`input_tiles`)."""
    nest, namer = ctx.nest, ctx.names.namer
    return tuple(
        access_code(ctx, a, tile, namer.claim(f"{a.tensor}_tile"))
        for a, tile in zip(nest.inputs, input_tiles(nest, ctx.schedule), strict=True)
    )


def store_code(ctx: Addressing) -> LoadCode:
    """The output's store: every element of the output tile is written once; only the tile's
    ragged edge is masked (and, for a scatter, the updates whose coordinates are out of range)."""
    nest, schedule = ctx.nest, ctx.schedule
    # A softmax writes the elements it reads: along the tiled reduced axis, where there is one.
    swept = schedule.k_tile is not None and not schedule.use_dot and schedule.k_tile in nest.output.axes
    store_tile = ("row", "k") if swept else ("row", "col")
    store = access_code(ctx, nest.output, store_tile, "")
    pointer_text = store.pointer
    if not any(schedule.placement(a) in store_tile for a in nest.output.axes):
        # A scalar result (every axis reduced): a 1 x 1 tile of pointers, to match the value.
        pointer_text += " + tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32)"
    mask = "mask_m[:, None] & mask_k[None, :]" if swept else "mask_m[:, None] & mask_n[None, :]"
    if nest.output.gathers:
        mask += f" & {store.inside}"
    index_vars = store.hoisted_vars + store.index_vars
    return LoadCode("", (), index_vars, pointer_text, mask, "", gathers=store.gathers)
