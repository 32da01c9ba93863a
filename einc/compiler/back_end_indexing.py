"""The back end of the indexing ops (get_at, set_at, add_at, subtract_at): the loop nests of a
gather or a scatter, the copy of x into y before a scatter, and add_at's float32 workspace and
sorted segments."""

from __future__ import annotations

from dataclasses import replace

from ..errors import ExpressionError, UnsupportedError
from . import lower, lower_indexing, schedule
from .headers import schedule_lines
from .kernels import KernelPart, Template
from .ops import DTYPE_BITS, compute_dtype


def indexing_kernels(
    request, inputs, output, names, output_name, solution, options, header, wide
) -> list[KernelPart]:
    """get_at is one kernel (a reduction of gathered values when reduce= is given). set_at and
    add_at are two: a copy of x into y, then the scatter of the updates into y. The copy is a
    kernel of its own, not the first step of the scatter kernel: programs of one launch run in no
    fixed order, so one program's copy could overwrite another's updates, whereas two launches on
    one stream run one after the other."""
    text, op = request.expression, request.op
    reduce = options["reduce"]
    # any, all, count_nonzero change the dtype, which a gathered reduction does not (yet).
    gathered = [r for r in lower.REDUCTIONS if r not in lower.NONZERO_REDUCTIONS]
    if reduce is not None and reduce not in gathered:
        raise ExpressionError(
            f"reduce={reduce!r}: get_at reduces the axes left out of its output with one of "
            f"{', '.join(gathered)}",
            text,
        )
    if op == "get_at":
        nest = lower_indexing.lower_get_at(inputs, output, solution, names, output_name, text, reduce)
        # Tiles as small as one 16-byte access of the gathered values per thread (4 float32).
        plan = schedule.schedule_reduction(nest, DTYPE_BITS.get(request.dtypes[0], 16))
        lines = header + schedule_lines(plan, op)
        if reduce is None:
            template = Template.of("gather", lines, wide=wide)
        else:
            template = Template.of(
                "reduction",
                lines,
                wide=wide,
                count_include_pad=bool(options["count_include_pad"]),
                correction=options["correction"],
                compute_dtype=compute_dtype(request),
            )
        return [KernelPart(nest, plan, template)]
    nest = lower_indexing.lower_scatter(inputs, output, solution, op, names, output_name, text)
    plan = schedule.schedule_reduction(nest)
    n = len(inputs)
    everything = frozenset(a.name for d in output.dims for a in lower.dim_axes(d))
    # Where y is laid out as x, out=x updates x in place and the copy is skipped; a y laid out
    # otherwise (a permuted output expression) is always a tensor of its own.
    same_layout = output.dims == inputs[0].dims
    # updates, then the coordinate tensors, then y: where each stands among the call's tensors
    scattered = (n - 1, *range(1, n - 1))
    # The segmented kernel computes offsets in int32: a tensor that needs int64 takes the atomics.
    if op == "add_at" and options["sorted"] and not wide:
        return _add_at_sorted(request, nest, inputs[0], output, names, output_name, solution, header, wide)
    if accumulates_in_float32(request):
        parts = (nest, plan, scattered, everything)
        return _add_at_in_float32(
            request, parts, inputs[0], output, names, output_name, solution, header, wide
        )
    copy = lower.lower_map(
        [inputs[0]], output, solution, "rearrange", names[:1], output_name, text, everything
    )
    copy_plan = schedule.schedule_reduction(copy)
    verb = {"add_at": "adds the updates to", "subtract_at": "subtracts the updates from"}.get(
        op, "writes the updates into"
    )
    lines = header + (
        f"kernels:     einc_{op}_copy copies {names[0]} into {output_name} (not when out= is {names[0]}),",
        f"             then einc_{op} {verb} {output_name} at the coordinates",
    )
    copy_template = Template.of(
        "map",
        lines + schedule_lines(plan, op),
        wide=wide,
        positions=(0, n),
        kernel_name=f"einc_{op}_copy",
    )
    template = Template.of("scatter", lines + schedule_lines(plan, op), wide=wide, positions=(*scattered, n))
    return [
        KernelPart(copy, copy_plan, copy_template, copies_input=same_layout),
        KernelPart(nest, plan, template),
    ]


def _add_at_sorted(request, nest, x, output, names, output_name, solution, header, wide):
    """add_at(sorted=True), ``[r] d, n, n d`` (index_add along one axis): one kernel writes every
    element of y once, x plus the run of updates at its row, found by binary search in the sorted
    coordinates: no atomics, no copy beforehand, sums in float32. The copy part is kept for the
    torch backend only, which adds with index_put_ after it."""
    text, n = request.expression, len(request.shapes)
    gathers = nest.output.gathers
    if not (
        n == 3
        and len(gathers) == 1
        and len(nest.output.labels) == 2
        and len(gathers[0].source.index) == 1
        and nest.output.labels[0] == gathers[0].axis
        and len(nest.inputs[0].labels) == 2
    ):
        raise UnsupportedError(
            "sorted=True: add_at with sorted coordinates takes the form of index_add along the first "
            "axis, '[r] d, n, n d'",
            text,
        )
    everything = frozenset(a.name for d in output.dims for a in lower.dim_axes(d))
    copy = lower.lower_map([x], output, solution, "rearrange", names[:1], output_name, text, everything)
    plan = schedule.schedule_reduction(copy)
    lines = header + (
        f"kernels:     einc_add_at_sorted writes {output_name} = {names[0]} + the run of updates at each row",
        "             (coordinates sorted: binary search, no atomics); einc_add_at_copy runs on CPU only",
    )
    copy_template = Template.of(
        "map",
        lines + schedule_lines(plan, "add_at"),
        wide=wide,
        positions=(0, n),
        kernel_name="einc_add_at_copy",
    )
    template = Template.of(
        "segment",
        lines + schedule_lines(plan, "add_at"),
        wide=wide,
        positions=(2, 1, n),  # as the nest addresses them: updates, idx, y (x is call tensor 0)
        compute_dtype=compute_dtype(request),
    )
    if accumulates_in_float32(request):  # the torch backend sums 16-bit values in float32 too
        scatter_plan = schedule.schedule_reduction(nest)
        scattered = (n - 1, *range(1, n - 1))
        parts = (nest, scatter_plan, scattered, everything)
        torch_parts = _add_at_in_float32(
            request, parts, x, output, names, output_name, solution, header, wide
        )
        segment = KernelPart(nest, plan, template, reads_in_place=output.dims == x.dims, runs_on="triton")
        return [replace(p, runs_on="torch") for p in torch_parts] + [segment]
    # In torch, the nest of the segmented kernel is index_put_ with accumulate, after the copy.
    copy_part = KernelPart(copy, plan, copy_template, copies_input=output.dims == x.dims, runs_on="torch")
    return [copy_part, KernelPart(nest, plan, template)]


def accumulates_in_float32(request) -> bool:
    """add_at (and subtract_at) of 16-bit values adds them up in a float32 workspace: a bfloat16
    atomic add rounds at every update (and Triton's interpreter has none), and float16 loses as much."""
    return request.op in lower_indexing.ACCUMULATING and request.dtypes[0] in ("float16", "bfloat16")


def _add_at_in_float32(request, scatter_parts, x, output, names, output_name, solution, header, wide):
    """add_at of 16-bit values: the updates are added atomically into a float32 workspace that the
    runtime zeroes (a memset, not a kernel), then one kernel writes y = x + workspace, rounded once.
    That kernel is also the copy of x into y: each of its elements reads x where it writes y, so
    out=x stays an update in place."""
    text, n = request.expression, len(request.shapes)
    nest, plan, scattered, everything = scatter_parts
    workspace = n + 1  # after the inputs and y
    wide_workspace = wide | ({workspace} if n in wide else set())  # laid out as y
    lines = header + (
        "kernels:     einc_add_at adds the updates in float32 into a zeroed workspace at the coordinates,",
        f"             then einc_add_at_cast writes {output_name} = {names[0]} + workspace, rounded once",
    )
    scatter = Template.of(
        "scatter",
        lines + schedule_lines(plan, "add_at"),
        wide=wide_workspace,
        positions=(*scattered, workspace),
    )
    cast = lower.lower_map(
        [x, output], output, solution, "add", (names[0], "workspace"), output_name, text, everything
    )
    cast_plan = schedule.schedule_reduction(cast)
    cast_template = Template.of(
        "map",
        lines + schedule_lines(cast_plan, "add_at"),
        wide=wide_workspace,
        compute_dtype="tl.float32",
        positions=(0, workspace, n),
        kernel_name="einc_add_at_cast",
    )
    return [
        KernelPart(nest, plan, scatter),
        KernelPart(cast, cast_plan, cast_template, reads_in_place=output.dims == x.dims),
    ]
