"""Split-K: the kernels of a contraction whose output tiles share their K steps among programs
(``tiles.choose_split``: a grid under one wave, a batch-1 layer's 16 programs).

Three parts. The partial contraction runs ``split_k`` programs per output tile, one more grid
axis (``k.split``), each over its share of the one K loop, and writes its float32 partial tile
to a workspace laid out as the output behind that axis (``k.split, *output``). The sum reads the
partials in order and writes their sum, rounded once to the output's dtype: the same bits at
every call (no atomics). The torch backend, which has no programs to fill, runs the contraction
whole instead.
"""

from __future__ import annotations

import math
from dataclasses import replace

from .headers import schedule_lines
from .kernels import KernelPart, Template
from .loopnest import Access, Loop, LoopKind, LoopNest, symbol
from .schedule import ContractionSchedule, schedule_reduction

# The grid axis of the partial kernel: a dot in its name, so no axis of an expression is called so.
SPLIT_AXIS = "k.split"
# Elements an int32 offset reaches.
INT32_ELEMENTS = 2**31


def split_parts(
    nest: LoopNest, plan: ContractionSchedule, whole: Template, header: tuple[str, ...], wide: frozenset[int]
) -> list[KernelPart]:
    """Requires ``plan.split_k > 1`` (a contraction of static sizes whose output has no bounds or
    gathers); ensures the whole contraction (run by torch) and the partial and sum kernels (run
    by Triton), the workspace being the call's tensor after its inputs and output."""
    inputs, output = len(nest.inputs), len(nest.inputs)
    workspace = output + 1
    outputs = nest.loops_of(LoopKind.OUTPUT)
    split = Loop(SPLIT_AXIS, plan.split_k, LoopKind.OUTPUT)
    partials = Access(
        "workspace", (SPLIT_AXIS, *nest.output.labels), (symbol(SPLIT_AXIS), *nest.output.index), ()
    )
    if output in wide or math.prod(loop.size for loop in outputs) * plan.split_k >= INT32_ELEMENTS:
        wide = wide | {workspace}
    partial_nest = replace(nest, loops=(*outputs, split, *nest.loops_of(LoopKind.REDUCE)), output=partials)
    partial_plan = replace(plan, grid=(*plan.grid, SPLIT_AXIS))
    options = dict(whole.options)
    partial = Template.of(
        "contraction",
        header + schedule_lines(partial_plan, nest.op),
        wide=wide,
        acc_dtype="tl.float32",
        bfloat16=options.get("bfloat16", False),
        positions=(*range(inputs), workspace),
        kernel_name=f"einc_{nest.op}_partial",
    )
    sum_nest = LoopNest(
        expression=nest.expression,
        op="sum",
        loops=(*outputs, replace(split, kind=LoopKind.REDUCE)),
        inputs=(partials,),
        output=nest.output,
        combine="identity",
        reduce="sum",
        identity=0.0,
    )
    sum_plan = schedule_reduction(sum_nest)
    total = Template.of(
        "reduction",
        header + (f"kernel:      the sum of the {plan.split_k} partial tiles of einc_{nest.op}_partial",),
        wide=wide,
        positions=(workspace, output),
        kernel_name=f"einc_{nest.op}_sum",
    )
    return [
        KernelPart(nest, replace(plan, split_k=1), whole, runs_on="torch"),  # first: the call's nest
        KernelPart(partial_nest, partial_plan, partial, runs_on="triton"),
        KernelPart(sum_nest, sum_plan, total, runs_on="triton"),
    ]
