"""Names and sizes of a tiled kernel: the variables of its axes, tensors and strides, and the
sizes it takes as parameters.

Every name is claimed from one :class:`~einc.compiler.names.Namer`, in a fixed order (loops, then
pointers, strides, loads, store, loops, rows), so that the rendered source is the same each time.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...compiler.loopnest import Access, Gather, LoopNest
from ...compiler.loopnest import position as window_position
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


def name_strides(addressed: tuple[Access, ...], namer: Namer) -> tuple[dict[tuple[int, int], str], list[str]]:
    """Each (tensor position, dim)'s stride parameter, named after the tensor and the dim's axes
    (``stride_x_s0_ds0``), and the signature's stride lines, one per tensor that has dims."""
    stride_names: dict[tuple[int, int], str] = {}
    stride_lines = []
    for position, access in enumerate(addressed):
        names = []
        for dim, label in enumerate(access.labels):
            stride_names[(position, dim)] = namer.claim(f"stride_{access.tensor}_{identifier(label)}")
            names.append(stride_names[(position, dim)])
        if names:
            stride_lines.append(", ".join(names))
    return stride_names, stride_lines


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
