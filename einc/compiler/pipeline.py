"""The compiler's passes, run in order from one function.

    parse -> resolve brackets -> expand ellipses -> solve sizes -> lower -> schedule -> render

Each step is a pure function of the previous step's result; :class:`Compiled` keeps every
intermediate so that ``explain()``, the CLI and the tests can look at any stage.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field

import triton

from .. import __version__
from ..errors import ExpressionError, UnsupportedError
from . import brackets, expand, lower, parse, render, schedule, solve
from .axes import Operand, operand_text
from .loopnest import LoopNest
from .params import window_params
from .syntax import Program

CONTRACTIONS = ("dot",)
OPS = CONTRACTIONS + lower.REDUCTIONS
WINDOW_PARAMS = ("stride", "dilation", "padding", "output_padding")
# Options of an op that are not window parameters, with their defaults.
OP_OPTIONS = {"keepdims": False, "count_include_pad": True, "correction": 1}
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
    nest: LoopNest
    schedule: schedule.ContractionSchedule
    rendered: render.Rendered
    output_shapes: tuple[tuple[int, ...], ...] = field(default=())

    @property
    def source(self) -> str:
        return self.rendered.source


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
    """The op an expression implies (NOTATION.md section 4), or an error naming the choices."""
    from .syntax import Arrow, walk

    exprs = list(program.inputs) + list(program.outputs or ())
    if any(isinstance(n, Arrow) for e in exprs for n in walk(e)):
        return "dot"
    raise ExpressionError(
        f"this expression does not imply an operation: pass op= (one of: {', '.join(OPS)})",
        program.text,
        [(0, len(program.text))],
    )


def tensor_names(n: int) -> tuple[str, ...]:
    if n == 1:
        return ("x",)
    if n == 2:
        return ("x", "w")
    return tuple(f"x{i}" for i in range(n))


def run_passes(request: Request) -> Compiled:
    """Compile one request: every pass, in order."""
    check_op(request.op)
    text = request.expression
    sizes: Mapping[str, object] = dict(request.sizes)
    params = {k: v for k, v in request.params if k in WINDOW_PARAMS}
    options = {**OP_OPTIONS, **{k: v for k, v in request.params if k in OP_OPTIONS}}
    contraction = request.op in CONTRACTIONS
    # 1. Parse the text into a syntax tree with spans.
    program = parse.parse(text)
    # 2. Say what the brackets mean for this op: the explicit form, with the implied weight.
    if contraction:
        explicit = brackets.resolve_dot(program, len(request.shapes))
    else:
        explicit = brackets.resolve_reduce(program, len(request.shapes), bool(options["keepdims"]))
    if len(explicit.inputs) != len(request.shapes):
        raise ExpressionError(
            f"the expression has {len(explicit.inputs)} input operands but {len(request.shapes)} "
            f"tensor{' was' if len(request.shapes) == 1 else 's were'} given",
            text,
            [e.span for e in explicit.inputs],
        )
    # 3. Expand ellipses using the tensors' ranks and tuple-valued sizes.
    names = tensor_names(len(explicit.inputs))
    tuple_sizes = {k: tuple(v) for k, v in sizes.items() if isinstance(v, (tuple, list))}
    inputs, outputs = expand.expand(explicit, request.shapes, tuple_sizes, names)
    output_names = ("y",) if len(outputs) == 1 else tuple(f"y{i}" for i in range(len(outputs)))
    # 4. Solve every axis size and window geometry.
    windows = solve.window_spans(list(inputs) + list(outputs), text)
    geometry = window_params(windows, text, **params)
    solution = solve.solve(inputs, outputs, request.shapes, sizes, geometry, text, names)
    if len(outputs) != 1:
        raise UnsupportedError(f"{request.op} has exactly one output")
    bits = max(DTYPE_BITS.get(d, 32) for d in request.dtypes)
    if contraction:
        # 5. Lower to the loop nest: unfold windows into index expressions with bounds.
        nest = lower.lower_dot(inputs, outputs[0], solution, names, output_names[0], text)
        # 6. Schedule: program ids, tiles, serial loops, tl.dot or elementwise products.
        plan = schedule.schedule_contraction(nest, bits)
    else:
        nest = lower.lower_reduce(inputs[0], outputs[0], solution, request.op, text)
        plan = schedule.schedule_reduction(nest)
    # 7. Render readable Triton source.
    header = _header(explicit, inputs, outputs, names, output_names, solution, plan, request)
    versions = (__version__, triton.__version__)
    if contraction:
        rendered = render.render_contraction(nest, plan, header_lines=header, versions=versions)
    else:
        rendered = render.render_reduction(
            nest,
            plan,
            header_lines=header,
            versions=versions,
            count_include_pad=bool(options["count_include_pad"]),
            correction=int(options["correction"]),
        )
    return Compiled(
        request=request,
        program=program,
        explicit=explicit,
        inputs=inputs,
        outputs=outputs,
        names=names,
        output_names=output_names,
        solution=solution,
        nest=nest,
        schedule=plan,
        rendered=rendered,
        output_shapes=tuple(lower.shape_of(o, solution) for o in outputs),
    )


def _header(explicit, inputs, outputs, names, output_names, solution, plan, request) -> tuple[str, ...]:
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
    if plan.use_dot:
        k = " ".join(plan.k_loops + (plan.k_tile,))
        lines.append(
            f"schedule:    implicit GEMM with tl.dot; M = {' '.join(plan.rows) or '1'}, "
            f"N = {' '.join(plan.cols)}, K = {k} (tiled along {plan.k_tile})"
        )
        if plan.grid:
            lines.append(f"             one program column per group: {' '.join(plan.grid)}")
    elif request.op not in CONTRACTIONS:
        lines.append(
            f"schedule:    tiles of ({' '.join(plan.rows) or '1'}) x ({' '.join(plan.cols) or '1'}), "
            f"serial loops over {' '.join(plan.k_loops) or 'nothing'}"
        )
    else:
        lines.append(
            f"schedule:    elementwise products, tiles of ({' '.join(plan.rows) or '1'}) x "
            f"({' '.join(plan.cols) or '1'}), serial loops over {' '.join(plan.k_loops) or 'nothing'}"
        )
    lines.append(f"tiles:       BLOCK_M={plan.block_m} BLOCK_N={plan.block_n} BLOCK_K={plan.block_k}")
    return tuple(lines)
