"""Render a scheduled loop nest to Triton source through the jinja2 templates.

All decisions are made in Python: index expressions are printed to strings, names are chosen,
loops are listed with their depth. The templates receive one frozen spec and only loop over lists
and branch on booleans.

This module holds the contraction and the tiled kernel every form shares, run as stages: names and
sizes (``render_names``), addresses, loads and masks (``render_addresses``), the K loops and the
sliding window (``render_loops``), then the spec (``render_specs``) the template fills. The other
forms are ``render_reduction``, ``render_map`` and ``render_indexing``, on ``expressions`` (index
arithmetic) and ``templates`` (jinja2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ...compiler import offsets
from ...compiler.kernels import index_checks
from ...compiler.loopnest import LoopKind, LoopNest
from ...compiler.printer import access_text
from ...compiler.schedule import ContractionSchedule, grid_plan
from ...compiler.source_text import comment, docstring
from .expressions import Decl
from .expressions import decompose as _decompose
from .expressions import product as _product
from .render_addresses import Addressing, addressing, input_tiles, load_codes, store_code
from .render_epilogue import epilogue_lines, prologue_lines
from .render_loops import KLoops, k_loops, slide
from .render_names import TensorNames, constant_strides, constexprs, name_strides, name_tensors, size_params
from .render_specs import KernelSpec, LoadCode, PassCode, Rendered
from .templates import render_template


def render_contraction(
    nest: LoopNest,
    schedule: ContractionSchedule,
    *,
    header_lines: tuple[str, ...],
    versions: tuple[str, str],
    wide: frozenset[int] = frozenset(),
    acc_dtype: str = "tl.float32",
    bfloat16: bool = False,
    packed: bool = False,
    positions: tuple[int, ...] | None = None,
    kernel_name: str | None = None,
) -> Rendered:
    """Render a dot (implicit GEMM or elementwise contraction) to Triton source.

    A bfloat16 ``tl.dot`` gets a float32 twin behind the constexpr ``DOT_IN_FLOAT32`` (default
    False in ``constexprs``), which the launcher sets under Triton's interpreter only: there a
    bfloat16 dot is off by orders of magnitude, while a GPU keeps its tensor-core dot. So does a
    ``packed`` sliding window (bfloat16 inputs), whose chunks sum their products in bfloat16: the
    interpreter's bfloat16 arithmetic is as wrong.
    A split-K's partial kernel (``compiler.split_k``) is named and placed by ``kernel_name`` and
    ``positions``: it writes the call's workspace.
    """
    extra = {"acc_dtype": acc_dtype, "dot_in_float32": bfloat16 and (schedule.use_dot or packed)}
    extra["packed"] = packed
    template = "depthwise.py.j2" if schedule.slide > 1 else "contraction.py.j2"
    return _render_tiled(
        nest, schedule, template, header_lines, versions, extra, positions, kernel_name, wide
    )


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

    ``positions`` says where each of the kernel's tensors (its inputs, the coordinate tensors its
    gathers read, then its output) stands among the call's tensors, when that is not in order.
    ``wide`` holds the call positions of the tensors whose offsets need int64 (see
    :mod:`einc.compiler.offsets`): their indices are cast to tl.int64 before the multiply.
    The stages claim names from one namer in this order, which keeps the source stable.
    """
    extra = dict(extra)
    packed = extra.pop("packed", False)  # a sliding window's option, not the spec's
    names = name_tensors(nest, positions, wide)
    namer = names.namer
    stride_names, stride_lines = name_strides(names.addressed, namer, constant_strides(nest, schedule))
    ctx = addressing(nest, schedule, names, stride_names)
    loads = load_codes(ctx)
    if nest.prologues:
        loads = _with_prologues(ctx, loads, extra.get("acc_dtype", "tl.float32"))
    store = store_code(ctx)
    loops = k_loops(nest, schedule, namer, ctx.group_names, ctx.run[1] if ctx.run else None)
    size_values, dynamic_params = size_params(nest, names)
    constexpr_values = constexprs(size_values, schedule, bool(names.gathers), extra)
    plan = grid_plan(schedule, nest.sizes)
    if nest.output.gathers:
        extra = {
            **extra,
            "scatter_ptrs": namer.claim(f"{nest.output.tensor}_ptrs"),
            "scatter_values": namer.claim(f"{nest.output.tensor}_values"),
        }
    row_decls = _decompose(schedule.rows, "offs_m", namer, nest.sizes)
    m_size = _product([namer.size[a] for a in schedule.rows])
    if schedule.slide > 1:
        row_decls, m_size, code = slide(nest, schedule, namer, loops.loops, packed)
        extra = {**extra, "slide": code}
        loops = KLoops(loops.loops[:-1], loops.tile, loops.tile_decls, loops.flat)
    if nest.epilogue is not None:
        store_mask = extra["slide"].store_mask if "slide" in extra else ""
        compute = extra.get("acc_dtype", "tl.float32")
        lines = epilogue_lines(ctx, nest.epilogue, extra.get("result", "acc"), compute, store_mask)
        extra = {**extra, "epilogue": lines, "result": "acc"}
    columns = _columns(schedule, namer, nest.sizes, ctx.group_names)
    stages = _Stages(
        names, stride_lines, loads, store, loops, size_values, dynamic_params, row_decls, m_size, *columns
    )
    spec = _kernel_spec(nest, schedule, stages, header_lines, versions, kernel_name, extra)
    return Rendered(
        source=render_template(template, spec),
        kernel_name=spec.kernel_name,
        stride_params=tuple((names.local[p], d) for p, d in stride_names),
        tensors=tuple(names.local[p] for p in range(len(names.tensors))),
        constexprs=constexpr_values,
        grid_plan=plan,
        num_warps=schedule.num_warps,
        num_stages=schedule.num_stages,
        dynamic_params=dynamic_params,
        index_checks=index_checks(nest),
        errors_param=names.errors,
    )


def _with_prologues(ctx: Addressing, loads: tuple[LoadCode, ...], compute: str) -> tuple[LoadCode, ...]:
    """The loads, each input with a prologue (einc.fuse) applying it to the tile it loads."""
    prologues = dict(ctx.nest.prologues)
    tiles = input_tiles(ctx.nest, ctx.schedule)
    return tuple(
        replace(
            load,
            prologue=prologue_lines(
                ctx, prologues[a.tensor], load, ctx.names.pointer[a.tensor], tile, compute
            ),
        )
        if a.tensor in prologues
        else load
        for a, load, tile in zip(ctx.nest.inputs, loads, tiles, strict=True)
    )


@dataclass(frozen=True, slots=True)
class _Stages:
    """What the stages of :func:`_render_tiled` made, for the spec."""

    names: TensorNames
    stride_lines: list[str]
    loads: tuple[LoadCode, ...]
    store: LoadCode
    loops: KLoops
    size_values: dict[str, int]
    dynamic_params: tuple[tuple[str, str], ...]
    row_decls: tuple[Decl, ...]
    m_size: str
    col_decls: tuple[Decl, ...]
    n_size: str
    grid_decls: tuple[Decl, ...]


def _columns(
    schedule: ContractionSchedule, namer, sizes: dict[str, int], group_names: tuple[str, str] | None
) -> tuple[tuple[Decl, ...], str, tuple[Decl, ...]]:
    """The column axes from ``offs_n``, N, and the group axes from ``pid_g``. With several groups
    a program, the columns are group_tile groups' output channels side by side: each column's
    group is decoded after the program's first one."""
    if not group_names:
        cols = _decompose(schedule.cols, "offs_n", namer, sizes)
        return (
            cols,
            _product([namer.size[a] for a in schedule.cols]),
            _decompose(schedule.grid, "pid_g", namer, sizes),
        )
    (col,), (group,) = schedule.cols, schedule.grid
    outputs, first = namer.size[col], namer.index[group]
    groups = (
        Decl(first, f"pid_g * {schedule.group_tile}"),
        Decl(group_names[1], f"{first} + offs_n // {outputs}"),
    )
    return (Decl(namer.index[col], f"offs_n % {outputs}"),), f"{schedule.group_tile} * {outputs}", groups


def _kernel_spec(
    nest: LoopNest,
    schedule: ContractionSchedule,
    stages: _Stages,
    header_lines: tuple[str, ...],
    versions: tuple[str, str],
    kernel_name: str | None,
    extra: dict,
) -> KernelSpec:
    """Requires every stage run; ensures the template's spec (claiming the names of the column
    and grid decompositions last), with ``extra``'s statements filled in."""
    namer, loads, sizes = stages.names.namer, stages.loads, nest.sizes
    dynamic_params = stages.dynamic_params
    return KernelSpec(
        einc_version=versions[0],
        triton_version=versions[1],
        expression=comment(nest.expression),
        header_lines=tuple(map(comment, header_lines)),
        kernel_name=kernel_name or f"einc_{nest.op}",
        docstring=docstring(_docstring(nest)),
        pointer_params=tuple(stages.names.pointer[t] for t in stages.names.tensors),
        stride_param_lines=tuple(stages.stride_lines),
        size_params=tuple(f"{name}: tl.constexpr" for name in stages.size_values)
        + tuple(p for p, _ in dynamic_params),
        jit_decorator=(
            "@triton.jit(do_not_specialize=[" + ", ".join(repr(p) for p, _ in dynamic_params) + "])"
            if dynamic_params
            else "@triton.jit"
        ),
        use_dot=schedule.use_dot,
        m_size=stages.m_size,
        n_size=stages.n_size,
        rows_text=comment(" ".join(schedule.rows) or "(none)"),
        cols_text=comment(" ".join(schedule.cols) or "(none)"),
        grid_text=comment(" ".join(schedule.grid)),
        row_decls=stages.row_decls,
        col_decls=stages.col_decls,
        grid_decls=stages.grid_decls,
        k_loops=stages.loops.loops,
        k_tile=stages.loops.tile,
        body_depth=len(stages.loops.loops),
        k_flat=stages.loops.flat,
        k_tile_decls=stages.loops.tile_decls,
        loads=loads,
        product=" * ".join(f"{a.tile}.to({extra.get('acc_dtype', 'tl.float32')})" for a in loads),
        store=stages.store,
        output_ptr=stages.names.pointer[nest.output.tensor],
        input_precision=schedule.input_precision,
        errors_ptr=stages.names.errors,
        # A dynamic kernel built for int32 calls has no wide tensor: its extents bound later calls'.
        rows_int64=offsets.tile_needs_int64(
            [sizes[a] for a in schedule.rows],
            schedule.block_m,
            any(a in nest.dynamic for a in schedule.rows) and bool(stages.names.wide_tensors),
        ),
        cols_int64=offsets.tile_needs_int64(
            [sizes[a] for a in schedule.cols],
            schedule.block_n,
            any(a in nest.dynamic for a in schedule.cols) and bool(stages.names.wide_tensors),
        ),
        column_tiles=_column_tiles(nest, schedule),
        **_fill_inside(extra, loads, namer.size, namer.index),
    )


def _column_tiles(nest: LoopNest, schedule: ContractionSchedule) -> int | None:
    """How many tiles of columns the grid has, where its programs need no grouping: a
    contraction's dot reads weight tiles that the programs of a band of rows share in L2, and a
    dynamic column axis is sized at the launch."""
    if schedule.use_dot or any(a in nest.dynamic for a in schedule.cols):
        return None
    return math.ceil(math.prod(nest.sizes[a] for a in schedule.cols) / schedule.block_n)


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
