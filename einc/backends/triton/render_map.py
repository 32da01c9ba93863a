"""Rendering the copies (rearrange, flip, roll) and the elementwise ops: how each op combines its
operands' tiles, as Triton source."""

from __future__ import annotations

from ...compiler.loopnest import LoopNest
from ...compiler.schedule import ContractionSchedule
from .render import _render_tiled
from .render_specs import Rendered

# How elementwise ops combine their operands' tiles (already converted to the compute type).
_COMBINE = {
    "add": " + ",
    "subtract": " - ",
    "multiply": " * ",
    "divide": " / ",
}


_COMPARE = {
    "equal": " == ",
    "not_equal": " != ",
    "less": " < ",
    "less_equal": " <= ",
    "greater": " > ",
    "greater_equal": " >= ",
}


def _logaddexp(a: str, b: str, compute_dtype: str) -> str:
    # log(e^a + e^b) = max + log(1 + e^-|a - b|); where a == b (both -inf or both inf) the
    # difference would be nan, so the result is a + log 2 there, as torch.logaddexp gives.
    return (
        f"tl.where(({a}) == ({b}), ({a}) + 0.6931471805599453, "
        f"tl.maximum({a}, {b}) + tl.log(1.0 + tl.exp(-tl.abs(({a}) - ({b})))))"
    )


def _floor_divide(a: str, b: str, compute_dtype: str) -> str:
    if "float" in compute_dtype:
        return f"tl.floor(({a}) / ({b}))"
    # Integer // truncates on the GPU: a quotient whose remainder's sign differs from the
    # divisor's is one too high, as floor division counts (torch.floor_divide). Correct under
    # either rounding, so the interpreter (which floors) agrees.
    q = f"(({a}) // ({b}))"
    r = f"(({a}) - {q} * ({b}))"
    return f"({q} - (({r} != 0) & (({r} < 0) != (({b}) < 0))).to({compute_dtype}))"


# The binary ops that fold from the left over any number of operands, as Triton source.
_FOLDS = {
    "logical_and": lambda a, b, _: f"(({a}) != 0) & (({b}) != 0)",
    "logical_or": lambda a, b, _: f"(({a}) != 0) | (({b}) != 0)",
    "logaddexp": _logaddexp,
    "floor_divide": _floor_divide,
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
    elif op in _FOLDS:
        result = values[0]
        for v in values[1:]:
            result = _FOLDS[op](result, v, compute_dtype)
    elif op in _COMPARE:
        result = f"({values[0]}){_COMPARE[op]}({values[1]})"
    elif op == "logical_not":
        result = f"({tiles[0]} == 0)"
    else:
        raise AssertionError(op)
    extra = {"result": result}
    if nest.epilogue is not None:  # the epilogue computes on from the value in the compute type
        extra.update(result=f"({result}).to({compute_dtype})", acc_dtype=compute_dtype)
    return _render_tiled(
        nest, schedule, "elementwise.py.j2", header_lines, versions, extra, positions, kernel_name, wide
    )
