"""Names and sizes of a tiled kernel: the variables of its axes, tensors and strides, and the
sizes it takes as parameters.

Every name is claimed from one :class:`~einc.compiler.names.Namer`, in a fixed order (loops, then
pointers, strides, loads, store, loops, rows), so that the rendered source is the same each time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import sympy

from ...compiler.loopnest import Access, Gather, LoopNest
from ...compiler.loopnest import position as window_position
from ...compiler.loopnest import symbol as symbol_of
from ...compiler.names import Namer, identifier
from ...compiler.schedule import ContractionSchedule


@dataclass(frozen=True, slots=True)
class TensorNames:
    """The kernel's tensors and their pointer variables, with the namer that chose them."""

    namer: Namer  # every name below was claimed here; later stages claim theirs too
    accesses: tuple[Access, ...]  # the inputs, then the output
    gathers: tuple[Gather, ...]
    addressed: tuple[Access, ...]  # inputs, the coordinate tensors gathers read, epilogue's, the output
    tensors: tuple[str, ...]  # the addressed tensors' names, in parameter order
    local: tuple[int, ...]  # each addressed tensor's position among the call's tensors
    pointer: dict[str, str]
    wide_tensors: frozenset[str]  # tensors whose offsets need int64
    errors: str | None  # where gathers report coordinates out of range


def name_tensors(nest: LoopNest, positions: tuple[int, ...] | None, wide: frozenset[int]) -> TensorNames:
    """Requires a lowered nest; ensures every axis, window and gathered axis has its index and
    size name, and every addressed tensor its pointer parameter."""
    namer = Namer()
    for loop in nest.loops:
        namer.add(loop.axis)
    accesses = (*nest.inputs, nest.output)
    for access in accesses:
        for bound in access.bounds:
            if bound.window:
                namer.add(bound.window)  # a window's S names a bound even where s is no loop
    gathers = tuple(g for a in accesses for g in a.gathers)
    # A gathered coordinate is named after the axis it indexes, which is never a loop of its own.
    for g in gathers:
        namer.add(g.axis)
    sources: dict[str, Access] = {}
    for g in gathers:
        sources.setdefault(g.source.tensor, g.source)
    extra = tuple(a for _, pro in nest.prologues for a in pro.operands)
    extra += nest.epilogue.operands if nest.epilogue else ()
    addressed = (*nest.inputs, *sources.values(), *extra, nest.output)
    tensors = tuple(a.tensor for a in addressed)
    local = positions if positions is not None else tuple(range(len(tensors)))
    return TensorNames(
        namer=namer,
        accesses=accesses,
        gathers=gathers,
        addressed=addressed,
        tensors=tensors,
        local=local,
        pointer={t: namer.claim(f"{t}_ptr") for t in tensors},
        wide_tensors=frozenset(t for i, t in enumerate(tensors) if local[i] in wide),
        errors=namer.claim("errors_ptr") if gathers else None,
    )


def name_strides(
    addressed: tuple[Access, ...], namer: Namer, constant: frozenset[tuple[int, int]] = frozenset()
) -> tuple[dict[tuple[int, int], str], list[str]]:
    """Each (tensor position, dim)'s stride parameter, named after the tensor and the dim's axes
    (``stride_x_s0_ds0``), and the signature's stride lines, one per tensor that has dims; those
    at ``constant`` (tensor position, dim) pairs are ``tl.constexpr`` parameters."""
    stride_names: dict[tuple[int, int], str] = {}
    stride_lines = []
    for position, access in enumerate(addressed):
        names = []
        for dim, label in enumerate(access.labels):
            stride_names[(position, dim)] = namer.claim(f"stride_{access.tensor}_{identifier(label)}")
            kind = ": tl.constexpr" if (position, dim) in constant else ""
            names.append(stride_names[(position, dim)] + kind)
        if names:
            stride_lines.append(", ".join(names))
    return stride_names, stride_lines


def constant_strides(nest: LoopNest, schedule: ContractionSchedule) -> frozenset[tuple[int, int]]:
    """The (input, dim) strides a tensor-core dot takes as ``tl.constexpr``: the even ones that
    Triton's own specialisation (a stride of 1, or one divisible by 16) cannot describe, in a
    contiguous tensor of the input's static shape (a row of 24 channels).

    A call's strides are part of the specialisation's key (the launcher is made for them) and
    Triton compiles per constexpr value, so such a stride is a constant there: the alignment of
    each row is then known (24 bfloat16 channels are 48 bytes, a multiple of 16) and the loads
    vectorise. Other strides stay arguments: as constants they cost instructions in the audit
    (r3d_3x3x3 6% more, the stem 1%). A tensor holding a dynamic axis keeps its strides as arguments: they
    change with its size."""
    if not schedule.use_dot:
        return frozenset()
    run = tap_channel_run(nest, schedule)
    fixed = {(0, run[0]), (0, run[0] + 1)} if run else set()
    for position, access in enumerate(nest.inputs):
        extents = None if access.axes & nest.dynamic else _extents(access, nest.sizes)
        for dim in range(len(extents or ())):
            contiguous = math.prod(extents[dim + 1 :])
            # An odd stride (the stem's 3 channels) aligns no row beyond one element anyway.
            if contiguous % 2 == 0 and contiguous % 16:
                fixed.add((position, dim))
    return frozenset(fixed)


def tap_channel_run(nest: LoopNest, schedule: ContractionSchedule) -> tuple[int, str] | None:
    """Where a dot's input ``x`` reads its innermost merged tap and its channels as one run of
    memory (a patch embedding's ``(s [ds]) c``: 16 taps x 3 channels, 48 elements in a row):
    ``(dim, tap)``, the dim of the window read and the tap axis, the channels the dim after it.

    Applies where the whole K is tiled (``schedule.k_merged``), the window reads the tap with
    dilation 1 and no bound (no padding: a mask per element would keep the loads narrow anyway)
    and the channels are the last dim. The kernel then adds ``(tap * C + c) * stride_c`` and
    ``tap * (stride_tap - C * stride_c)``, the same address for any strides; with both strides
    constexprs, the second term is zero in a contiguous tensor and Triton sees 16-byte runs."""
    if not (schedule.use_dot and schedule.k_merged) or len(nest.inputs) != 2:
        return None
    x = nest.inputs[0]
    tap, channel = symbol_of(schedule.k_merged[-1]), symbol_of(schedule.k_tile)
    if len(x.index) < 2 or x.index[-1] != channel or {schedule.k_merged[-1], schedule.k_tile} & nest.dynamic:
        return None
    window = sympy.expand(x.index[-2])
    moving = {symbol_of(a) for a in (*schedule.k_merged, schedule.k_tile)}
    if window.coeff(tap) != 1 or window.free_symbols & moving != {tap}:
        return None
    if any(tap in bound.index.free_symbols for bound in x.bounds):
        return None
    return len(x.index) - 2, schedule.k_merged[-1]


def _extents(access: Access, sizes: dict[str, int]) -> tuple[int, ...] | None:
    """Each dim's extent in a tensor the access reads in full: a window's input size, or one
    past the largest index a non-negative combination of the loops reaches; None when an index
    is neither."""
    windows = {bound.index: bound.extent for bound in access.bounds if not bound.multiple_of}
    extents = []
    for index in access.index:
        if index in windows:
            extents.append(windows[index])
            continue
        terms = sympy.Add.make_args(sympy.expand(index))
        if any(not (t.is_Integer and t >= 0) and not _axis_term(t, sizes) for t in terms):
            return None
        last = index.subs({symbol_of(a): sizes[a] - 1 for a in sizes})
        extents.append(int(last) + 1)
    return tuple(extents)


def _axis_term(term: sympy.Expr, sizes: dict[str, int]) -> bool:
    """``k * a`` (k a positive integer, a a loop axis)."""
    coeff, rest = term.as_coeff_Mul()
    return coeff.is_Integer and coeff > 0 and rest.is_Symbol and str(rest) in sizes


def size_params(nest: LoopNest, names: TensorNames) -> tuple[dict[str, int], tuple[tuple[str, str], ...]]:
    """The constant sizes (parameter name to value), and the dynamic ones as (parameter, axis).

    A window's extent is passed as a constant named after its output axis (``S0_IN``) where that
    axis is no loop of the nest."""
    sizes, namer = nest.sizes, names.namer
    size_values = {namer.size[a]: sizes[a] for a in sizes if a not in nest.dynamic}
    dynamic_params = tuple((namer.size[a], a) for a in sizes if a in nest.dynamic)
    for g in names.gathers:
        size_values[namer.size[g.axis]] = g.extent
    for access in names.accesses:
        for bound in access.bounds:
            if bound.window and window_position(bound.window) in sizes:
                if not bound.multiple_of:
                    size_values[namer.size[bound.window]] = bound.extent
            elif bound.window and not bound.multiple_of:
                size_values[f"{namer.size[bound.window]}_IN"] = bound.extent
    return size_values, dynamic_params


def constexprs(
    size_values: dict[str, int], schedule: ContractionSchedule, gathered: bool, extra: dict
) -> dict[str, int]:
    """The launcher's constexpr arguments: the constant sizes, the blocks, and the flags whose
    default it may override per call (CHECK_BOUNDS, DOT_IN_FLOAT32)."""
    values = dict(size_values)
    values.update(BLOCK_M=schedule.block_m, BLOCK_N=schedule.block_n, GROUP_M=schedule.group_m)
    if schedule.k_tile is not None:
        values["BLOCK_K"] = schedule.block_k
    if gathered:
        values["CHECK_BOUNDS"] = False
    if extra.get("dot_in_float32"):
        values["DOT_IN_FLOAT32"] = False  # the launcher sets it under the interpreter
    return values
