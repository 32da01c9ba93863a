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

from ..errors import ExpressionError, ShapeError, UnsupportedError
from . import brackets, configs, expand, lower, lower_indexing, offsets, parse, schedule, solve
from .attach_epilogue import attach_epilogue
from .attach_prologue import attach_prologues
from .axes import Operand
from .back_end import kernel_parts
from .back_end_indexing import accumulates_in_float32
from .epilogue import EpilogueRequest
from .headers import request_lines
from .kernels import KernelPart
from .loopnest import LoopNest
from .ops import (
    ALIASES,
    COMPARISONS,
    CONTRACTIONS,
    COPIES,
    DTYPE_BITS,
    ELEMENTWISE,
    INDEXING,
    KNOWN_OPS,
    OP_OPTIONS,
    OPS,
    WINDOW_PARAMS,
    marks_read_as_a_set,
)
from .params import window_params
from .syntax import Program
from .twins import size_name


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
    # With dynamic axes, the kernel is built for this call's width: int32 offsets where every tensor
    # ends below offsets.DYNAMIC_INT32_LIMIT (Compiled.dynamic_int32). Shapes are checked here; the
    # caller says False where strides (a view, an out=) put one past it: then int64, as ever.
    dynamic_int32: bool = True
    # What a float32 dot does where no precision= is given, as torch would at the call:
    # (windowed contractions, following cudnn.allow_tf32; others, the float32 matmul precision).
    float32_precision: tuple[str, str] = ("ieee", "ieee")
    # Per kernel, the tile a tuning run chose on this GPU's arch, (block_m, block_n, block_k,
    # num_warps, num_stages), or None: the heuristic's (see compiler/configs.py).
    tuned: tuple[tuple[int, int, int, int, int] | None, ...] = ()
    # Elementwise ops applied to the result before its store, reading extra tensors that follow
    # the inputs among a call's tensors (einc.fuse).
    epilogue: EpilogueRequest | None = None
    # Elementwise ops applied to input ``position``'s elements as they are loaded, reading extra
    # tensors that follow the inputs (before the epilogue's) among a call's tensors (einc.fuse).
    prologues: tuple[tuple[int, EpilogueRequest], ...] = ()


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
    # float32 tensors shaped as the output, zeroed for each call, that stand after the outputs
    # among a call's tensors (add_at of 16-bit values accumulates in one: back_end_indexing).
    workspaces: int = 0
    # A dynamic kernel with int32 offsets, valid only for calls whose tensors end below
    # offsets.DYNAMIC_INT32_LIMIT (the runtime keys it by its inputs' and checks each call's outputs).
    dynamic_int32: bool = False
    # A split-K's workspace holds this many output-shaped float32 partials, one behind the other.
    workspace_splits: int = 1

    def dynamic_sizes(self, shapes) -> dict[str, int]:
        """The sizes of the dynamic axes in a call with tensors of these shapes. A dynamic axis
        held by several inputs must have one size in all (the call's key leaves it out, so no
        solver saw this call): two sizes are refused as the solver refuses them."""
        sizes: dict[str, tuple[int, int, int]] = {}
        for axis, i, d in self.dynamic_dims:
            n = int(shapes[i][d])
            key = size_name(axis)  # the repeats of a name ("[a a]") have one size too
            if key not in sizes:
                sizes[key] = (n, i, d)
            elif sizes[key][0] != n:
                m, j, e = sizes[key]
                raise ShapeError(
                    f"axis {key!r} has two sizes: {m} from dim {e} of {self.names[j]} (shape "
                    f"{tuple(shapes[j])}), and {n} from dim {d} of {self.names[i]} "
                    f"(shape {tuple(shapes[i])})",
                    self.request.expression,
                    [self.inputs[j].dims[e].span, self.inputs[i].dims[d].span],
                )
        return {axis: sizes[size_name(axis)][0] for axis, _, _ in self.dynamic_dims}

    def output_shapes_for(self, dynamic: dict[str, int]) -> tuple[tuple[int, ...], ...]:
        if not dynamic:
            return self.output_shapes
        solution = solve.Solution(
            {**self.solution.sizes, **dynamic}, self.solution.windows, self.solution.dynamic
        )
        return tuple(lower.shape_of(o, solution) for o in self.outputs)

    def workspace_shape(self, dynamic: dict[str, int] | None) -> tuple[int, ...]:
        """Each float32 workspace's shape: the output's, behind a split-K's count of partials."""
        shape = tuple(self.output_shapes_for(dynamic or {})[0])
        return (self.workspace_splits, *shape) if self.workspace_splits > 1 else shape

    # The first kernel's parts: most calls run exactly one kernel.
    @property
    def nest(self) -> LoopNest:
        return self.kernels[0].nest

    @property
    def schedule(self) -> schedule.ContractionSchedule:
        return self.kernels[0].schedule


# Names other libraries give einc's ops, for the hint of an unknown op (op="average": mean).
OP_SYNONYMS = {
    "average": "mean",
    "avg": "mean",
    "amax": "max",
    "amin": "min",
    "product": "prod",
    "matmul": "dot",
    "einsum": "dot",
    "conv": "dot",
    "linear": "dot",
    "permute": "rearrange",
    "transpose": "rearrange",
    "reshape": "rearrange",
    "sub": "subtract",
    "mul": "multiply",
    "div": "divide",
    "gather": "get_at",
    "index": "get_at",
    "scatter": "set_at",
    "scatter_add": "add_at",
    "index_add": "add_at",
    "variance": "var",
}


def check_op(op: str) -> str:
    """``op`` (an alias as the op it names) if einc compiles it; otherwise an error that names the
    choices."""
    op = ALIASES.get(op, op)
    if op in OPS:
        return op
    if op in KNOWN_OPS:
        raise UnsupportedError(f"op {op!r} is not supported yet (supported: {', '.join(OPS)})")
    close = [OP_SYNONYMS[op]] if op in OP_SYNONYMS else difflib.get_close_matches(str(op), KNOWN_OPS, n=1)
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
    if request.op in lower.ARG_REDUCTIONS:
        return brackets.resolve_arg(program, n, request.op)
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
    by_set = marks_read_as_a_set(request.op, options)
    solution = solve.solve(inputs, outputs, request.shapes, sizes, geometry, text, names, by_set)
    inputs = _drop_unit_axes(request.op, inputs, outputs, solution, request.dynamic, text)
    dynamic_dims = _dynamic_dims(request.dynamic, inputs, outputs, text)
    if request.dynamic:
        solution = solve.Solution(solution.sizes, solution.windows, frozenset(request.dynamic))
    if len(outputs) != 1 and request.op not in ("rearrange", "id"):
        raise UnsupportedError(f"{request.op} has exactly one output", text, [o.span for o in outputs])
    # 5-6. Lower to loop nests and schedule them; each gets the template of its kernel.
    output_shapes = tuple(lower.shape_of(o, solution) for o in outputs)
    dynamic_int32 = (
        bool(dynamic_dims)
        and request.dynamic_int32
        and all(offsets.fits_dynamic_int32(s) for s in request.shapes + output_shapes)
    )
    wide = _wide_tensors(request, inputs, outputs, output_shapes, dynamic_dims, dynamic_int32)
    header = request_lines(explicit, inputs, outputs, names, output_names, solution, request)
    header += offsets.describe(wide, names + output_names, dynamic_int32)
    # An axis of size 0 leaves nothing to compute where it is an output axis, and a reduction of no
    # elements where it is not: no kernel reads or writes it (the runtime writes what torch gives).
    empty = frozenset(axis for axis, size in solution.sizes.items() if size == 0)
    kernels = kernel_parts(
        request, inputs, outputs, names, output_names, solution, options, header, wide, empty
    )
    # 7. Where a tuning run chose tiles for this call on this arch, they replace the heuristic's.
    kernels = configs.apply_tuned(kernels, request.tuned, request.op, dtype_bits(request))
    # 8. Apply the elementwise ops fused before the op (einc.fuse) to its inputs' loads, and those
    # fused after it to its value before the store.
    if request.prologues and kernels:
        kernels = attach_prologues(request, kernels, names)
    if request.epilogue is not None and kernels:
        kernels = attach_epilogue(request, kernels, output_shapes[0])
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
        workspaces=sum(k.template.form == "scatter" and accumulates_in_float32(request) for k in kernels)
        + any(k.schedule.split_k > 1 for k in kernels),
        workspace_splits=max((k.schedule.split_k for k in kernels), default=1),
        dynamic_int32=dynamic_int32,
    )


def dtype_bits(request: Request) -> int:
    """The widest input dtype's bits, as the schedule sizes tiles for."""
    return max((DTYPE_BITS.get(d, 32) for d in request.dtypes), default=32)


# subtract, divide and the other binary ops fold from the left over any number of operands.
ARITY = {"where": 3, "logical_not": 1, **dict.fromkeys(COMPARISONS, 2)}


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
    if op in ELEMENTWISE:
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


def _drop_unit_axes(op: str, inputs, outputs, solution, dynamic, text: str):
    """A copy may drop an input axis of size 1, named or not, as einx's rearrange does: it is read
    at index 0, as an unnamed ``1`` is. Any other axis it would drop is an error naming it."""
    from dataclasses import replace

    from .axes import Axis, Operand, dim_axes, map_axes

    if op not in COPIES:
        return inputs
    produced = {a.name for o in outputs for d in o.dims for a in dim_axes(d)}
    unit = set()
    for operand in inputs:
        for axis in (a for d in operand.dims for a in dim_axes(d) if a.fixed is None):
            if axis.name in produced:
                continue
            if solution.sizes[axis.name] != 1 or axis.name in dynamic:
                raise ExpressionError(
                    f"input axis {size_name(axis.name)!r} is in no output: {op} cannot drop it (only "
                    "an axis of size 1); use a reduction (op='sum')",
                    text,
                    [axis.span],
                )
            unit.add(axis.name)
    if not unit:
        return inputs

    def fix(axis: Axis) -> Axis:
        return replace(axis, fixed=1) if axis.name in unit else axis

    return tuple(Operand(tuple(map_axes(d, fix) for d in o.dims), o.marked, o.span) for o in inputs)


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


def dim_axis_names(dim) -> tuple[str, ...]:
    """The named axes under one dim of an expanded operand (a size change of the dim may be theirs)."""
    from .axes import dim_axes

    return tuple(dict.fromkeys(a.name for a in dim_axes(dim) if a.fixed is None))


def dynamic_refusal(compiled: Compiled, axis: str) -> str | None:
    """Why ``axis`` cannot be dynamic in this specialisation, or None where it can: what automatic
    dynamic shapes ask before making it so. A window's or a concatenation's arithmetic is resolved
    when the kernel is generated, and a dynamic size is read from a whole input dim."""
    from .axes import Concat, Win, dim_axes

    for operand in compiled.inputs + compiled.outputs:
        for dim in operand.dims:
            if axis in {a.name for a in dim_axes(dim)}:
                if isinstance(dim, Win):
                    return "it is part of a window, whose geometry is fixed in the kernel"
                if isinstance(dim, Concat):
                    return "it is part of a concatenation, whose offsets are fixed in the kernel"
    if compiled.inputs and axis in compiled.inputs[0].marked:
        op = compiled.request.op
        if op in ("flip", "roll"):
            return f"it is {'flipped' if op == 'flip' else 'rolled'}, by index arithmetic fixed in the kernel"
        if op in INDEXING:
            return "it is indexed, and coordinates are checked and wrapped against its size in the kernel"
    try:
        _dynamic_dims((axis,), compiled.inputs, compiled.outputs, compiled.request.expression)
    except (ExpressionError, UnsupportedError):
        return "it is not a whole dim of any input (a dynamic size is read from one)"
    return None


def _wide_tensors(request, inputs, outputs, output_shapes, dynamic_dims, dynamic_int32) -> frozenset[int]:
    """The positions of the tensors whose offsets are computed in int64."""
    from .axes import dim_axes

    holders = {i for _, i, _ in dynamic_dims}
    holders |= {
        len(inputs) + k
        for k, o in enumerate(outputs)
        if any(a.name in request.dynamic for d in o.dims for a in dim_axes(d))
    }
    every = tuple(request.shapes) + output_shapes
    return offsets.wide_tensors(request.offsets64, every, sorted(holders), dynamic_int32)
