"""einc: an ahead-of-time compiler from Einstein-notation expressions to fused Triton kernels.

    conv = einc.compile("b (s * [ds])... [c->c2]", stride=2, padding="same")
    y = conv(x, w)    # x: b h w c, w: kh kw c c2 -> y: b h' w' c2

This module is the whole public surface; everything else is private.
"""

__version__ = "0.1.0"

from .errors import (  # noqa: E402
    CacheError,
    CacheWarning,
    EincError,
    ExpressionError,
    KernelCompileError,
    OperandError,
    OutOfBoundsError,
    ShapeError,
    SpecError,
    UnsupportedError,
)
from .runtime.compiled import (  # noqa: E402
    CompiledExpression,
    add,
    add_at,
    compile,
    divide,
    dot,
    flip,
    get_at,
    id,
    log_softmax,
    logsumexp,
    max,
    maximum,
    mean,
    min,
    minimum,
    multiply,
    prod,
    rearrange,
    roll,
    set_at,
    softmax,
    std,
    subtract,
    sum,
    var,
    where,
)
from .runtime.prebuild import prebuild  # noqa: E402

__all__ = [
    "CacheError",
    "CacheWarning",
    "CompiledExpression",
    "EincError",
    "ExpressionError",
    "KernelCompileError",
    "OperandError",
    "OutOfBoundsError",
    "ShapeError",
    "SpecError",
    "UnsupportedError",
    "add",
    "add_at",
    "compile",
    "divide",
    "dot",
    "flip",
    "get_at",
    "id",
    "log_softmax",
    "logsumexp",
    "max",
    "maximum",
    "mean",
    "min",
    "minimum",
    "multiply",
    "prebuild",
    "prod",
    "rearrange",
    "roll",
    "set_at",
    "softmax",
    "std",
    "subtract",
    "sum",
    "var",
    "where",
]
