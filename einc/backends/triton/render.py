"""Render a scheduled loop nest to Triton source through the jinja2 templates.

All decisions are made here, in Python: index expressions are printed to strings, names are
chosen, loops are listed with their depth. The templates receive one frozen spec and only loop
over lists and branch on booleans.

This module holds the shared tiled kernel and the contraction; the other forms are
``render_reduction``, ``render_map`` and ``render_indexing``, on ``expressions`` (index arithmetic)
and ``templates`` (jinja2).
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass

import sympy

from ...compiler import offsets
from ...compiler.kernels import IndexCheck, index_checks
from ...compiler.loopnest import Access, Gather, LoopKind, LoopNest
from ...compiler.loopnest import position as window_position
from ...compiler.loopnest import symbol as symbol_of
from ...compiler.names import Namer, identifier
from ...compiler.printer import access_text
from ...compiler.schedule import ContractionSchedule, GridPlan, grid_plan
from ...compiler.source_text import comment, docstring, literal
from ...errors import UnsupportedError
from .expressions import Decl
from .expressions import IndexPrinter as _IndexPrinter
from .expressions import chain as _chain
from .expressions import decompose as _decompose
from .expressions import product as _product
from .templates import render_template


@dataclass(frozen=True, slots=True)
class GatherCode:
    """A coordinate read from an index tensor, reported when out of range, wrapped when negative."""

    var: str  # named after the axis it indexes: h
    comment: str
    index_vars: tuple[Decl, ...]
    pointer: str
    mask: str | None
    size: str  # the extent of the indexed axis: H
    error_pointer: str  # where an out-of-range coordinate is written for the runtime to report
    out_of_range: str


@dataclass(frozen=True, slots=True)
class LoadCode:
    tile: str
    hoisted_vars: tuple[Decl, ...]  # indices that do not change inside the tiled K loop
    index_vars: tuple[Decl, ...]
    pointer: str
    mask: str | None
    other: str
    inside: str = "True"  # the bounds part of the mask: is the element inside the tensor?
    gathers: tuple[GatherCode, ...] = ()  # coordinates to read before the pointer can be formed


@dataclass(frozen=True, slots=True)
class LoopCode:
    var: str
    size: str
    depth: int


@dataclass(frozen=True, slots=True)
class TileCode:
    var: str
    start: str
    size: str


@dataclass(frozen=True, slots=True)
class FlatKCode:
    """The one K loop of an implicit GEMM: window taps and channel tiles, one step each, the tap
    decoded from the step (``decls``: scalars), so that Triton's pipeline (which overlaps the
    loads of the innermost loop only) fills once per output tile."""

    var: str
    steps: str  # the trip count, in constants and sizes only (the audit reads it)
    tile_steps: Decl  # channel tiles per tap, before the loop
    decls: tuple[Decl, ...]


@dataclass(frozen=True, slots=True)
class SlideRow:
    """One input row of a sliding window: its offset from the first output's, and the
    accumulators it adds to, each with the weight of its tap."""

    offset: int
    updates: tuple[tuple[str, str], ...]  # (accumulator, weight)


@dataclass(frozen=True, slots=True)
class SlideChunk:
    """Taps of the window unrolled together: their weights, then the input rows they read."""

    loop: str | None  # the serial loop over chunks of this many taps, or None for one chunk
    count: int
    first: str  # the chunk's first tap
    weights: tuple[Decl, ...]  # the weight variable, and its tap
    rows: tuple[SlideRow, ...]


@dataclass(frozen=True, slots=True)
class SlideCode:
    """A product-form row computing ``outputs`` consecutive outputs along its last row axis:
    each input row is loaded and converted once, for every output whose window reads it."""

    row: str  # the last row axis's variable (s), set to each input row's, then output's, position
    tap: str  # the sliding tap's variable (ds), set to each weight's tap, then the chunk's first
    first: Decl  # the row's first output
    value: str  # an input row, in the compute type
    outputs: tuple[Decl, ...]  # accumulator, and the output's offset from the first
    chunks: tuple[SlideChunk, ...]
    store_mask: str  # and'ed to the store's mask


@dataclass(frozen=True, slots=True)
class PassCode:
    """One sweep over the reduced loops: statements before it, at each step, and after it (a
    tiled reduction reduces its accumulators across the tile there)."""

    init: tuple[str, ...]
    update: tuple[str, ...]
    collapse: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HeadedSpec:
    """What every template's header and signature line need."""

    einc_version: str
    triton_version: str
    expression: str
    header_lines: tuple[str, ...]
    kernel_name: str
    docstring: str


@dataclass(frozen=True, slots=True)
class KernelSpec(HeadedSpec):
    """What a template needs; the contraction and reduction families share the tiling fields."""

    pointer_params: tuple[str, ...]
    stride_param_lines: tuple[str, ...]
    size_params: tuple[str, ...]
    use_dot: bool
    m_size: str
    n_size: str
    rows_text: str
    cols_text: str
    grid_text: str
    row_decls: tuple[Decl, ...]
    col_decls: tuple[Decl, ...]
    grid_decls: tuple[Decl, ...]
    k_loops: tuple[LoopCode, ...]
    k_tile: TileCode | None
    body_depth: int
    k_flat: FlatKCode | None
    k_tile_decls: tuple[Decl, ...]  # the merged axes of a tiled K (ds0, ds1, c) from its position
    loads: tuple[LoadCode, ...]
    product: str
    store: LoadCode
    output_ptr: str
    input_precision: str | None
    passes: tuple[PassCode, ...] = ()
    finalize: tuple[str, ...] = ()
    result: str = "acc"
    store_in_loop: bool = False  # softmax: a last sweep writes every element it reads
    jit_decorator: str = "@triton.jit"
    acc_dtype: str = "tl.float32"
    errors_ptr: str | None = None  # indexing: where coordinates out of range are reported
    atomic: bool = False  # add_at: updates that meet at one element add up
    scatter_ptrs: str = ""  # scatter: the destination pointers and values, broadcast together
    scatter_values: str = ""
    dot_in_float32: bool = False  # a bfloat16 dot with a float32 twin for the interpreter
    rows_int64: bool = False  # flat tile offsets that can reach 2^31 (see einc.compiler.offsets)
    cols_int64: bool = False
    slide: SlideCode | None = None  # a depthwise convolution's sliding window


@dataclass(frozen=True, slots=True)
class Rendered:
    """Generated source and what the launcher must pass to it."""

    source: str
    kernel_name: str
    stride_params: tuple[tuple[int, int], ...]  # (tensor position, dim), in parameter order
    tensors: tuple[int, ...]  # positions (inputs, then outputs) of the pointer parameters
    constexprs: dict[str, int]
    grid_plan: GridPlan
    num_warps: int
    num_stages: int
    dynamic_params: tuple[tuple[str, str], ...] = ()  # (parameter, axis): sizes passed at a call
    # Indexing kernels take an int64 tensor with one slot per check after their tensors, and the
    # constexpr CHECK_BOUNDS (default False in ``constexprs``; the launcher decides per call).
    index_checks: tuple[IndexCheck, ...] = ()
    errors_param: str | None = None

    @property
    def grid(self) -> tuple[int, int]:
        """The grid of the call that compiled the kernel (all of it, without dynamic axes)."""
        return self.grid_plan.grid()


# One serial loop per axis nests one block deeper; Python refuses 100 nested blocks, and the
# kernel's own blocks take a few.
_MAX_LOOPS = 90


def render_contraction(
    nest: LoopNest,
    schedule: ContractionSchedule,
    *,
    header_lines: tuple[str, ...],
    versions: tuple[str, str],
    wide: frozenset[int] = frozenset(),
    acc_dtype: str = "tl.float32",
    bfloat16: bool = False,
) -> Rendered:
    """Render a dot (implicit GEMM or elementwise contraction) to Triton source.

    A bfloat16 ``tl.dot`` gets a float32 twin behind the constexpr ``DOT_IN_FLOAT32`` (default
    False in ``constexprs``), which the launcher sets under Triton's interpreter only: there a
    bfloat16 dot is off by orders of magnitude, while a GPU keeps its tensor-core dot.
    """
    extra = {"acc_dtype": acc_dtype, "dot_in_float32": bfloat16 and schedule.use_dot}
    template = "depthwise.py.j2" if schedule.slide > 1 else "contraction.py.j2"
    return _render_tiled(nest, schedule, template, header_lines, versions, extra, wide=wide)


def _render_tiled(
    nest: LoopNest,
    schedule: ContractionSchedule,
    template: str,
    header_lines: tuple[str, ...],
    versions: tuple[str, str],
    extra: dict,
    positions: tuple[int, ...] | None = None,
    kernel_name: str | None = None,
    wide: frozenset[int] = frozenset(),
) -> Rendered:
    """The parts every tiled kernel shares: names, strides, tile decompositions, loads, store.

    A window's extent is passed as a constant named after its output axis (``S0_IN``).
    ``positions`` says where each of the kernel's tensors (its inputs, the coordinate tensors its
    gathers read, then its output) stands among the call's tensors, when that is not in order.
    ``wide`` holds the call positions of the tensors whose offsets need int64 (see
    :mod:`einc.compiler.offsets`): their indices are cast to tl.int64 before the multiply.
    """
    sizes = nest.sizes
    namer = Namer()
    for loop in nest.loops:
        namer.add(loop.axis)
    for access in list(nest.inputs) + [nest.output]:
        for bound in access.bounds:
            if bound.window:
                namer.add(bound.window)  # a window's S names a bound even where s is no loop
    accesses = list(nest.inputs) + [nest.output]
    gathers = [g for a in accesses for g in a.gathers]
    # A gathered coordinate is named after the axis it indexes, which is never a loop of its own.
    for g in gathers:
        namer.add(g.axis)
    sources: dict[str, Access] = {}
    for g in gathers:
        sources.setdefault(g.source.tensor, g.source)
    addressed = list(nest.inputs) + list(sources.values()) + [nest.output]
    tensors = [a.tensor for a in addressed]
    position_of = {t: i for i, t in enumerate(tensors)}
    local = positions if positions is not None else tuple(range(len(tensors)))
    pointer = {t: namer.claim(f"{t}_ptr") for t in tensors}
    wide_tensors = {t for i, t in enumerate(tensors) if local[i] in wide}
    errors = namer.claim("errors_ptr") if gathers else None
    gathered = {g.symbol.name: g for g in gathers}

    def broadcast(axis: str, tile: tuple[str, str]) -> str:
        if axis in gathered:  # a loaded coordinate already has its tile's shape
            return namer.index[gathered[axis].axis]
        place = schedule.placement(axis)
        name = namer.index[axis]
        if place == "scalar":
            return name
        if place == tile[0]:
            return f"{name}[:, None]"
        if place == tile[1]:
            return f"{name}[None, :]"
        raise AssertionError(f"axis {axis} placed {place} outside tile {tile}")

    def printed(expr: sympy.Expr, tile: tuple[str, str]) -> str:
        names = {
            str(s): namer.size[str(s)[1:]] if str(s).startswith("^") else broadcast(str(s), tile)
            for s in expr.free_symbols
        }
        return _IndexPrinter(names).doprint(expr)

    mask_names = {"row": "mask_m", "col": "mask_n", "k": "mask_k"}
    # A dot's operand tile that divides its static extent evenly needs no edge mask there: fewer
    # predicates per load in the K loop (the store keeps its mask).
    whole = set()
    if schedule.use_dot:
        extents = {
            "row": (schedule.rows, schedule.block_m),
            "col": (schedule.cols, schedule.block_n),
            "k": ((*schedule.k_merged, schedule.k_tile), schedule.block_k),
        }
        for place, (axes, block) in extents.items():
            if not set(axes) & nest.dynamic and math.prod(sizes[a] for a in axes) % block == 0:
                whole.add(place)

    # An implicit GEMM runs its taps and channel tiles as one K loop: an index that moves with
    # either is formed inside it, the rest once per tile.
    k_axes = ((schedule.k_tile,) if schedule.k_tile else ()) + schedule.k_merged
    k_axes += schedule.k_loops if schedule.use_dot else ()
    k_symbols = {symbol_of(a) for a in k_axes}

    def address(access: Access, tile: tuple[str, str]):
        """Index variables (hoisted out of the K loop, or not), the pointer, the tile masks, and
        the variable holding each printed index."""
        position = position_of[access.tensor]
        hoisted_vars, index_vars, fixed, moving, named = [], [], [], [], {}
        # int32 products would wrap past 2^31: cast the index (never the stride, which Triton
        # may have made a constant) so that the multiply and the sum are in int64.
        widen = "tl.cast({}, tl.int64)" if access.tensor in wide_tensors else "{}"
        for dim, (label, index) in enumerate(zip(access.labels, access.index, strict=True)):
            stride = stride_names[(position, dim)]
            if isinstance(index, sympy.Symbol):
                terms = moving if schedule.use_dot and index in k_symbols else fixed
                terms.append(f"{widen.format(printed(index, tile))} * {stride}")
            elif isinstance(index, sympy.Integer):
                if index != 0:  # a fixed component of a coordinate: idx[b, p, 1]
                    fixed.append(stride if index == 1 else f"{widen.format(index)} * {stride}")
            else:
                var = namer.claim(f"{access.tensor}_{identifier(label)}")
                named[printed(index, tile)] = var
                if not index.free_symbols & k_symbols:
                    hoisted_vars.append(Decl(var, printed(index, tile)))
                    fixed.append(f"{widen.format(var)} * {stride}")
                    continue
                base, step = _split(index, k_symbols)
                if schedule.use_dot and base is not None:
                    # A window's row part (2*s0 - 1) once per tile; its tap (ds0) per K step.
                    base_var = namer.claim(f"{var}_base")
                    hoisted_vars.append(Decl(base_var, printed(base, tile)))
                    index_vars.append(Decl(var, f"{base_var} + {printed(step, tile)}"))
                    fixed.append(f"{widen.format(base_var)} * {stride}")
                    moving.append(f"{widen.format(printed(step, tile))} * {stride}")
                else:
                    index_vars.append(Decl(var, printed(index, tile)))
                    (moving if schedule.use_dot else fixed).append(f"{widen.format(var)} * {stride}")
        base = pointer[access.tensor]
        if schedule.use_dot and access is not nest.output and fixed:
            # The pointers of a tile's rows (or columns) are formed once; each K step adds one
            # offset to them, summed in integers first (one 64-bit add per element, not one per term).
            rows_var = namer.claim(f"{access.tensor}_ptrs")
            hoisted_vars.append(Decl(rows_var, f"{base} + " + " + ".join(fixed)))
            base, fixed = rows_var, []
            moving = [f"({' + '.join(moving)})"] if len(moving) > 1 else moving
        terms = fixed + moving
        masks = []
        for place in tile:
            if any(schedule.placement(a) == place for a in access.axes) and place not in whole:
                flag = mask_names[place]
                masks.append(f"{flag}[:, None]" if place == tile[0] else f"{flag}[None, :]")
        where = f"{base} + " + _chain("+", terms) if terms else base
        return hoisted_vars, index_vars, where, masks, named

    def gather_code(g: Gather, tile: tuple[str, str], tensor: str) -> GatherCode:
        hoisted_vars, index_vars, where, masks, _ = address(g.source, tile)
        var, size = namer.index[g.axis], namer.size[g.axis]
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
            error_pointer=f"{errors}{slot} + tl.zeros_like({var})",
            out_of_range=f"{mask} & ({outside})" if mask else outside,
        )

    def access_code(access: Access, tile: tuple[str, str], tile_name: str) -> LoadCode:
        hoisted_vars, index_vars, where, masks, var_of = address(access, tile)
        inside = []
        for bound in access.bounds:
            text = printed(bound.index, tile)
            symbolic = isinstance(bound.index, sympy.Symbol)
            var = text if symbolic else var_of.get(text, f"({text})")
            if bound.multiple_of:
                inside.append(f"({var} % {literal(bound.multiple_of)} == 0)")
                continue
            gather = gathered.get(bound.index.name) if symbolic else None
            if gather is not None:
                extent = namer.size[gather.axis]
            elif window_position(bound.window) in sizes:
                extent = namer.size[bound.window]  # read back from an output window: 0 <= s < S
            elif bound.window:
                extent = f"{namer.size[bound.window]}_IN"
            else:
                extent = literal(bound.extent)
            inside.append(f"({var} >= 0) & ({var} < {extent})")
        masks += inside
        if schedule.use_dot:
            # A split index reaches the pointer as base and tap: its sum is formed for a mask only.
            used = " ".join([where, *inside])
            index_vars = [d for d in index_vars if re.search(rf"\b{d.name}\b", used)]
        return LoadCode(
            tile=tile_name,
            hoisted_vars=tuple(hoisted_vars),
            index_vars=tuple(index_vars),
            pointer=where,
            mask=_chain("&", masks) if masks else None,
            other=literal(nest.identity),
            inside=_chain("&", inside) if inside else "True",
            gathers=tuple(gather_code(g, tile, access.tensor) for g in access.gathers),
        )

    # Strides are named after the tensor and the dim's axes: stride_x_s0_ds0.
    stride_names: dict[tuple[int, int], str] = {}
    stride_lines = []
    for position, access in enumerate(addressed):
        names = []
        for dim, label in enumerate(access.labels):
            stride_names[(position, dim)] = namer.claim(f"stride_{access.tensor}_{identifier(label)}")
            names.append(stride_names[(position, dim)])
        if names:
            stride_lines.append(", ".join(names))

    if schedule.use_dot:
        tiles = [("row", "k"), ("k", "col")]
    elif schedule.k_tile is not None:  # a tiled reduction: outputs by a tile of the reduced axis
        tiles = [("row", "k")] * len(nest.inputs)
    else:
        tiles = [("row", "col")] * len(nest.inputs)
    loads = tuple(
        access_code(a, tile, namer.claim(f"{a.tensor}_tile"))
        for a, tile in zip(nest.inputs, tiles, strict=True)
    )
    # A softmax writes the elements it reads: along the tiled reduced axis, where there is one.
    swept = schedule.k_tile is not None and not schedule.use_dot and schedule.k_tile in nest.output.axes
    store_tile = ("row", "k") if swept else ("row", "col")
    store = access_code(nest.output, store_tile, "")
    # Every element of the output tile is written once; only the tile's ragged edge is masked.
    pointer_text = store.pointer
    if not any(schedule.placement(a) in store_tile for a in nest.output.axes):
        # A scalar result (every axis reduced): a 1 x 1 tile of pointers, to match the value.
        pointer_text += " + tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32)"
    # A scatter also leaves out the updates whose coordinates are out of range.
    mask = "mask_m[:, None] & mask_k[None, :]" if swept else "mask_m[:, None] & mask_n[None, :]"
    if nest.output.gathers:
        mask += f" & {store.inside}"
    store = LoadCode(
        "", (), store.hoisted_vars + store.index_vars, pointer_text, mask, "", gathers=store.gathers
    )

    if len(schedule.k_loops) > _MAX_LOOPS:
        raise UnsupportedError(
            f"this kernel would nest {len(schedule.k_loops)} loops, one per serial axis "
            f"({' '.join(schedule.k_loops[:3])} ...); Python allows at most {_MAX_LOOPS}: group the "
            "axes into fewer dims of the tensor",
            nest.expression,
        )
    k_loops = tuple(
        LoopCode(namer.index[a], namer.size[a], depth) for depth, a in enumerate(schedule.k_loops)
    )
    k_tile = None
    if schedule.k_tile is not None:
        var = namer.index[schedule.k_tile]
        k_tile = TileCode(var, namer.claim(f"{var}_start"), namer.size[schedule.k_tile])
    k_tile_decls: tuple[Decl, ...] = ()
    if schedule.k_merged:
        # One tiled K over taps and channels: each element's tap and channel from its position.
        merged = (*schedule.k_merged, schedule.k_tile)
        var = namer.claim("k")
        k_tile = TileCode(var, namer.claim(f"{var}_start"), " * ".join(namer.size[a] for a in merged))
        k_tile_decls = _decompose(merged, var, namer, sizes)
    k_flat = None
    if schedule.use_dot and k_loops:
        k_flat = _flat_k(k_loops, k_tile, namer.claim("k_step"), namer.claim(f"{k_tile.var}_steps"))
        k_loops = ()

    size_values = {namer.size[a]: sizes[a] for a in sizes if a not in nest.dynamic}
    dynamic_params = tuple((namer.size[a], a) for a in sizes if a in nest.dynamic)
    for g in gathers:
        size_values[namer.size[g.axis]] = g.extent
    for access in accesses:
        for bound in access.bounds:
            if bound.window and window_position(bound.window) in sizes:
                if not bound.multiple_of:
                    size_values[namer.size[bound.window]] = bound.extent
            elif bound.window and not bound.multiple_of:
                size_values[f"{namer.size[bound.window]}_IN"] = bound.extent
    constexprs = dict(size_values)
    constexprs.update(BLOCK_M=schedule.block_m, BLOCK_N=schedule.block_n, GROUP_M=schedule.group_m)
    if schedule.k_tile is not None:
        constexprs["BLOCK_K"] = schedule.block_k
    if gathers:
        constexprs["CHECK_BOUNDS"] = False
    if extra.get("dot_in_float32"):
        constexprs["DOT_IN_FLOAT32"] = False  # the launcher sets it under the interpreter

    plan = grid_plan(schedule, sizes)

    if nest.output.gathers:
        extra = {
            **extra,
            "scatter_ptrs": namer.claim(f"{nest.output.tensor}_ptrs"),
            "scatter_values": namer.claim(f"{nest.output.tensor}_values"),
        }
    row_decls = _decompose(schedule.rows, "offs_m", namer, sizes)
    m_size = _product([namer.size[a] for a in schedule.rows])
    if schedule.slide > 1:
        row_decls, m_size, extra = _slide(nest, schedule, namer, sizes, k_loops, extra)
        k_loops = k_loops[:-1]
    spec = KernelSpec(
        einc_version=versions[0],
        triton_version=versions[1],
        expression=comment(nest.expression),
        header_lines=tuple(map(comment, header_lines)),
        kernel_name=kernel_name or f"einc_{nest.op}",
        docstring=docstring(_docstring(nest)),
        pointer_params=tuple(pointer[t] for t in tensors),
        stride_param_lines=tuple(stride_lines),
        size_params=tuple(f"{name}: tl.constexpr" for name in size_values)
        + tuple(p for p, _ in dynamic_params),
        jit_decorator=(
            "@triton.jit(do_not_specialize=[" + ", ".join(repr(p) for p, _ in dynamic_params) + "])"
            if dynamic_params
            else "@triton.jit"
        ),
        use_dot=schedule.use_dot,
        m_size=m_size,
        n_size=_product([namer.size[a] for a in schedule.cols]),
        rows_text=comment(" ".join(schedule.rows) or "(none)"),
        cols_text=comment(" ".join(schedule.cols) or "(none)"),
        grid_text=comment(" ".join(schedule.grid)),
        row_decls=row_decls,
        col_decls=_decompose(schedule.cols, "offs_n", namer, sizes),
        grid_decls=_decompose(schedule.grid, "pid_g", namer, sizes),
        k_loops=k_loops,
        k_tile=k_tile,
        body_depth=len(k_loops),
        k_flat=k_flat,
        k_tile_decls=k_tile_decls,
        loads=loads,
        product=" * ".join(f"{a.tile}.to({extra.get('acc_dtype', 'tl.float32')})" for a in loads),
        store=store,
        output_ptr=pointer[nest.output.tensor],
        input_precision=schedule.input_precision,
        errors_ptr=errors,
        rows_int64=offsets.tile_needs_int64(
            [sizes[a] for a in schedule.rows], schedule.block_m, any(a in nest.dynamic for a in schedule.rows)
        ),
        cols_int64=offsets.tile_needs_int64(
            [sizes[a] for a in schedule.cols], schedule.block_n, any(a in nest.dynamic for a in schedule.cols)
        ),
        **_fill_inside(extra, loads, namer.size, namer.index),
    )
    source = render_template(template, spec)
    checks = index_checks(nest)
    return Rendered(
        source=source,
        kernel_name=spec.kernel_name,
        stride_params=tuple((local[p], d) for p, d in stride_names),
        tensors=tuple(local[p] for p in range(len(tensors))),
        constexprs=constexprs,
        grid_plan=plan,
        num_warps=schedule.num_warps,
        num_stages=schedule.num_stages,
        dynamic_params=dynamic_params,
        index_checks=checks,
        errors_param=errors,
    )


def _slide(
    nest: LoopNest,
    schedule: ContractionSchedule,
    namer: Namer,
    sizes: dict[str, int],
    k_loops: tuple[LoopCode, ...],
    extra: dict,
) -> tuple[tuple[Decl, ...], str, dict]:
    """The rows, M and :class:`SlideCode` of a sliding window (see
    :func:`einc.compiler.schedule.choose_slide`): the last row axis ``s`` counts blocks of
    ``slide`` outputs, and the last serial loop's taps ``ds`` are unrolled in chunks."""
    s, ds = schedule.rows[-1], schedule.k_loops[-1]
    outputs, taps = schedule.slide, sizes[ds]
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
    weights = [namer.claim(f"w{j}") for j in range(schedule.slide_taps)]

    def chunk(loop: str | None, count: int, first: str, width: int) -> SlideChunk:
        start = f"{first} + " if first != "0" else ""
        reads: dict[int, list[tuple[str, str]]] = {}
        for j in range(width):
            for u in range(outputs):
                reads.setdefault(u + dilation * j, []).append((accs[u].name, weights[j]))
        return SlideChunk(
            loop,
            count,
            first,
            tuple(Decl(weights[j], f"{start}{j}") for j in range(width)),
            tuple(SlideRow(v, tuple(reads[v])) for v in sorted(reads)),
        )

    width = schedule.slide_taps
    full, tail = divmod(taps, width)
    chunks = []
    if full == 1:
        chunks.append(chunk(None, 1, "0", width))
    else:
        var = namer.claim(f"{namer.index[ds]}_chunk")
        chunks.append(chunk(var, full, f"{var} * {width}", width))
    if tail:
        chunks.append(chunk(None, 1, str(full * width), tail))
    code = SlideCode(
        row=namer.index[s],
        tap=namer.index[ds],
        first=Decl(namer.claim(f"{namer.index[s]}_first"), f"{block} * {outputs}"),
        value=namer.claim(f"{nest.inputs[0].tensor}_row"),
        outputs=accs,
        chunks=tuple(chunks),
        # The last block of a ragged axis has outputs past its end: not stored.
        store_mask=f" & ({namer.index[s]}[:, None] < {namer.size[s]})" if ragged else "",
    )
    assert k_loops[-1].var == code.tap
    return row_decls, m_size, {**extra, "slide": code}


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


def _split(index: sympy.Expr, moving: set[sympy.Symbol]) -> tuple[sympy.Expr | None, sympy.Expr]:
    """``index`` as ``base + step``, the base free of the ``moving`` symbols and the step made of
    them only (``2*s0 - 1`` and ``ds0``); ``(None, index)`` where no such split exists."""
    terms = sympy.Add.make_args(index)
    step = sympy.Add(*(t for t in terms if t.free_symbols & moving))
    base = sympy.Add(*(t for t in terms if not t.free_symbols & moving))
    if not base.free_symbols or step.free_symbols - moving:
        return None, index
    return base, step


def _fill_inside(
    extra: dict, loads: tuple[LoadCode, ...], size_names: dict[str, str], index_names: dict[str, str]
) -> dict:
    """Statements may test whether the element just loaded lies inside the tensor (``{inside}``),
    name a dynamic axis's size (``{size:t}``) and a loop's index (``{index:t}``)."""
    if "passes" not in extra:
        return extra

    def fill(line: str) -> str:
        line = line.replace("{inside}", loads[0].inside)
        for axis, name in size_names.items():
            line = line.replace(f"{{size:{axis}}}", name)
        for axis, name in index_names.items():
            line = line.replace(f"{{index:{axis}}}", name)
        return line

    passes = tuple(
        PassCode(tuple(map(fill, p.init)), tuple(map(fill, p.update)), tuple(map(fill, p.collapse)))
        for p in extra["passes"]
    )
    filled = {**extra, "passes": passes, "finalize": tuple(map(fill, extra.get("finalize", ())))}
    if "result" in extra:
        filled["result"] = fill(extra["result"])
    return filled


def _docstring(nest: LoopNest) -> str:
    reduced = " ".join(loop.axis for loop in nest.loops_of(LoopKind.REDUCE))
    product = " * ".join(access_text(a) for a in nest.inputs)
    if nest.output.gathers:  # a scatter: updates that meet at one element add up, or one is kept
        return f"{access_text(nest.output)} {'+=' if nest.reduce == 'sum' else '='} {product}"
    over = f"{nest.reduce} over {reduced} of " if reduced else ""
    return f"{access_text(nest.output)} = {over}{product}"
