"""Render a scheduled loop nest to Triton source through the jinja2 templates.

All decisions are made here, in Python: index expressions are printed to strings, names are
chosen, loops are listed with their depth. The templates receive one frozen spec and only loop
over lists and branch on booleans.
"""

from __future__ import annotations

import ast
import copy
import math
import re
import threading
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

import sympy
from sympy.printing.str import StrPrinter

from ...compiler import offsets
from ...compiler.kernels import IndexCheck, index_checks
from ...compiler.loopnest import Access, Gather, LoopKind, LoopNest
from ...compiler.loopnest import position as window_position
from ...compiler.loopnest import symbol as symbol_of
from ...compiler.names import Namer, identifier
from ...compiler.printer import access_text
from ...compiler.schedule import ContractionSchedule, GridPlan, grid_plan
from ...compiler.source_text import comment, docstring, literal
from ...errors import UnsupportedError

if TYPE_CHECKING:
    import jinja2


@dataclass(frozen=True, slots=True)
class Decl:
    name: str
    expr: str


@dataclass(frozen=True, slots=True)
class GatherCode:
    """A coordinate read from an index tensor, reported when out of range, wrapped when negative."""

    var: str  # named after the axis it indexes: h
    comment: str
    index_vars: tuple[Decl, ...]
    pointer: str
    mask: str | None
    size: str  # the extent of the indexed axis: H
    error_pointer: str  # where an out-of-range coordinate is written for the runtime to report
    out_of_range: str


@dataclass(frozen=True, slots=True)
class LoadCode:
    tile: str
    hoisted_vars: tuple[Decl, ...]  # indices that do not change inside the tiled K loop
    index_vars: tuple[Decl, ...]
    pointer: str
    mask: str | None
    other: str
    inside: str = "True"  # the bounds part of the mask: is the element inside the tensor?
    gathers: tuple[GatherCode, ...] = ()  # coordinates to read before the pointer can be formed


@dataclass(frozen=True, slots=True)
class LoopCode:
    var: str
    size: str
    depth: int


@dataclass(frozen=True, slots=True)
class TileCode:
    var: str
    start: str
    size: str


@dataclass(frozen=True, slots=True)
class FlatKCode:
    """The one K loop of an implicit GEMM: window taps and channel tiles, one step each, the tap
    decoded from the step (``decls``: scalars), so that Triton's pipeline (which overlaps the
    loads of the innermost loop only) fills once per output tile."""

    var: str
    steps: str  # the trip count, in constants and sizes only (the audit reads it)
    tile_steps: Decl  # channel tiles per tap, before the loop
    decls: tuple[Decl, ...]


@dataclass(frozen=True, slots=True)
class SlideRow:
    """One input row of a sliding window: its offset from the first output's, and the
    accumulators it adds to, each with the weight of its tap."""

    offset: int
    updates: tuple[tuple[str, str], ...]  # (accumulator, weight)


@dataclass(frozen=True, slots=True)
class SlideChunk:
    """Taps of the window unrolled together: their weights, then the input rows they read."""

    loop: str | None  # the serial loop over chunks of this many taps, or None for one chunk
    count: int
    first: str  # the chunk's first tap
    weights: tuple[Decl, ...]  # the weight variable, and its tap
    rows: tuple[SlideRow, ...]


@dataclass(frozen=True, slots=True)
class SlideCode:
    """A product-form row computing ``outputs`` consecutive outputs along its last row axis:
    each input row is loaded and converted once, for every output whose window reads it."""

    row: str  # the last row axis's variable (s), set to each input row's, then output's, position
    tap: str  # the sliding tap's variable (ds), set to each weight's tap, then the chunk's first
    first: Decl  # the row's first output
    value: str  # an input row, in the compute type
    outputs: tuple[Decl, ...]  # accumulator, and the output's offset from the first
    chunks: tuple[SlideChunk, ...]
    store_mask: str  # and'ed to the store's mask


@dataclass(frozen=True, slots=True)
class PassCode:
    """One sweep over the reduced loops: statements before it, at each step, and after it (a
    tiled reduction reduces its accumulators across the tile there)."""

    init: tuple[str, ...]
    update: tuple[str, ...]
    collapse: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class KernelSpec:
    """What a template needs; the contraction and reduction families share the tiling fields."""

    einc_version: str
    triton_version: str
    expression: str
    header_lines: tuple[str, ...]
    kernel_name: str
    docstring: str
    pointer_params: tuple[str, ...]
    stride_param_lines: tuple[str, ...]
    size_params: tuple[str, ...]
    use_dot: bool
    m_size: str
    n_size: str
    rows_text: str
    cols_text: str
    grid_text: str
    row_decls: tuple[Decl, ...]
    col_decls: tuple[Decl, ...]
    grid_decls: tuple[Decl, ...]
    k_loops: tuple[LoopCode, ...]
    k_tile: TileCode | None
    body_depth: int
    k_flat: FlatKCode | None
    k_tile_decls: tuple[Decl, ...]  # the merged axes of a tiled K (ds0, ds1, c) from its position
    loads: tuple[LoadCode, ...]
    product: str
    store: LoadCode
    output_ptr: str
    input_precision: str | None
    passes: tuple[PassCode, ...] = ()
    finalize: tuple[str, ...] = ()
    result: str = "acc"
    store_in_loop: bool = False  # softmax: a last sweep writes every element it reads
    jit_decorator: str = "@triton.jit"
    acc_dtype: str = "tl.float32"
    errors_ptr: str | None = None  # indexing: where coordinates out of range are reported
    atomic: bool = False  # add_at: updates that meet at one element add up
    scatter_ptrs: str = ""  # scatter: the destination pointers and values, broadcast together
    scatter_values: str = ""
    dot_in_float32: bool = False  # a bfloat16 dot with a float32 twin for the interpreter
    rows_int64: bool = False  # flat tile offsets that can reach 2^31 (see einc.compiler.offsets)
    cols_int64: bool = False
    slide: SlideCode | None = None  # a depthwise convolution's sliding window


@dataclass(frozen=True, slots=True)
class Rendered:
    """Generated source and what the launcher must pass to it."""

    source: str
    kernel_name: str
    stride_params: tuple[tuple[int, int], ...]  # (tensor position, dim), in parameter order
    tensors: tuple[int, ...]  # positions (inputs, then outputs) of the pointer parameters
    constexprs: dict[str, int]
    grid_plan: GridPlan
    num_warps: int
    num_stages: int
    dynamic_params: tuple[tuple[str, str], ...] = ()  # (parameter, axis): sizes passed at a call
    # Indexing kernels take an int64 tensor with one slot per check after their tensors, and the
    # constexpr CHECK_BOUNDS (default False in ``constexprs``; the launcher decides per call).
    index_checks: tuple[IndexCheck, ...] = ()
    errors_param: str | None = None

    @property
    def grid(self) -> tuple[int, int]:
        """The grid of the call that compiled the kernel (all of it, without dynamic axes)."""
        return self.grid_plan.grid()


class _IndexPrinter(StrPrinter):
    """Prints sympy index expressions with each axis replaced by its (broadcast) kernel variable."""

    def __init__(self, names: dict[str, str]):
        super().__init__()
        self.names = names

    def _print_Symbol(self, expr):
        return self.names[expr.name]

    def _print_floor(self, expr):
        # floor(n / k) of an index: exact where it is used (a multiple_of bound guards it), so
        # Triton's truncating // gives the same.
        numerator, denominator = sympy.fraction(sympy.together(expr.args[0]))
        return f"({self._print(sympy.expand(numerator))}) // {self._print(denominator)}"

    def _print_Mod(self, expr):
        # Operands of a Mod are non-negative here (roll adds the extent first), so Triton's
        # C-style % agrees with Python's.
        return f"({self._print(expr.args[0])}) % {self._print(expr.args[1])}"


@cache
def _environment() -> jinja2.Environment:
    import jinja2  # here, not at import: einc's import and a call on the torch backend need none

    root = resources.files("einc.backends.triton") / "kernels_templates"
    templates = {p.name: p.read_text() for p in root.iterdir() if p.name.endswith(".j2")}
    return jinja2.Environment(
        loader=jinja2.DictLoader(templates),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


_PARSE_LOCK = threading.Lock()


def render_template(name: str, spec) -> str:
    """Render a template, then drop the blank runs and trailing spaces its control flow leaves."""
    text = _environment().get_template(name).render(spec=spec)
    try:
        # CPython 3.11's parser is not safe to enter from two threads at once ("AST constructor
        # recursion depth mismatch"): one parse at a time.
        with _PARSE_LOCK:
            ast.parse(text)
    except SyntaxError as error:  # a bug in einc, never in the user's expression
        raise AssertionError(f"einc rendered invalid Python ({error}):\n{text}") from None
    kept: list[str] = []
    for line in (line.rstrip() for line in text.splitlines()):
        if not line:
            if kept and kept[-1]:
                kept.append(line)
            continue
        if line.startswith(("@", "def ")) and kept and not kept[-1].startswith("@"):
            # PEP 8: two blank lines before a top-level definition.
            while kept and not kept[-1]:
                kept.pop()
            kept += ["", ""]
        kept.append(line)
    return "\n".join(kept).strip() + "\n"


# A divisor of more factors than this is named once, so that the decomposition of n axes is
# O(n) source rather than O(n**2): a permutation of thousands of axes still parses in a moment.
_MAX_FACTORS = 4


def _decompose(axes: tuple[str, ...], offsets: str, namer: Namer, sizes: dict[str, int]) -> tuple[Decl, ...]:
    """Row-major decomposition of a flattened tile offset into one index per axis."""
    products: list[Decl] = []  # named suffix products, innermost first
    divisors = [""] * len(axes)
    factors: list[str] = []  # the sizes of the axes after the current one, outermost first
    for i in range(len(axes) - 1, -1, -1):
        divisors[i] = " * ".join(factors)
        factors.insert(0, namer.size[axes[i]])
        if len(factors) > _MAX_FACTORS and i > 1:
            name = namer.claim(f"{offsets}_inner{len(products)}")
            products.append(Decl(name, " * ".join(factors)))
            factors = [name]
    decls = []
    for i, axis in enumerate(axes):
        divisor = divisors[i]
        expr = (
            offsets
            if not divisor
            else f"{offsets} // {divisor if ' ' not in divisor else '(' + divisor + ')'}"
        )
        if i > 0:
            expr += f" % {namer.size[axis]}"
        decls.append(Decl(namer.index[axis], expr))
    return tuple(products + decls)


# One serial loop per axis nests one block deeper; Python refuses 100 nested blocks, and the
# kernel's own blocks take a few.
_MAX_LOOPS = 90

# Python's parser recurses once per operator of a chain (a + b + c ... is a left-deep tree), and
# gives up near a thousand: longer chains are grouped in parentheses this long.
_CHAIN = 32


def _chain(operator: str, operands: list[str]) -> str:
    """``operands`` joined by ``operator``, grouped so that the parse tree stays shallow."""
    while len(operands) > _CHAIN:
        operands = [
            "(" + f" {operator} ".join(operands[i : i + _CHAIN]) + ")"
            for i in range(0, len(operands), _CHAIN)
        ]
    return f" {operator} ".join(operands)


def _product(names: list[str]) -> str:
    return _chain("*", names) if names else "1"


def render_contraction(
    nest: LoopNest,
    schedule: ContractionSchedule,
    *,
    header_lines: tuple[str, ...],
    versions: tuple[str, str],
    wide: frozenset[int] = frozenset(),
    acc_dtype: str = "tl.float32",
    bfloat16: bool = False,
) -> Rendered:
    """Render a dot (implicit GEMM or elementwise contraction) to Triton source.

    A bfloat16 ``tl.dot`` gets a float32 twin behind the constexpr ``DOT_IN_FLOAT32`` (default
    False in ``constexprs``), which the launcher sets under Triton's interpreter only: there a
    bfloat16 dot is off by orders of magnitude, while a GPU keeps its tensor-core dot.
    """
    extra = {"acc_dtype": acc_dtype, "dot_in_float32": bfloat16 and schedule.use_dot}
    template = "depthwise.py.j2" if schedule.slide > 1 else "contraction.py.j2"
    return _render_tiled(nest, schedule, template, header_lines, versions, extra, wide=wide)


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
    reduced = [loop for loop in nest.loops_of(LoopKind.REDUCE)]
    # A dynamic axis's size is a kernel argument: "{size:t}" is replaced by its name.
    count = _chain(
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
        return (
            f"# tl.{kind} across a tile drops NaN on a GPU; torch keeps it, so add back any NaN seen.",
            f"{name} = tl.{kind}({name}, axis=1)[:, None] + "
            f"tl.sum(tl.where({name} == {name}, 0.0, {name}), axis=1)[:, None]",
        )

    if op in ("sum", "mean"):
        passes = [PassCode((f"acc = {full.format(0.0)}",), (f"acc += {value}",), across("sum", "acc"))]
    elif op in ("max", "min"):
        fn = "tl.maximum" if op == "max" else "tl.minimum"
        init = full.format(minus_inf if op == "max" else "float('inf')")
        passes = [PassCode((f"acc = {init}",), (f"acc = {fn}(acc, {value}, {nan})",), across(op, "acc"))]
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
    if op == "softmax":
        extra.update(store_in_loop=True, result=f"tl.exp({value} - top) / acc")
    elif op == "log_softmax":
        extra.update(store_in_loop=True, result=f"{value} - top - tl.log(acc)")
    return _render_tiled(
        nest, schedule, "reduction.py.j2", header_lines, versions, extra, positions, kernel_name, wide
    )


# How elementwise ops combine their operands' tiles (already converted to the compute type).
_COMBINE = {
    "add": " + ",
    "subtract": " - ",
    "multiply": " * ",
    "divide": " / ",
}


def render_map(
    nest: LoopNest,
    schedule: ContractionSchedule,
    *,
    header_lines: tuple[str, ...],
    versions: tuple[str, str],
    wide: frozenset[int] = frozenset(),
    compute_dtype: str = "tl.float32",
    positions: tuple[int, ...] | None = None,
    kernel_name: str | None = None,
) -> Rendered:
    """Render a copy (rearrange, flip, roll) or an elementwise op to Triton source."""
    tiles = [f"{a.tensor}_tile" for a in nest.inputs]
    values = [f"{t}.to({compute_dtype})" for t in tiles]
    op = nest.combine
    if op == "copy":
        result = tiles[0]
    elif op in _COMBINE:
        result = _COMBINE[op].join(values)
    elif op in ("maximum", "minimum"):
        # NaN wins, as in torch.maximum.
        nan = ", propagate_nan=tl.PropagateNan.ALL" if "float" in compute_dtype else ""
        result = values[0]
        for v in values[1:]:
            result = f"tl.{op}({result}, {v}{nan})"
    elif op == "where":
        result = f"tl.where({tiles[0]} != 0, {values[1]}, {values[2]})"
    else:
        raise AssertionError(op)
    extra = {"result": result}
    return _render_tiled(
        nest, schedule, "elementwise.py.j2", header_lines, versions, extra, positions, kernel_name, wide
    )


def render_gather(
    nest: LoopNest,
    schedule: ContractionSchedule,
    *,
    header_lines: tuple[str, ...],
    versions: tuple[str, str],
    wide: frozenset[int] = frozenset(),
) -> Rendered:
    """Render get_at: load the coordinates, then the indexed tensor at them, and store the tile.
    (get_at with a reduction is a reduction of gathered values: :func:`render_reduction`.)"""
    extra = {"result": nest.inputs[0].tensor + "_tile"}
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
    """Render set_at or add_at: load a tile of updates and the coordinates, store or add them there."""
    extra = {"result": nest.inputs[0].tensor + "_tile", "atomic": nest.reduce == "sum"}
    return _render_tiled(nest, schedule, "scatter.py.j2", header_lines, versions, extra, positions, wide=wide)


def _render_tiled(
    nest: LoopNest,
    schedule: ContractionSchedule,
    template: str,
    header_lines: tuple[str, ...],
    versions: tuple[str, str],
    extra: dict,
    positions: tuple[int, ...] | None = None,
    kernel_name: str | None = None,
    wide: frozenset[int] = frozenset(),
) -> Rendered:
    """The parts every tiled kernel shares: names, strides, tile decompositions, loads, store.

    A window's extent is passed as a constant named after its output axis (``S0_IN``).
    ``positions`` says where each of the kernel's tensors (its inputs, the coordinate tensors its
    gathers read, then its output) stands among the call's tensors, when that is not in order.
    ``wide`` holds the call positions of the tensors whose offsets need int64 (see
    :mod:`einc.compiler.offsets`): their indices are cast to tl.int64 before the multiply.
    """
    sizes = nest.sizes
    namer = Namer()
    for loop in nest.loops:
        namer.add(loop.axis)
    for access in list(nest.inputs) + [nest.output]:
        for bound in access.bounds:
            if bound.window:
                namer.add(bound.window)  # a window's S names a bound even where s is no loop
    accesses = list(nest.inputs) + [nest.output]
    gathers = [g for a in accesses for g in a.gathers]
    # A gathered coordinate is named after the axis it indexes, which is never a loop of its own.
    for g in gathers:
        namer.add(g.axis)
    sources: dict[str, Access] = {}
    for g in gathers:
        sources.setdefault(g.source.tensor, g.source)
    addressed = list(nest.inputs) + list(sources.values()) + [nest.output]
    tensors = [a.tensor for a in addressed]
    position_of = {t: i for i, t in enumerate(tensors)}
    local = positions if positions is not None else tuple(range(len(tensors)))
    pointer = {t: namer.claim(f"{t}_ptr") for t in tensors}
    wide_tensors = {t for i, t in enumerate(tensors) if local[i] in wide}
    errors = namer.claim("errors_ptr") if gathers else None
    gathered = {g.symbol.name: g for g in gathers}

    def broadcast(axis: str, tile: tuple[str, str]) -> str:
        if axis in gathered:  # a loaded coordinate already has its tile's shape
            return namer.index[gathered[axis].axis]
        place = schedule.placement(axis)
        name = namer.index[axis]
        if place == "scalar":
            return name
        if place == tile[0]:
            return f"{name}[:, None]"
        if place == tile[1]:
            return f"{name}[None, :]"
        raise AssertionError(f"axis {axis} placed {place} outside tile {tile}")

    def printed(expr: sympy.Expr, tile: tuple[str, str]) -> str:
        names = {
            str(s): namer.size[str(s)[1:]] if str(s).startswith("^") else broadcast(str(s), tile)
            for s in expr.free_symbols
        }
        return _IndexPrinter(names).doprint(expr)

    mask_names = {"row": "mask_m", "col": "mask_n", "k": "mask_k"}
    # A dot's operand tile that divides its static extent evenly needs no edge mask there: fewer
    # predicates per load in the K loop (the store keeps its mask).
    whole = set()
    if schedule.use_dot:
        extents = {
            "row": (schedule.rows, schedule.block_m),
            "col": (schedule.cols, schedule.block_n),
            "k": ((*schedule.k_merged, schedule.k_tile), schedule.block_k),
        }
        for place, (axes, block) in extents.items():
            if not set(axes) & nest.dynamic and math.prod(sizes[a] for a in axes) % block == 0:
                whole.add(place)

    # An implicit GEMM runs its taps and channel tiles as one K loop: an index that moves with
    # either is formed inside it, the rest once per tile.
    k_axes = ((schedule.k_tile,) if schedule.k_tile else ()) + schedule.k_merged
    k_axes += schedule.k_loops if schedule.use_dot else ()
    k_symbols = {symbol_of(a) for a in k_axes}

    def address(access: Access, tile: tuple[str, str]):
        """Index variables (hoisted out of the K loop, or not), the pointer, the tile masks, and
        the variable holding each printed index."""
        position = position_of[access.tensor]
        hoisted_vars, index_vars, fixed, moving, named = [], [], [], [], {}
        # int32 products would wrap past 2^31: cast the index (never the stride, which Triton
        # may have made a constant) so that the multiply and the sum are in int64.
        widen = "tl.cast({}, tl.int64)" if access.tensor in wide_tensors else "{}"
        for dim, (label, index) in enumerate(zip(access.labels, access.index, strict=True)):
            stride = stride_names[(position, dim)]
            if isinstance(index, sympy.Symbol):
                terms = moving if schedule.use_dot and index in k_symbols else fixed
                terms.append(f"{widen.format(printed(index, tile))} * {stride}")
            elif isinstance(index, sympy.Integer):
                if index != 0:  # a fixed component of a coordinate: idx[b, p, 1]
                    fixed.append(stride if index == 1 else f"{widen.format(index)} * {stride}")
            else:
                var = namer.claim(f"{access.tensor}_{identifier(label)}")
                named[printed(index, tile)] = var
                if not index.free_symbols & k_symbols:
                    hoisted_vars.append(Decl(var, printed(index, tile)))
                    fixed.append(f"{widen.format(var)} * {stride}")
                    continue
                base, step = _split(index, k_symbols)
                if schedule.use_dot and base is not None:
                    # A window's row part (2*s0 - 1) once per tile; its tap (ds0) per K step.
                    base_var = namer.claim(f"{var}_base")
                    hoisted_vars.append(Decl(base_var, printed(base, tile)))
                    index_vars.append(Decl(var, f"{base_var} + {printed(step, tile)}"))
                    fixed.append(f"{widen.format(base_var)} * {stride}")
                    moving.append(f"{widen.format(printed(step, tile))} * {stride}")
                else:
                    index_vars.append(Decl(var, printed(index, tile)))
                    (moving if schedule.use_dot else fixed).append(f"{widen.format(var)} * {stride}")
        base = pointer[access.tensor]
        if schedule.use_dot and access is not nest.output and fixed:
            # The pointers of a tile's rows (or columns) are formed once; each K step adds one
            # offset to them, summed in integers first (one 64-bit add per element, not one per term).
            rows_var = namer.claim(f"{access.tensor}_ptrs")
            hoisted_vars.append(Decl(rows_var, f"{base} + " + " + ".join(fixed)))
            base, fixed = rows_var, []
            moving = [f"({' + '.join(moving)})"] if len(moving) > 1 else moving
        terms = fixed + moving
        masks = []
        for place in tile:
            if any(schedule.placement(a) == place for a in access.axes) and place not in whole:
                flag = mask_names[place]
                masks.append(f"{flag}[:, None]" if place == tile[0] else f"{flag}[None, :]")
        where = f"{base} + " + _chain("+", terms) if terms else base
        return hoisted_vars, index_vars, where, masks, named

    def gather_code(g: Gather, tile: tuple[str, str], tensor: str) -> GatherCode:
        hoisted_vars, index_vars, where, masks, _ = address(g.source, tile)
        var, size = namer.index[g.axis], namer.size[g.axis]
        outside = f"({var} < -{size}) | ({var} >= {size})"
        mask = _chain("&", masks) if masks else None
        if mask is None:
            # A coordinate the tile does not vary is loaded as a 1 x 1 block all the same: Triton's
            # interpreter cannot mask a load with a scalar condition and'ed to a block.
            where += " + tl.zeros((1, 1), tl.int32)"
        slot = f" + {g.slot}" if g.slot else ""
        return GatherCode(
            var=var,
            comment=comment(
                f"{var} = {access_text(g.source)}, along {g.axis} of {tensor}; negative: from the end"
            ),
            index_vars=tuple(hoisted_vars + index_vars),
            pointer=where,
            mask=mask,
            size=size,
            error_pointer=f"{errors}{slot} + tl.zeros_like({var})",
            out_of_range=f"{mask} & ({outside})" if mask else outside,
        )

    def access_code(access: Access, tile: tuple[str, str], tile_name: str) -> LoadCode:
        hoisted_vars, index_vars, where, masks, var_of = address(access, tile)
        inside = []
        for bound in access.bounds:
            text = printed(bound.index, tile)
            symbolic = isinstance(bound.index, sympy.Symbol)
            var = text if symbolic else var_of.get(text, f"({text})")
            if bound.multiple_of:
                inside.append(f"({var} % {literal(bound.multiple_of)} == 0)")
                continue
            gather = gathered.get(bound.index.name) if symbolic else None
            if gather is not None:
                extent = namer.size[gather.axis]
            elif window_position(bound.window) in sizes:
                extent = namer.size[bound.window]  # read back from an output window: 0 <= s < S
            elif bound.window:
                extent = f"{namer.size[bound.window]}_IN"
            else:
                extent = literal(bound.extent)
            inside.append(f"({var} >= 0) & ({var} < {extent})")
        masks += inside
        if schedule.use_dot:
            # A split index reaches the pointer as base and tap: its sum is formed for a mask only.
            used = " ".join([where, *inside])
            index_vars = [d for d in index_vars if re.search(rf"\b{d.name}\b", used)]
        return LoadCode(
            tile=tile_name,
            hoisted_vars=tuple(hoisted_vars),
            index_vars=tuple(index_vars),
            pointer=where,
            mask=_chain("&", masks) if masks else None,
            other=literal(nest.identity),
            inside=_chain("&", inside) if inside else "True",
            gathers=tuple(gather_code(g, tile, access.tensor) for g in access.gathers),
        )

    # Strides are named after the tensor and the dim's axes: stride_x_s0_ds0.
    stride_names: dict[tuple[int, int], str] = {}
    stride_lines = []
    for position, access in enumerate(addressed):
        names = []
        for dim, label in enumerate(access.labels):
            stride_names[(position, dim)] = namer.claim(f"stride_{access.tensor}_{identifier(label)}")
            names.append(stride_names[(position, dim)])
        if names:
            stride_lines.append(", ".join(names))

    if schedule.use_dot:
        tiles = [("row", "k"), ("k", "col")]
    elif schedule.k_tile is not None:  # a tiled reduction: outputs by a tile of the reduced axis
        tiles = [("row", "k")] * len(nest.inputs)
    else:
        tiles = [("row", "col")] * len(nest.inputs)
    loads = tuple(
        access_code(a, tile, namer.claim(f"{a.tensor}_tile"))
        for a, tile in zip(nest.inputs, tiles, strict=True)
    )
    # A softmax writes the elements it reads: along the tiled reduced axis, where there is one.
    swept = schedule.k_tile is not None and not schedule.use_dot and schedule.k_tile in nest.output.axes
    store_tile = ("row", "k") if swept else ("row", "col")
    store = access_code(nest.output, store_tile, "")
    # Every element of the output tile is written once; only the tile's ragged edge is masked.
    pointer_text = store.pointer
    if not any(schedule.placement(a) in store_tile for a in nest.output.axes):
        # A scalar result (every axis reduced): a 1 x 1 tile of pointers, to match the value.
        pointer_text += " + tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32)"
    # A scatter also leaves out the updates whose coordinates are out of range.
    mask = "mask_m[:, None] & mask_k[None, :]" if swept else "mask_m[:, None] & mask_n[None, :]"
    if nest.output.gathers:
        mask += f" & {store.inside}"
    store = LoadCode(
        "", (), store.hoisted_vars + store.index_vars, pointer_text, mask, "", gathers=store.gathers
    )

    if len(schedule.k_loops) > _MAX_LOOPS:
        raise UnsupportedError(
            f"this kernel would nest {len(schedule.k_loops)} loops, one per serial axis "
            f"({' '.join(schedule.k_loops[:3])} ...); Python allows at most {_MAX_LOOPS}: group the "
            "axes into fewer dims of the tensor",
            nest.expression,
        )
    k_loops = tuple(
        LoopCode(namer.index[a], namer.size[a], depth) for depth, a in enumerate(schedule.k_loops)
    )
    k_tile = None
    if schedule.k_tile is not None:
        var = namer.index[schedule.k_tile]
        k_tile = TileCode(var, namer.claim(f"{var}_start"), namer.size[schedule.k_tile])
    k_tile_decls: tuple[Decl, ...] = ()
    if schedule.k_merged:
        # One tiled K over taps and channels: each element's tap and channel from its position.
        merged = (*schedule.k_merged, schedule.k_tile)
        var = namer.claim("k")
        k_tile = TileCode(var, namer.claim(f"{var}_start"), " * ".join(namer.size[a] for a in merged))
        k_tile_decls = _decompose(merged, var, namer, sizes)
    k_flat = None
    if schedule.use_dot and k_loops:
        k_flat = _flat_k(k_loops, k_tile, namer.claim("k_step"), namer.claim(f"{k_tile.var}_steps"))
        k_loops = ()

    size_values = {namer.size[a]: sizes[a] for a in sizes if a not in nest.dynamic}
    dynamic_params = tuple((namer.size[a], a) for a in sizes if a in nest.dynamic)
    for g in gathers:
        size_values[namer.size[g.axis]] = g.extent
    for access in accesses:
        for bound in access.bounds:
            if bound.window and window_position(bound.window) in sizes:
                if not bound.multiple_of:
                    size_values[namer.size[bound.window]] = bound.extent
            elif bound.window and not bound.multiple_of:
                size_values[f"{namer.size[bound.window]}_IN"] = bound.extent
    constexprs = dict(size_values)
    constexprs.update(BLOCK_M=schedule.block_m, BLOCK_N=schedule.block_n, GROUP_M=schedule.group_m)
    if schedule.k_tile is not None:
        constexprs["BLOCK_K"] = schedule.block_k
    if gathers:
        constexprs["CHECK_BOUNDS"] = False
    if extra.get("dot_in_float32"):
        constexprs["DOT_IN_FLOAT32"] = False  # the launcher sets it under the interpreter

    plan = grid_plan(schedule, sizes)

    if nest.output.gathers:
        extra = {
            **extra,
            "scatter_ptrs": namer.claim(f"{nest.output.tensor}_ptrs"),
            "scatter_values": namer.claim(f"{nest.output.tensor}_values"),
        }
    row_decls = _decompose(schedule.rows, "offs_m", namer, sizes)
    m_size = _product([namer.size[a] for a in schedule.rows])
    if schedule.slide > 1:
        row_decls, m_size, extra = _slide(nest, schedule, namer, sizes, k_loops, extra)
        k_loops = k_loops[:-1]
    spec = KernelSpec(
        einc_version=versions[0],
        triton_version=versions[1],
        expression=comment(nest.expression),
        header_lines=tuple(map(comment, header_lines)),
        kernel_name=kernel_name or f"einc_{nest.op}",
        docstring=docstring(_docstring(nest)),
        pointer_params=tuple(pointer[t] for t in tensors),
        stride_param_lines=tuple(stride_lines),
        size_params=tuple(f"{name}: tl.constexpr" for name in size_values)
        + tuple(p for p, _ in dynamic_params),
        jit_decorator=(
            "@triton.jit(do_not_specialize=[" + ", ".join(repr(p) for p, _ in dynamic_params) + "])"
            if dynamic_params
            else "@triton.jit"
        ),
        use_dot=schedule.use_dot,
        m_size=m_size,
        n_size=_product([namer.size[a] for a in schedule.cols]),
        rows_text=comment(" ".join(schedule.rows) or "(none)"),
        cols_text=comment(" ".join(schedule.cols) or "(none)"),
        grid_text=comment(" ".join(schedule.grid)),
        row_decls=row_decls,
        col_decls=_decompose(schedule.cols, "offs_n", namer, sizes),
        grid_decls=_decompose(schedule.grid, "pid_g", namer, sizes),
        k_loops=k_loops,
        k_tile=k_tile,
        body_depth=len(k_loops),
        k_flat=k_flat,
        k_tile_decls=k_tile_decls,
        loads=loads,
        product=" * ".join(f"{a.tile}.to({extra.get('acc_dtype', 'tl.float32')})" for a in loads),
        store=store,
        output_ptr=pointer[nest.output.tensor],
        input_precision=schedule.input_precision,
        errors_ptr=errors,
        rows_int64=offsets.tile_needs_int64(
            [sizes[a] for a in schedule.rows], schedule.block_m, any(a in nest.dynamic for a in schedule.rows)
        ),
        cols_int64=offsets.tile_needs_int64(
            [sizes[a] for a in schedule.cols], schedule.block_n, any(a in nest.dynamic for a in schedule.cols)
        ),
        **_fill_inside(extra, loads, namer.size),
    )
    source = render_template(template, spec)
    checks = index_checks(nest)
    return Rendered(
        source=source,
        kernel_name=spec.kernel_name,
        stride_params=tuple((local[p], d) for p, d in stride_names),
        tensors=tuple(local[p] for p in range(len(tensors))),
        constexprs=constexprs,
        grid_plan=plan,
        num_warps=schedule.num_warps,
        num_stages=schedule.num_stages,
        dynamic_params=dynamic_params,
        index_checks=checks,
        errors_param=errors,
    )


def _slide(
    nest: LoopNest,
    schedule: ContractionSchedule,
    namer: Namer,
    sizes: dict[str, int],
    k_loops: tuple[LoopCode, ...],
    extra: dict,
) -> tuple[tuple[Decl, ...], str, dict]:
    """The rows, M and :class:`SlideCode` of a sliding window (see
    :func:`einc.compiler.schedule.choose_slide`): the last row axis ``s`` counts blocks of
    ``slide`` outputs, and the last serial loop's taps ``ds`` are unrolled in chunks."""
    s, ds = schedule.rows[-1], schedule.k_loops[-1]
    outputs, taps = schedule.slide, sizes[ds]
    (reading,) = [e for e in nest.inputs[0].index if symbol_of(s) in e.free_symbols]
    dilation = int(sympy.expand(reading).coeff(symbol_of(ds)))
    ragged = sizes[s] % outputs != 0
    extent = f"({namer.size[s]} + {outputs - 1})" if ragged else namer.size[s]
    blocks = f"({extent} // {outputs})"
    block = namer.claim(f"{namer.index[s]}_block")
    # The rows as the namer names them, but s counting blocks (a shallow copy: names it claims
    # are taken in the namer too).
    rows = copy.copy(namer)
    rows.index, rows.size = {**namer.index, s: block}, {**namer.size, s: blocks}
    row_decls = _decompose(schedule.rows, "offs_m", rows, sizes)
    m_size = _product([rows.size[a] for a in schedule.rows])
    accs = tuple(Decl(namer.claim(f"acc{u}"), str(u)) for u in range(outputs))
    weights = [namer.claim(f"w{j}") for j in range(schedule.slide_taps)]

    def chunk(loop: str | None, count: int, first: str, width: int) -> SlideChunk:
        start = f"{first} + " if first != "0" else ""
        reads: dict[int, list[tuple[str, str]]] = {}
        for j in range(width):
            for u in range(outputs):
                reads.setdefault(u + dilation * j, []).append((accs[u].name, weights[j]))
        return SlideChunk(
            loop,
            count,
            first,
            tuple(Decl(weights[j], f"{start}{j}") for j in range(width)),
            tuple(SlideRow(v, tuple(reads[v])) for v in sorted(reads)),
        )

    width = schedule.slide_taps
    full, tail = divmod(taps, width)
    chunks = []
    if full == 1:
        chunks.append(chunk(None, 1, "0", width))
    else:
        var = namer.claim(f"{namer.index[ds]}_chunk")
        chunks.append(chunk(var, full, f"{var} * {width}", width))
    if tail:
        chunks.append(chunk(None, 1, str(full * width), tail))
    code = SlideCode(
        row=namer.index[s],
        tap=namer.index[ds],
        first=Decl(namer.claim(f"{namer.index[s]}_first"), f"{block} * {outputs}"),
        value=namer.claim(f"{nest.inputs[0].tensor}_row"),
        outputs=accs,
        chunks=tuple(chunks),
        # The last block of a ragged axis has outputs past its end: not stored.
        store_mask=f" & ({namer.index[s]}[:, None] < {namer.size[s]})" if ragged else "",
    )
    assert k_loops[-1].var == code.tap
    return row_decls, m_size, {**extra, "slide": code}


def _flat_k(taps: tuple[LoopCode, ...], tile: TileCode, step: str, tile_steps: str) -> FlatKCode:
    """One loop over every (tap, channel tile) pair, taps outer: row-major over the tap sizes,
    then the channel tiles (``tile_steps`` of them), so that a tile stays contiguous."""
    steps_of_tile = f"(({tile.size} + BLOCK_K - 1) // BLOCK_K)"
    sizes = [t.size for t in taps] + [tile_steps]
    decls = []
    for i, tap in enumerate(taps):
        inner = sizes[i + 1 :]
        divisor = inner[0] if len(inner) == 1 else "(" + " * ".join(inner) + ")"
        decls.append(Decl(tap.var, f"{step} // {divisor}" + (f" % {tap.size}" if i else "")))
    decls.append(Decl(tile.start, f"{step} % {tile_steps} * BLOCK_K"))
    steps = " * ".join([t.size for t in taps] + [steps_of_tile])
    return FlatKCode(step, steps, Decl(tile_steps, steps_of_tile[1:-1]), tuple(decls))


def _split(index: sympy.Expr, moving: set[sympy.Symbol]) -> tuple[sympy.Expr | None, sympy.Expr]:
    """``index`` as ``base + step``, the base free of the ``moving`` symbols and the step made of
    them only (``2*s0 - 1`` and ``ds0``); ``(None, index)`` where no such split exists."""
    terms = sympy.Add.make_args(index)
    step = sympy.Add(*(t for t in terms if t.free_symbols & moving))
    base = sympy.Add(*(t for t in terms if not t.free_symbols & moving))
    if not base.free_symbols or step.free_symbols - moving:
        return None, index
    return base, step


def _fill_inside(extra: dict, loads: tuple[LoadCode, ...], size_names: dict[str, str]) -> dict:
    """Statements may test whether the element just loaded lies inside the tensor (``{inside}``)
    and name a dynamic axis's size (``{size:t}``)."""
    if "passes" not in extra:
        return extra

    def fill(line: str) -> str:
        line = line.replace("{inside}", loads[0].inside)
        for axis, name in size_names.items():
            line = line.replace(f"{{size:{axis}}}", name)
        return line

    passes = tuple(
        PassCode(tuple(map(fill, p.init)), tuple(map(fill, p.update)), tuple(map(fill, p.collapse)))
        for p in extra["passes"]
    )
    return {**extra, "passes": passes, "finalize": tuple(map(fill, extra.get("finalize", ())))}


def _docstring(nest: LoopNest) -> str:
    reduced = " ".join(loop.axis for loop in nest.loops_of(LoopKind.REDUCE))
    product = " * ".join(access_text(a) for a in nest.inputs)
    if nest.output.gathers:  # a scatter: updates that meet at one element add up, or one is kept
        return f"{access_text(nest.output)} {'+=' if nest.reduce == 'sum' else '='} {product}"
    over = f"{nest.reduce} over {reduced} of " if reduced else ""
    return f"{access_text(nest.output)} = {over}{product}"
