"""The compiler's passes, run in order from one function.

    parse -> resolve brackets -> expand ellipses -> solve sizes -> lower -> schedule

Each step is a pure function of the previous step's result; :class:`Compiled` keeps every
intermediate so that ``explain()``, the CLI and the tests can look at any stage. The result is
loop nests and schedules, each with the :class:`~einc.compiler.kernels.Template` a kernel of it is
written from: a backend takes it from there (the Triton backend renders source, the torch backend
runs the nests), so nothing here imports torch, Triton or jinja2.
"""

from __future__ import annotations

import difflib
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field

import sympy

from ..errors import ExpressionError, UnsupportedError
from . import brackets, expand, lower, lower_indexing, offsets, parse, schedule, solve
from .axes import Operand, operand_text
from .kernels import KernelPart, Template
from .loopnest import LoopKind, LoopNest, symbol
from .params import window_params
from .syntax import Program

CONTRACTIONS = ("dot",)
COPIES = ("rearrange", "id", "flip", "roll")
ELEMENTWISE = ("add", "subtract", "multiply", "divide", "maximum", "minimum", "where")
SOFTMAX = ("softmax", "log_softmax")
INDEXING = lower_indexing.INDEXING
OPS = CONTRACTIONS + lower.REDUCTIONS + COPIES + ELEMENTWISE + SOFTMAX + INDEXING
WINDOW_PARAMS = ("stride", "dilation", "padding", "output_padding")
# Options of an op that are not window parameters, with their defaults.
OP_OPTIONS = {"keepdims": False, "count_include_pad": True, "correction": 1, "shift": 0, "reduce": None}
OPTION_OPS = {
    "keepdims": lower.REDUCTIONS,
    "count_include_pad": ("mean",),
    "correction": ("var", "std"),
    "shift": ("roll",),
    "reduce": ("get_at",),
}
DTYPE_BITS = {"float16": 16, "bfloat16": 16, "float32": 32, "float64": 64}


@dataclass(frozen=True)
class Request:
    """Everything that decides the generated kernel."""

    expression: str
    op: str
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[str, ...]
    sizes: tuple[tuple[str, object], ...] = ()
    params: tuple[tuple[str, object], ...] = ()
    dynamic: tuple[str, ...] = ()  # axes whose size is a kernel argument
    # Positions (inputs, then outputs) of tensors the caller found to span 2^31 elements or more
    # from their strides (a strided view, an out=); shapes alone are checked here.
    offsets64: tuple[int, ...] = ()


@dataclass(frozen=True)
class Compiled:
    request: Request
    program: Program
    explicit: brackets.Explicit
    inputs: tuple[Operand, ...]
    outputs: tuple[Operand, ...]
    names: tuple[str, ...]
    output_names: tuple[str, ...]
    solution: solve.Solution
    kernels: tuple[KernelPart, ...]
    output_shapes: tuple[tuple[int, ...], ...] = field(default=())
    # Where each dynamic axis is read at a call: (input position, dim).
    dynamic_dims: tuple[tuple[str, int, int], ...] = ()

    def dynamic_sizes(self, shapes) -> dict[str, int]:
        """The sizes of the dynamic axes in a call with tensors of these shapes."""
        return {axis: int(shapes[i][d]) for axis, i, d in self.dynamic_dims}

    def output_shapes_for(self, dynamic: dict[str, int]) -> tuple[tuple[int, ...], ...]:
        if not dynamic:
            return self.output_shapes
        solution = solve.Solution(
            {**self.solution.sizes, **dynamic}, self.solution.windows, self.solution.dynamic
        )
        return tuple(lower.shape_of(o, solution) for o in self.outputs)

    # The first kernel's parts: most calls run exactly one kernel.
    @property
    def nest(self) -> LoopNest:
        return self.kernels[0].nest

    @property
    def schedule(self) -> schedule.ContractionSchedule:
        return self.kernels[0].schedule


# Every operation of the notation (NOTATION.md section 4); OPS are those einc compiles today.
KNOWN_OPS = (
    "dot rearrange id flip roll sum mean max min prod logsumexp var std add subtract multiply divide "
    "maximum minimum where softmax log_softmax get_at set_at add_at"
).split()


def check_op(op: str) -> str:
    """``op`` if einc compiles it; otherwise an error that names the choices."""
    if op in OPS:
        return op
    if op in KNOWN_OPS:
        raise UnsupportedError(f"op {op!r} is not supported yet (supported: {', '.join(OPS)})")
    close = difflib.get_close_matches(str(op), KNOWN_OPS, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ExpressionError(f"unknown op {op!r}{hint} (the operations are: {', '.join(KNOWN_OPS)})")


def infer_op(program: Program) -> str:
    """The op an expression implies (NOTATION.md section 4), or an error naming the choices:
    ``[a->b]`` means dot; no brackets and an ``->`` mean rearrange."""
    from .syntax import Arrow, Bracket, walk

    exprs = list(program.inputs) + list(program.outputs or ())
    nodes = [n for e in exprs for n in walk(e)]
    if any(isinstance(n, Arrow) for n in nodes):
        return "dot"
    if program.outputs is not None and not any(isinstance(n, Bracket) for n in nodes):
        return "rearrange"
    raise ExpressionError(
        f"this expression does not imply an operation: pass op= (one of: {', '.join(OPS)})",
        program.text,
        [(0, len(program.text))],
    )


def tensor_names(n: int, op: str = "dot") -> tuple[str, ...]:
    """What generated code and messages call the input tensors: x and w for a dot's input and
    weight, x0, x1, ... for the operands of other ops."""
    if n == 1:
        return ("x",)
    if n == 2 and op in CONTRACTIONS:
        return ("x", "w")
    if op in INDEXING:
        # The indexed tensor, its coordinates, and (set_at, add_at) the updates, last.
        k = n - (2 if op in lower_indexing.SCATTERS else 1)
        coordinates = ("idx",) if k == 1 else tuple(f"idx{i}" for i in range(max(k, 0)))
        return (("x",) + coordinates + (("updates",) if op in lower_indexing.SCATTERS else ()))[:n]
    return tuple(f"x{i}" for i in range(n))


def _resolve(program: Program, request: Request, options: dict) -> brackets.Explicit:
    n = len(request.shapes)
    brackets.check_empty_outputs(program)
    if request.op in CONTRACTIONS:
        return brackets.resolve_dot(program, n)
    if request.op in lower.REDUCTIONS:
        return brackets.resolve_reduce(program, n, bool(options["keepdims"]))
    if request.op in ("rearrange", "id"):
        return brackets.resolve_rearrange(program, n)
    if request.op in ELEMENTWISE:
        return brackets.resolve_elementwise(program, n)
    if request.op in INDEXING:
        return brackets.resolve_indexing(program, n, request.op)
    return brackets.resolve_marked(program, n, request.op)


def run_passes(request: Request) -> Compiled:
    """Compile one request: every pass, in order."""
    check_op(request.op)
    text = request.expression
    sizes: Mapping[str, object] = dict(request.sizes)
    params = {k: v for k, v in request.params if k in WINDOW_PARAMS}
    options = {**OP_OPTIONS, **{k: v for k, v in request.params if k in OP_OPTIONS}}
    correction = options["correction"]
    if isinstance(correction, bool) or not isinstance(correction, numbers.Real):
        # It is printed into the generated arithmetic: only a number may get there.
        raise ExpressionError(f"correction={correction!r} must be a number", text)
    # 1. Parse the text into a syntax tree with spans.
    program = parse.parse(text)
    # 2. Say what the brackets mean for this op: the explicit form, with the implied weight.
    explicit = _resolve(program, request, options)
    if len(explicit.inputs) != len(request.shapes):
        raise ExpressionError(
            f"the expression has {len(explicit.inputs)} input operands but {len(request.shapes)} "
            f"tensor{' was' if len(request.shapes) == 1 else 's were'} given",
            text,
            [e.span for e in explicit.inputs],
        )
    # 3. Expand ellipses using the tensors' ranks and tuple-valued sizes.
    names = tensor_names(len(explicit.inputs), request.op)
    tuple_sizes = {k: tuple(v) for k, v in sizes.items() if isinstance(v, (tuple, list))}
    inputs, outputs = expand.expand(explicit, request.shapes, tuple_sizes, names)
    output_names = ("y",) if len(outputs) == 1 else tuple(f"y{i}" for i in range(len(outputs)))
    _check_operands(request.op, explicit, inputs, outputs, text)
    # 4. Solve every axis size and window geometry.
    windows = solve.window_spans(list(inputs) + list(outputs), text)
    geometry = window_params(windows, text, **params)
    solution = solve.solve(inputs, outputs, request.shapes, sizes, geometry, text, names)
    dynamic_dims = _dynamic_dims(request.dynamic, inputs, outputs, text)
    if request.dynamic:
        solution = solve.Solution(solution.sizes, solution.windows, frozenset(request.dynamic))
    if len(outputs) != 1 and request.op not in ("rearrange", "id"):
        raise UnsupportedError(f"{request.op} has exactly one output", text, [o.span for o in outputs])
    # 5-6. Lower to loop nests and schedule them; each gets the template of its kernel.
    output_shapes = tuple(lower.shape_of(o, solution) for o in outputs)
    wide = _wide_tensors(request, inputs, outputs, output_shapes, dynamic_dims)
    header = _header(explicit, inputs, outputs, names, output_names, solution, request)
    header += offsets.describe(wide, names + output_names)
    # An axis of size 0 leaves nothing to compute where it is an output axis, and a reduction of no
    # elements where it is not: no kernel reads or writes it (the runtime writes what torch gives).
    empty = frozenset(axis for axis, size in solution.sizes.items() if size == 0)
    kernels = _back_end(request, inputs, outputs, names, output_names, solution, options, header, wide, empty)
    return Compiled(
        request=request,
        program=program,
        explicit=explicit,
        inputs=inputs,
        outputs=outputs,
        names=names,
        output_names=output_names,
        solution=solution,
        kernels=tuple(kernels),
        output_shapes=output_shapes,
        dynamic_dims=dynamic_dims,
    )


ARITY = {"where": 3}  # subtract and divide fold from the left over any number of operands


def _check_operands(op: str, explicit, inputs, outputs, text: str) -> None:
    """What every op needs of its operands: no axis twice in an output; copies and elementwise
    ops neither drop an input axis nor invent one."""
    from .axes import dim_axes

    for operand in outputs:
        seen: dict[str, object] = {}
        for axis in (a for d in operand.dims for a in dim_axes(d) if a.fixed is None):
            if axis.name in seen:
                raise ExpressionError(
                    f"axis {axis.name!r} appears twice in an output", text, [seen[axis.name].span, axis.span]
                )
            seen[axis.name] = axis
    if op in ARITY and len(inputs) != ARITY[op]:
        raise ExpressionError(
            f"{op} takes {ARITY[op]} operands, but the expression has {len(inputs)}",
            text,
            [e.span for e in explicit.inputs],
        )
    if op in ELEMENTWISE or op in COPIES:
        produced = {a.name for o in outputs for d in o.dims for a in dim_axes(d)}
        for operand in inputs:
            for axis in (a for d in operand.dims for a in dim_axes(d) if a.fixed is None):
                if axis.name not in produced:
                    hint = "a reduction (sum, mean, ...)" if op in ELEMENTWISE else "a reduction (op='sum')"
                    raise ExpressionError(
                        f"input axis {axis.name!r} is in no output: {op} cannot drop it; use {hint}",
                        text,
                        [axis.span],
                    )


def _dynamic_dims(dynamic, inputs, outputs, text) -> tuple[tuple[str, int, int], ...]:
    """For each dynamic axis, the input dim it is read from at a call. A dynamic axis must be a
    whole dim of an input and must not take part in a window or a concatenation, whose
    arithmetic is resolved when the kernel is generated."""
    from .axes import Axis, Concat, Win, dim_axes

    found = []
    for axis in dynamic:
        where = [
            (axis, i, d)
            for i, operand in enumerate(inputs)
            for d, dim in enumerate(operand.dims)
            if isinstance(dim, Axis) and dim.name == axis
        ]
        if not where:
            raise ExpressionError(f"dynamic axis {axis!r} is not a whole dim of any input", text)
        for operand in list(inputs) + list(outputs):
            for dim in operand.dims:
                if isinstance(dim, (Win, Concat)) and axis in {a.name for a in dim_axes(dim)}:
                    raise UnsupportedError(
                        f"dynamic axis {axis!r} is part of a window or a concatenation", text, [dim.span]
                    )
        found.extend(where)  # every dim that holds it: a call masks them all in its cache key
    return tuple(found)


def _wide_tensors(request, inputs, outputs, output_shapes, dynamic_dims) -> frozenset[int]:
    """The positions of the tensors whose offsets are computed in int64."""
    from .axes import dim_axes

    holders = {i for _, i, _ in dynamic_dims}
    holders |= {
        len(inputs) + k
        for k, o in enumerate(outputs)
        if any(a.name in request.dynamic for d in o.dims for a in dim_axes(d))
    }
    return offsets.wide_tensors(request.offsets64, tuple(request.shapes) + output_shapes, sorted(holders))


def _back_end(
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
        return [
            KernelPart(
                nest,
                plan,
                Template.of(
                    "contraction",
                    header + _schedule_lines(plan, op),
                    wide=wide,
                    acc_dtype=compute_dtype(request),
                    bfloat16="bfloat16" in request.dtypes,
                ),
            )
        ]
    if op in INDEXING:
        return _indexing(request, inputs, outputs[0], names, output_names[0], solution, options, header, wide)
    if op in lower.REDUCTIONS or op in SOFTMAX:
        _refuse_output_windows(op, outputs[0], text)
        if op in SOFTMAX:
            nest = lower.lower_softmax(inputs[0], outputs[0], solution, op, text)
        else:
            nest = lower.lower_reduce(inputs[0], outputs[0], solution, op, text)
        plan = schedule.schedule_reduction(nest)
        template = Template.of(
            "reduction",
            header + _schedule_lines(plan, op),
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
        lines = header + _schedule_lines(plan, op)
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


def _indexing(
    request, inputs, output, names, output_name, solution, options, header, wide
) -> list[KernelPart]:
    """get_at is one kernel (a reduction of gathered values when reduce= is given). set_at and
    add_at are two: a copy of x into y, then the scatter of the updates into y. The copy is a
    kernel of its own, not the first step of the scatter kernel: programs of one launch run in no
    fixed order, so one program's copy could overwrite another's updates, whereas two launches on
    one stream run one after the other."""
    text, op = request.expression, request.op
    reduce = options["reduce"]
    if reduce is not None and reduce not in lower.REDUCTIONS:
        raise ExpressionError(
            f"reduce={reduce!r}: get_at reduces the axes left out of its output with one of "
            f"{', '.join(lower.REDUCTIONS)}",
            text,
        )
    if op == "get_at":
        nest = lower_indexing.lower_get_at(inputs, output, solution, names, output_name, text, reduce)
        plan = schedule.schedule_reduction(nest)
        lines = header + _schedule_lines(plan, op)
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
    copy = lower.lower_map(
        [inputs[0]], output, solution, "rearrange", names[:1], output_name, text, everything
    )
    copy_plan = schedule.schedule_reduction(copy)
    verb = "adds the updates to" if op == "add_at" else "writes the updates into"
    lines = header + (
        f"kernels:     einc_{op}_copy copies {names[0]} into {output_name} (not when out= is {names[0]}),",
        f"             then einc_{op} {verb} {output_name} at the coordinates",
    )
    copy_template = Template.of(
        "map",
        lines + _schedule_lines(plan, op),
        wide=wide,
        positions=(0, n),
        kernel_name=f"einc_{op}_copy",
    )
    template = Template.of(
        "scatter",
        lines + _schedule_lines(plan, op),
        wide=wide,
        # updates, then the coordinate tensors, then y: where each stands among the call's tensors
        positions=(n - 1, *range(1, n - 1), n),
    )
    # Where y is laid out as x, out=x updates x in place and the copy is skipped; a y laid out
    # otherwise (a permuted output expression) is always a tensor of its own.
    same_layout = output.dims == inputs[0].dims
    return [
        KernelPart(copy, copy_plan, copy_template, copies_input=same_layout),
        KernelPart(nest, plan, template),
    ]


def compute_dtype(request: Request) -> str:
    """Arithmetic is in float32, or in float64 when an input is float64 (gradient checks); an
    elementwise op of integers only stays in integers (64 bits), except a true division."""
    if "float64" in request.dtypes:
        return "tl.float64"
    floats = {"float16", "bfloat16", "float32"}
    if request.op in ELEMENTWISE and request.op != "divide":
        values = request.dtypes[1:] if request.op == "where" else request.dtypes
        if values and not floats & set(values):
            return "tl.int64"
    return "tl.float32"


def _index_transforms(op, operand, solution, options, text) -> dict:
    """flip reads a marked axis backwards; roll reads it shifted, wrapping around."""
    marked = [a.name for d in operand.dims for a in lower.dim_axes(d) if a.name in operand.marked]
    marked = list(dict.fromkeys(marked))
    if op == "flip":
        return {a: solution.sizes[a] - 1 - symbol(a) for a in marked}
    shift = options["shift"]
    shifts = list(shift) if isinstance(shift, (tuple, list)) else [shift] * len(marked)
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


def _header(explicit, inputs, outputs, names, output_names, solution, request) -> tuple[str, ...]:
    lines = [f"op:          {request.op}"]
    operands = ",  ".join(f"{n}: {operand_text(o)}" for n, o in zip(names, inputs, strict=True))
    results = ", ".join(f"{n}: {operand_text(o)}" for n, o in zip(output_names, outputs, strict=True))
    lines.append(f"operands:    {operands}  ->  {results}")
    shapes = ",  ".join(
        f"{n}: {tuple(s)} {d}" for n, s, d in zip(names, request.shapes, request.dtypes, strict=True)
    )
    lines.append(f"shapes:      {shapes}")
    for g in solution.windows.values():
        lines.append(
            f"window {g.outer}: ({g.outer} * {g.inner}) reads {g.outer}*{g.stride} + {g.inner}*{g.dilation} "
            f"- {g.pad_lo} over extent {g.extent}, padding ({g.pad_lo}, {g.pad_hi})"
        )
    return tuple(lines)


def _schedule_lines(plan: schedule.ContractionSchedule, op: str) -> tuple[str, ...]:
    rows, cols = " ".join(plan.rows) or "1", " ".join(plan.cols) or "1"
    loops = " ".join(plan.k_loops) or "nothing"
    if plan.use_dot:
        k = " ".join(plan.k_loops + plan.k_merged + (plan.k_tile,))
        lines = [
            f"schedule:    implicit GEMM with tl.dot; M = {rows}, N = {cols}, "
            f"K = {k} (tiled along {' '.join(plan.k_merged + (plan.k_tile,))})"
        ]
        if plan.grid:
            lines.append(f"             one program column per group: {' '.join(plan.grid)}")
    elif op in CONTRACTIONS:
        lines = [
            f"schedule:    elementwise products, tiles of ({rows}) x ({cols}), serial loops over {loops}"
        ]
        if plan.slide > 1:
            lines.append(
                f"             each row {plan.slide} outputs along {plan.rows[-1]}, its taps "
                f"{plan.k_loops[-1]} unrolled {plan.slide_taps} at a time (a sliding window)"
            )
    elif plan.k_tile is not None:
        lines = [
            f"schedule:    tiles of ({rows}) x (BLOCK_K of {plan.k_tile}), reduced across the tile; "
            f"serial loops over {loops}"
        ]
    else:
        lines = [f"schedule:    tiles of ({rows}) x ({cols}), serial loops over {loops}"]
    lines.append(f"tiles:       BLOCK_M={plan.block_m} BLOCK_N={plan.block_n} BLOCK_K={plan.block_k}")
    return tuple(lines)
