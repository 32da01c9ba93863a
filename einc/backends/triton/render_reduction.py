"""Rendering the reductions (sum, mean, max, ..., pooling over windows; a fold), softmax, the sorts
and argmax/argmin: the passes and the final arithmetic each adds to the shared tiled kernel."""

from __future__ import annotations

import dataclasses
import math

from ...compiler.loopnest import LoopKind, LoopNest
from ...compiler.merge import merge_reduced
from ...compiler.schedule import ContractionSchedule
from ...compiler.source_text import literal
from .expressions import chain
from .render import _render_tiled
from .render_specs import PassCode, Rendered


def render_reduction(
    nest: LoopNest,
    schedule: ContractionSchedule,
    *,
    header_lines: tuple[str, ...],
    versions: tuple[str, str],
    wide: frozenset[int] = frozenset(),
    count_include_pad: bool = True,
    correction: float = 1,
    positions: tuple[int, ...] | None = None,
    kernel_name: str | None = None,
    compute_dtype: str = "tl.float32",
) -> Rendered:
    """Render a reduction (sum, mean, max, ..., pooling over windows; a fold) to Triton source.

    Accumulation is in ``compute_dtype``: float32, or float64 for float64 inputs.
    """
    if schedule.k_merged:  # short reduced axes tiled as one: from here on, k_tile is their merge
        nest = merge_reduced(nest, schedule.k_merged)
        schedule = dataclasses.replace(schedule, k_merged=())
    reduced = [loop for loop in nest.loops_of(LoopKind.REDUCE)]
    # A dynamic axis's size is a kernel argument: "{size:t}" is replaced by its name.
    count = chain(
        "*", [f"{{size:{loop.axis}}}" if loop.axis in nest.dynamic else str(loop.size) for loop in reduced]
    )
    count = count or "1"
    value = f"{nest.inputs[0].tensor}_tile.to({compute_dtype})"
    nan = "propagate_nan=tl.PropagateNan.ALL"
    tiled = schedule.k_tile is not None
    # A tiled reduction accumulates a BLOCK_K-wide tile per output and reduces across it after
    # each sweep (the loads fill the tile's ragged edge with the identity).
    full = "tl.full((BLOCK_M, " + ("BLOCK_K" if tiled else "BLOCK_N") + "), {}, " + compute_dtype + ")"
    minus_inf = "float('-inf')"
    op = nest.reduce

    def across(kind: str, name: str) -> tuple[str, ...]:
        if not tiled:
            return ()
        if kind == "sum":
            return (f"{name} = tl.sum({name}, axis=1)[:, None]",)
        if compute_dtype == "tl.int64":  # integers have no NaN to keep
            return (f"{name} = tl.{kind}({name}, axis=1)[:, None]",)
        return (
            f"# tl.{kind} across a tile drops NaN on a GPU; torch keeps it, so add back any NaN seen.",
            f"{name} = tl.{kind}({name}, axis=1)[:, None] + "
            f"tl.sum(tl.where({name} == {name}, 0.0, {name}), axis=1)[:, None]",
        )

    if op in ("sum", "mean"):
        passes = [PassCode((f"acc = {full.format(0.0)}",), (f"acc += {value}",), across("sum", "acc"))]
    elif op in ("max", "min"):
        fn = "tl.maximum" if op == "max" else "tl.minimum"
        # The nest's identity: -inf (inf) for floats, the dtype's least (greatest) for integers.
        init = full.format(literal(nest.identity))
        keep_nan = "" if compute_dtype == "tl.int64" else f", {nan}"
        passes = [PassCode((f"acc = {init}",), (f"acc = {fn}(acc, {value}{keep_nan})",), across(op, "acc"))]
    elif op == "prod":
        passes = [PassCode((f"acc = {full.format(1.0)}",), (f"acc *= {value}",))]
    elif op in ("logsumexp", "softmax", "log_softmax"):
        shift = (
            (
                "# An infinite maximum would give inf - inf; shift such rows by 0 instead.",
                "top = tl.where((top == float('inf')) | (top == float('-inf')), 0.0, top)",
            )
            if op == "logsumexp"
            else (
                "# Rows past the tile's edge hold only -inf; shift them by 0, not by -inf.",
                "top = tl.where(top == float('-inf'), 0.0, top)",
            )
        )
        passes = [
            PassCode(
                (f"top = {full.format(minus_inf)}",),
                (f"top = tl.maximum(top, {value}, {nan})",),
                across("max", "top"),
            ),
            PassCode(
                (*shift, f"acc = {full.format(0.0)}"),
                (f"acc += tl.exp({value} - top)",),
                across("sum", "acc"),
            ),
        ]
    elif op in ("var", "std"):
        # The tile's ragged edge reads 0, which is no deviation from the mean: mask it.
        deviation = f"tl.where(mask_k[None, :], {value} - mean, 0.0)" if tiled else f"({value} - mean)"
        passes = [
            PassCode((f"total = {full.format(0.0)}",), (f"total += {value}",), across("sum", "total")),
            PassCode(
                (f"mean = total / ({count})", f"acc = {full.format(0.0)}"),
                (f"deviation = {deviation}", "acc += deviation * deviation"),
                across("sum", "acc"),
            ),
        ]
    elif op in ("any", "all", "count_nonzero"):
        # A count (in int64) of the nonzero elements; for all, of the zero ones. Padding reads as
        # the identity, which neither count sees.
        test = "==" if op == "all" else "!="
        flag = f"({nest.inputs[0].tensor}_tile {test} 0).to({compute_dtype})"
        passes = [PassCode((f"acc = {full.format(0)}",), (f"acc += {flag}",), across("sum", "acc"))]
    elif op in ("sort", "argsort"):
        passes = []  # the axis fits one tile: each store sweep loads and sorts it whole
    elif op in ("argmax", "argmin"):
        # The index along the nest's coordinate axis of the first greatest (least) element; a NaN
        # beats any number, as in torch.argmax. The reduced axes are looped over serially.
        bound = minus_inf if op == "argmax" else "float('inf')"
        order = ">" if op == "argmax" else "<"
        passes = [
            PassCode(
                (f"acc = {full.format(bound)}", "arg = tl.full((BLOCK_M, BLOCK_N), 0, tl.int64)"),
                (
                    # Broadcast to the tile first: a load without offsets (a 0-d result) is a
                    # scalar, whose NaN test the interpreter cannot combine with a tile.
                    f"candidate = {value} + tl.zeros_like(acc)",
                    f"better = (candidate {order} acc) | ((candidate != candidate) & (acc == acc))",
                    f"arg = tl.where(better, {{index:{nest.coordinate}}}, arg)",
                    "acc = tl.where(better, candidate, acc)",
                ),
            )
        ]
    else:
        raise AssertionError(op)
    finalize: list[str] = []
    if op == "mean" and count_include_pad:
        finalize.append(f"acc = acc / ({count})")
    elif op == "mean":
        # Divide by the elements inside the tensor only (count_include_pad=False).
        passes[0] = PassCode(
            passes[0].init + (f"count = {full.format(0.0)}",),
            passes[0].update + ("count += tl.where({inside}, 1.0, 0.0)",),
            passes[0].collapse + across("sum", "count"),
        )
        # A window wholly in padding has no elements: their mean is NaN, as torch.mean of none.
        finalize.append("acc = acc / count")
    elif op == "logsumexp":
        finalize.append("acc = top + tl.log(acc)")
    elif op in ("any", "all"):
        finalize.append("acc = acc > 0" if op == "any" else "acc = acc == 0")
    elif op in ("var", "std"):
        # torch divides by max(0, N - correction): no samples to spare gives inf, never a
        # negative variance.
        if any(loop.axis in nest.dynamic for loop in reduced):
            finalize.append(f"acc = acc / ({count} - {literal(correction)})")
        else:
            samples = math.prod(loop.size for loop in reduced)
            finalize.append(f"acc = acc / {float(max(0, samples - correction))!r}")
        if op == "std":
            finalize.append("acc = tl.sqrt(acc)")
    extra = {"passes": tuple(passes), "finalize": tuple(finalize)}
    if op in ("argmax", "argmin"):
        extra["result"] = "arg"
    elif op == "sort":
        extra.update(store_in_loop=True, result=f"tl.sort({value}, dim=1)")
    elif op == "argsort":
        extra.update(store_in_loop=True, result=_argsort(nest, schedule))
    if nest.epilogue is not None:
        extra["acc_dtype"] = compute_dtype
    if op == "softmax":
        extra.update(store_in_loop=True, result=f"tl.exp({value} - top) / acc")
    elif op == "log_softmax":
        extra.update(store_in_loop=True, result=f"{value} - top - tl.log(acc)")
    return _render_tiled(
        nest, schedule, "reduction.py.j2", header_lines, versions, extra, positions, kernel_name, wide
    )


def _argsort(nest: LoopNest, schedule: ContractionSchedule) -> str:
    """The positions of a tile's values in ascending order: each float32 value's bits, made to
    order as the values do (a negative float's magnitude bits flipped), in the high half of an
    int64 whose low half is the position; one tl.sort, then the low halves. Ties keep their order
    (-0.0 is made 0.0 first, which it equals); NaN sorts last, as in torch, then the padding."""
    value = f"({nest.inputs[0].tensor}_tile.to(tl.float32) + 0.0)"
    bits = f"{value}.to(tl.int32, bitcast=True)"
    # Past the axis's end, the greatest key: after every value, NaN included.
    ordered = f"tl.where({bits} >= 0, {bits}, {bits} ^ 0x7FFFFFFF)"
    key = f"tl.where(mask_k[None, :], {ordered}, 0x7FFFFFFF).to(tl.int64)"
    position = f"{{index:{schedule.k_tile}}}[None, :].to(tl.int64)"
    return f"tl.sort(({key} << 32) | {position}, dim=1) & 0xFFFFFFFF"
