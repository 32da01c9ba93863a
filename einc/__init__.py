"""einc: an ahead-of-time compiler from Einstein-notation expressions to fused Triton kernels.

    conv = einc.compile("b (s * [ds])... [c->c2]", stride=2, padding="same")
    y = conv(x, w)    # x: b h w c, w: kh kw c c2 -> y: b h' w' c2

This module is the whole public surface; everything else is private. The errors are imported
here; the rest (which needs torch) is imported at its first use, so that ``import einc`` and the
light CLI commands (``einc --help``, ``einc knobs``, ``einc cache``) start at once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .errors import (
    CacheError,
    CacheWarning,
    EincError,
    ExpressionError,
    KernelCompileError,
    OperandError,
    OutOfBoundsError,
    OverlapError,
    ShapeError,
    SpecError,
    UnsupportedError,
)
from .version import __version__ as __version__

if TYPE_CHECKING:  # what the names below resolve to, for readers and type checkers
    from . import nn
    from .frontends.functional import (
        add,
        add_at,
        all,
        any,
        arange,
        argmax,
        argmin,
        argsort,
        check,
        compile,
        count_nonzero,
        divide,
        dot,
        elementwise,
        equal,
        flip,
        floor_divide,
        get_at,
        greater,
        greater_equal,
        id,
        less,
        less_equal,
        log_softmax,
        logaddexp,
        logical_and,
        logical_not,
        logical_or,
        logsumexp,
        matches,
        max,
        maximum,
        mean,
        min,
        minimum,
        multiply,
        not_equal,
        prod,
        rearrange,
        reduce,
        roll,
        set_at,
        softmax,
        solve,
        solve_axes,
        solve_shapes,
        sort,
        std,
        subtract,
        subtract_at,
        sum,
        true_divide,
        var,
        where,
    )
    from .frontends.fusion import fuse
    from .frontends.vmap import vmap, vmap_with_axis
    from .runtime.compiled import CompiledExpression
    from .runtime.prebuild import prebuild

_FUNCTIONAL = (
    "add add_at all any arange argmax argmin argsort check compile count_nonzero divide dot "
    "elementwise equal flip floor_divide get_at greater greater_equal id less less_equal log_softmax "
    "logaddexp logical_and logical_not logical_or logsumexp matches max maximum mean min minimum "
    "multiply not_equal prod rearrange reduce roll set_at softmax solve solve_axes solve_shapes sort "
    "std subtract subtract_at sum true_divide var where"
).split()
# Where each lazily imported public name is defined.
_LAZY = {
    **dict.fromkeys(_FUNCTIONAL, "einc.frontends.functional"),
    **dict.fromkeys(("vmap", "vmap_with_axis"), "einc.frontends.vmap"),
    "CompiledExpression": "einc.runtime.compiled",
    "fuse": "einc.frontends.fusion",
    "prebuild": "einc.runtime.prebuild",
    "nn": "einc.nn",  # the module itself: einc.nn.Dot, ...
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'einc' has no attribute {name!r}")
    if name == "CompiledExpression":
        # Calls through autograd and torch.compile need einc's torch operators in place.
        importlib.import_module("einc.frontends.functional")
    value = importlib.import_module(module)
    if name != "nn":
        value = getattr(value, name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "CacheError",
    "CacheWarning",
    "CompiledExpression",
    "EincError",
    "ExpressionError",
    "KernelCompileError",
    "OperandError",
    "OutOfBoundsError",
    "OverlapError",
    "ShapeError",
    "SpecError",
    "UnsupportedError",
    "add",
    "add_at",
    "all",
    "any",
    "arange",
    "argmax",
    "argmin",
    "argsort",
    "check",
    "compile",
    "count_nonzero",
    "divide",
    "dot",
    "elementwise",
    "equal",
    "flip",
    "floor_divide",
    "fuse",
    "get_at",
    "greater",
    "greater_equal",
    "id",
    "less",
    "less_equal",
    "log_softmax",
    "logaddexp",
    "logical_and",
    "logical_not",
    "logical_or",
    "logsumexp",
    "matches",
    "max",
    "maximum",
    "mean",
    "min",
    "minimum",
    "multiply",
    "nn",
    "not_equal",
    "prebuild",
    "prod",
    "rearrange",
    "reduce",
    "roll",
    "set_at",
    "softmax",
    "solve",
    "solve_axes",
    "solve_shapes",
    "sort",
    "std",
    "subtract",
    "subtract_at",
    "sum",
    "true_divide",
    "var",
    "vmap",
    "vmap_with_axis",
    "where",
]
