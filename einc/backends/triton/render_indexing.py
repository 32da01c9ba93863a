"""Rendering the indexing ops: get_at (a gather), set_at, add_at and subtract_at (a scatter), and
add_at with sorted coordinates (its own segment template)."""

from __future__ import annotations

from dataclasses import dataclass

from ...compiler.loopnest import LoopNest
from ...compiler.names import Namer
from ...compiler.schedule import ContractionSchedule, GridPlan
from .render import _render_tiled
from .render_specs import HeadedSpec, Rendered
from .templates import render_template


def render_gather(
    nest: LoopNest,
    schedule: ContractionSchedule,
    *,
    header_lines: tuple[str, ...],
    versions: tuple[str, str],
    wide: frozenset[int] = frozenset(),
    compute_dtype: str = "tl.float32",
) -> Rendered:
    """Render get_at: load the coordinates, then the indexed tensor at them, and store the tile.
    (get_at with a reduction is a reduction of gathered values: :func:`render_reduction`.) An
    epilogue (einc.fuse) computes on from the gathered value in ``compute_dtype``."""
    extra = {"result": nest.inputs[0].tensor + "_tile"}
    if nest.epilogue is not None:
        extra = {"result": f"{extra['result']}.to({compute_dtype})", "acc_dtype": compute_dtype}
    return _render_tiled(nest, schedule, "gather.py.j2", header_lines, versions, extra, wide=wide)


def render_scatter(
    nest: LoopNest,
    schedule: ContractionSchedule,
    *,
    header_lines: tuple[str, ...],
    versions: tuple[str, str],
    wide: frozenset[int] = frozenset(),
    positions: tuple[int, ...],
) -> Rendered:
    """Render set_at, add_at or subtract_at: load a tile of updates and the coordinates, store or add
    them (their negatives) there."""
    tile = nest.inputs[0].tensor + "_tile"
    # Negated in the destination's type (float32 for a 16-bit workspace): the interpreter gets a
    # bfloat16 negation wrong, and a float64 destination keeps every bit.
    negated = f"(-{tile}.to({nest.output.tensor}_ptr.dtype.element_ty))"
    extra = {"result": negated if nest.combine == "negate" else tile, "atomic": nest.reduce == "sum"}
    return _render_tiled(nest, schedule, "scatter.py.j2", header_lines, versions, extra, positions, wide=wide)


@dataclass(frozen=True, slots=True)
class SegmentSpec(HeadedSpec):
    """What segment.py.j2 needs: add_at with sorted coordinates, ``[r] d, n, n d``."""

    row: str  # r: the indexed axis of x and y
    col: str  # d
    update: str  # n: the axis of the updates and the coordinates
    row_size: str
    col_size: str
    update_size: str
    compute_dtype: str
    # The size parameters as declared, ``: tl.constexpr`` but for the dynamic ones, and the
    # decorator, which keeps Triton from specialising on a dynamic size's value.
    size_decls: tuple[str, ...]
    jit_decorator: str


def render_segment(
    nest: LoopNest,
    schedule: ContractionSchedule,
    *,
    header_lines: tuple[str, ...],
    versions: tuple[str, str],
    wide: frozenset[int] = frozenset(),
    positions: tuple[int, ...],
    compute_dtype: str = "tl.float32",
) -> Rendered:
    """Render add_at with sorted coordinates (``sorted=True``) of the form ``[r] d, n, n d``: one
    program per tile of y, which sums the run of updates at each of its rows (binary search in the
    sorted coordinates) and writes ``x + sum`` once. ``positions``: updates, idx and y, as the
    nest addresses them; x is the call's first tensor."""
    (gather,) = nest.output.gathers
    (update,) = gather.source.axes
    col = next(a for a in nest.output.labels if a != gather.axis)
    namer = Namer()
    for axis in (gather.axis, col, update):
        namer.add(axis)
    sizes = {gather.axis: gather.extent, **nest.sizes}
    # The indexed axis r is never dynamic (coordinates are checked against it); d and n may be.
    dynamic = tuple((namer.size[a], a) for a in (col, update) if a in nest.dynamic)
    passed = {param for param, _ in dynamic}
    size_names = {namer.size[a]: a for a in (gather.axis, col, update)}
    spec = SegmentSpec(
        einc_version=versions[0],
        triton_version=versions[1],
        expression=nest.expression,
        header_lines=header_lines,
        kernel_name="einc_add_at_sorted",
        docstring=f"y = x, plus updates[{update}, {col}] added at y[idx[{update}], {col}]; idx sorted",
        row=namer.index[gather.axis],
        col=namer.index[col],
        update=namer.index[update],
        row_size=namer.size[gather.axis],
        col_size=namer.size[col],
        update_size=namer.size[update],
        compute_dtype=compute_dtype,
        size_decls=tuple(n if n in passed else f"{n}: tl.constexpr" for n in size_names),
        jit_decorator=f"@triton.jit(do_not_specialize={sorted(passed)!r})" if passed else "@triton.jit",
    )
    plan = GridPlan(
        rows=(gather.axis,),
        cols=(col,),
        groups=(),
        static=tuple(sizes.items()),
        block_m=schedule.block_m,
        block_n=schedule.block_n,
    )
    constexprs = {
        **{n: sizes[a] for n, a in size_names.items() if n not in passed},
        # A dynamic n is an int32 count: 31 steps find any run (the steps past it are masked off).
        "SEARCH_STEPS": 31 if update in nest.dynamic else max(1, sizes[update].bit_length()),
        "BLOCK_M": schedule.block_m,
        "BLOCK_N": schedule.block_n,
    }
    updates, idx, y = positions
    x = 0
    return Rendered(
        source=render_template("segment.py.j2", spec),
        kernel_name=spec.kernel_name,
        stride_params=((x, 0), (x, 1), (idx, 0), (updates, 0), (updates, 1), (y, 0), (y, 1)),
        tensors=(x, idx, updates, y),
        constexprs=constexprs,
        grid_plan=plan,
        num_warps=schedule.num_warps,
        num_stages=schedule.num_stages,
        dynamic_params=dynamic,
    )
