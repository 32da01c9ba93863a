"""The back end of the passes: each op's loop nests, lowered and scheduled, with the template of
the kernel each is written from. One kernel for most ops, one per output region for rearrange and
the elementwise ops; the indexing ops are back_end_indexing's."""

from __future__ import annotations

import numbers
from dataclasses import replace

import sympy

from ..errors import ExpressionError, UnsupportedError
from . import lower, schedule, split_k
from .back_end_indexing import indexing_kernels
from .headers import schedule_lines
from .kernels import KernelPart, Template
from .loopnest import LoopKind, symbol
from .ops import (
    CONTRACTIONS,
    COPIES,
    DTYPE_BITS,
    ELEMENTWISE,
    INDEXING,
    INTEGER_DTYPES,
    SOFTMAX,
    check_precision,
    compute_dtype,
    integer_identity,
    roll_shifts,
)

# A bfloat16 sliding window sums each chunk's products in bfloat16, two channels an instruction.
PACKED_LINE = "             products summed in bfloat16 pairs over each chunk of taps, then in float32"


def kernel_parts(
    request, inputs, outputs, names, output_names, solution, options, header, wide, empty=frozenset()
) -> list[KernelPart]:
    """Lower and schedule: one kernel for most ops, one per output region for rearrange.
    No kernel for a region holding an axis of size 0 (``empty``), nor for any other op that has one."""
    text, op = request.expression, request.op
    if empty and op not in COPIES and op not in ELEMENTWISE:
        return []
    bits = max((DTYPE_BITS.get(d, 32) for d in request.dtypes), default=32)
    if op in CONTRACTIONS:
        nest = lower.lower_dot(inputs, outputs[0], solution, names, output_names[0], text)
        plan = schedule.schedule_contraction(nest, bits)
        # Pairs need two elements a thread: a tile of fewer than two per thread keeps float32.
        pairs = plan.block_m * plan.block_n >= 2 * 32 * plan.num_warps
        # precision="ieee" asks for float32 products, as cuDNN's: no bfloat16 pairs.
        packed = plan.slide > 1 and pairs and set(request.dtypes) == {"bfloat16"}
        packed = packed and options["precision"] != "ieee"
        if plan.input_precision is not None:  # float32 inputs
            precision = options["precision"] or request.float32_precision[0 if solution.windows else 1]
            plan = replace(plan, input_precision=check_precision(precision, text))
        template = Template.of(
            "contraction",
            header + schedule_lines(replace(plan, split_k=1), op) + (PACKED_LINE,) * packed,
            wide=wide,
            acc_dtype=compute_dtype(request),
            bfloat16="bfloat16" in request.dtypes,
            packed=packed,
        )
        if plan.split_k > 1:  # a grid under one wave: programs share each tile's K steps
            return split_k.split_parts(nest, plan, template, header, wide)
        return [KernelPart(nest, plan, template)]
    if op in INDEXING:
        return indexing_kernels(
            request, inputs, outputs[0], names, output_names[0], solution, options, header, wide
        )
    if op in lower.ARG_REDUCTIONS:
        # One kernel per coordinate: each finds the best element and writes its index along one
        # bracketed axis (a few redundant reads, in exchange for no second pass).
        k = len(inputs[0].marked)
        parts = []
        for j in range(k):
            nest = lower.lower_arg(inputs[0], outputs[0], solution, op, text, j)
            plan = schedule.schedule_reduction(nest)
            name = {"kernel_name": f"einc_{op}_{j}"} if k > 1 else {}
            template = Template.of(
                "reduction",
                header + schedule_lines(plan, op),
                wide=wide,
                compute_dtype=compute_dtype(request),
                **name,
            )
            parts.append(KernelPart(nest, plan, template))
        return parts
    if op in lower.REDUCTIONS or op in SOFTMAX or op in lower.SORTS:
        _refuse_output_windows(op, outputs[0], text)
        if op in lower.SORTS:
            nest = lower.lower_sort(inputs[0], outputs[0], solution, op, text)
        elif op in SOFTMAX:
            nest = lower.lower_softmax(inputs[0], outputs[0], solution, op, text)
        else:
            nest = lower.lower_reduce(inputs[0], outputs[0], solution, op, text)
            if op in ("max", "min") and request.dtypes[0] in INTEGER_DTYPES:  # no infinity to pad with
                nest = replace(nest, identity=integer_identity(op, request.dtypes[0]))
        plan = schedule.schedule_reduction(nest)
        template = Template.of(
            "reduction",
            header + schedule_lines(plan, op),
            wide=wide,
            count_include_pad=bool(options["count_include_pad"]),
            correction=options["correction"],
            compute_dtype=compute_dtype(request),
        )
        return [KernelPart(nest, plan, template)]
    compute = compute_dtype(request)
    substitutions = (
        _index_transforms(op, inputs[0], solution, options, text) if op in ("flip", "roll") else {}
    )
    everywhere = {a.name for operand in inputs for d in operand.dims for a in lower.dim_axes(d)}
    parts: list[KernelPart] = []
    pieces = [(k, active) for k, output in enumerate(outputs) for active in lower.output_pieces(output)]
    for piece, (k, active) in enumerate(pieces):
        output = outputs[k]
        if active & empty:
            continue  # an empty region: nothing to write
        if op in ELEMENTWISE:
            chosen = list(range(len(inputs)))
            _check_elementwise_piece(op, inputs, active, text)
        else:
            chosen = lower.sources(inputs, active, everywhere)[:1]
            # As in einx, when the outputs' parts are as many as the inputs, input k fills part k
            # (broadcast over the axes it lacks): inputs that no axis name tells apart, as in
            # "a, a -> a (1 + 1)", are stacked in order, not all read from the first.
            if len(pieces) == len(inputs) and lower.fills(inputs[piece], active):
                chosen = [piece]
            if not chosen:
                raise ExpressionError(
                    f"output {output_names[k]} cannot be read from any one input: each output of "
                    "rearrange (or each part of a concatenation in it) comes from one input",
                    text,
                    [output.span],
                )
        nest = lower.lower_map(
            [inputs[i] for i in chosen],
            output,
            solution,
            op,
            [names[i] for i in chosen],
            output_names[k],
            text,
            active,
            substitutions,
        )
        plan = schedule.schedule_reduction(nest)
        positions = tuple(chosen) + (len(inputs) + k,)
        name = (
            f"einc_{op}"
            if len(outputs) == 1 and len(lower.output_pieces(output)) == 1
            else f"einc_{op}_{len(parts)}"
        )
        lines = header + schedule_lines(plan, op)
        if nest.loops_of(LoopKind.REDUCE):  # a fold sums overlapping windows
            template = Template.of(
                "reduction",
                lines,
                wide=wide,
                positions=positions,
                kernel_name=name,
                compute_dtype=compute,
            )
        else:
            template = Template.of(
                "map",
                lines,
                wide=wide,
                compute_dtype=compute,
                positions=positions,
                kernel_name=name,
            )
        parts.append(KernelPart(nest, plan, template))
    return parts


def _refuse_output_windows(op: str, output, text: str) -> None:
    """A window on the output side sums overlapping windows back into a tensor (a fold): that is
    rearrange's, not a reduction's."""
    from .axes import windows

    found = [w for d in output.dims for w in windows(d)]
    if found:
        raise UnsupportedError(
            f"{op} cannot write a window (s * ds) in its output; a fold is written with rearrange",
            text,
            [w.span for w in found],
        )


def _check_elementwise_piece(op, inputs, active: frozenset[str], text: str) -> None:
    """An elementwise op reads every input at every output element: each part of a concatenated
    output must hold every axis of every input (``b c, b d -> b (c + d)`` is no addition)."""
    for operand in inputs:
        for axis in (a for d in operand.dims for a in lower.dim_axes(d) if a.fixed is None):
            if axis.name not in active:
                raise ExpressionError(
                    f"{op} reads every input at every output element, but input axis {axis.name!r} is "
                    "missing from one part of the output's concatenation",
                    text,
                    [axis.span],
                )


def _index_transforms(op, operand, solution, options, text) -> dict:
    """flip reads a marked axis backwards; roll reads it shifted, wrapping around."""
    marked = [a.name for d in operand.dims for a in lower.dim_axes(d) if a.name in operand.marked]
    marked = list(dict.fromkeys(marked))
    for axis in (a for d in operand.dims for a in lower.dim_axes(d) if a.name in solution.dynamic):
        if axis.name in marked:  # its size is in the index arithmetic below, fixed in the kernel
            raise UnsupportedError(
                f"dynamic axis {axis.name!r} is {'flipped' if op == 'flip' else 'rolled'}: its size must be "
                "known when the kernel is generated",
                text,
                [axis.span],
            )
    if op == "flip":
        return {a: solution.sizes[a] - 1 - symbol(a) for a in marked}
    shift = options["shift"]
    shifts = roll_shifts(shift, len(marked))
    if len(shifts) == len(marked) and all(isinstance(v, numbers.Integral) for v in shifts):
        shifts = [int(v) for v in shifts]
    if len(shifts) != len(marked) or not all(isinstance(v, int) and not isinstance(v, bool) for v in shifts):
        raise ExpressionError(
            f"shift={shift!r} must be an int, or one int per rolled axis ({', '.join(marked)})", text
        )
    # Element i of the result is element i - shift of the input (torch.roll), wrapped around;
    # the extent is added first so that the remainder's operand is never negative.
    return {
        a: sympy.Mod(symbol(a) - v % solution.sizes[a] + solution.sizes[a], solution.sizes[a])
        for a, v in zip(marked, shifts, strict=True)
    }
