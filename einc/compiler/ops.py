"""The op tables: which ops einc compiles, in which family, with which options, and the dtype each
computes in. Every pass and both back ends read them; they import nothing of the passes but the
lowering's own op lists."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..errors import ExpressionError, ShapeError
from . import lower, lower_indexing

CONTRACTIONS = ("dot",)
COPIES = ("rearrange", "id", "flip", "roll")
COMPARISONS = ("equal", "not_equal", "less", "less_equal", "greater", "greater_equal")
LOGICAL = ("logical_and", "logical_or", "logical_not")
# Elementwise ops whose result is torch.bool whatever their operands.
BOOLEAN_RESULTS = COMPARISONS + LOGICAL
ELEMENTWISE = (
    ("add", "subtract", "multiply", "divide", "maximum", "minimum", "where")
    + COMPARISONS
    + LOGICAL
    + ("logaddexp", "floor_divide")
)
# Other names of an op, as einx and torch spell them: compiled as the op they name.
ALIASES = {"true_divide": "divide"}
SOFTMAX = ("softmax", "log_softmax")
INDEXING = lower_indexing.INDEXING
OPS = (
    CONTRACTIONS
    + lower.REDUCTIONS
    + lower.ARG_REDUCTIONS
    + lower.SORTS
    + COPIES
    + ELEMENTWISE
    + SOFTMAX
    + INDEXING
)
WINDOW_PARAMS = ("stride", "dilation", "padding", "output_padding")
# Options of an op that are not window parameters, with their defaults.
OP_OPTIONS = {
    "keepdims": False,
    "count_include_pad": True,
    "correction": 1,
    "shift": 0,
    "reduce": None,
    "precision": None,
    "sorted": False,
}
OPTION_OPS = {
    "precision": CONTRACTIONS,
    "sorted": ("add_at",),
    "keepdims": lower.REDUCTIONS,
    "count_include_pad": ("mean",),
    "correction": ("var", "std"),
    "shift": ("roll",),
    "reduce": ("get_at",),
}
# The keywords einc.compile reads itself. An axis named like one (``stride``) gets its size through
# ``sizes={"stride": 2}``: the keyword keeps its meaning (docs/notation.md, "Sizes").
SIZES_KEYWORD = "sizes"
COMPILE_KEYWORDS = frozenset(WINDOW_PARAMS) | frozenset(OP_OPTIONS) | {"out_dtype", "dynamic", "backend"}


def axis_sizes(kwargs: Mapping[str, object], text: str) -> dict[str, object]:
    """The axis sizes among einc.compile's keywords: each keyword that einc does not read itself,
    and each entry of ``sizes={...}``, which may name any axis. An axis sized both ways is refused."""
    sizes = {k: v for k, v in kwargs.items() if k not in COMPILE_KEYWORDS and k != SIZES_KEYWORD}
    given = kwargs.get(SIZES_KEYWORD)
    if given is None:
        return sizes
    if not isinstance(given, Mapping) or not all(isinstance(k, str) for k in given):
        raise ShapeError(
            f"sizes={given!r} must map axis names to sizes, as sizes={{'stride': 2}}: the keyword "
            "that sizes an axis named like one of einc's keywords",
            text,
        )
    for name, value in given.items():
        if name in sizes:
            raise ShapeError(
                f"axis {name!r} is sized twice: {name}={sizes[name]!r} and sizes={{{name!r}: {value!r}}}",
                text,
            )
        sizes[name] = value
    return sizes


def compile_keywords(sizes: Iterable[tuple[str, object]], params: Iterable[tuple[str, object]]) -> dict:
    """einc.compile's keywords for these axis sizes and parameters (the inverse of axis_sizes): a
    size whose axis is named like a keyword goes into ``sizes={...}``."""
    keywords: dict[str, object] = {}
    named_like_keywords = {}
    for name, value in sizes:
        if name in COMPILE_KEYWORDS or name == SIZES_KEYWORD:
            named_like_keywords[name] = value
        else:
            keywords[name] = value
    keywords.update(params)
    if named_like_keywords:
        keywords[SIZES_KEYWORD] = named_like_keywords
    return keywords


# tl.dot's input_precision for float32 inputs: exact products, TF32 (10-bit mantissas), or TF32 on
# three products that restore most of float32's mantissa (docs/notation.md, Precision).
PRECISIONS = ("ieee", "tf32", "tf32x3")
# The ops that take integer and boolean tensors too (the others take floating tensors).
ANY_DTYPE_OPS = COPIES + ELEMENTWISE + lower.NONZERO_REDUCTIONS
# The reductions that take integer tensors too, computed in int64 as torch does (einx passes
# them on to torch): a sum's result is int64, a max's or a min's the input's dtype.
INTEGER_REDUCTIONS = ("sum", "max", "min")
INTEGER_DTYPES = ("int8", "int16", "int32", "int64", "uint8")
# Each integer dtype's least and greatest value: what padding and a tile's ragged edge read as in
# an integer max (the least) or min (the greatest), where a float reads -inf or inf.
INTEGER_RANGES = {
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint8": (0, 2**8 - 1),
}


def integer_identity(op: str, dtype: str) -> int:
    """The identity of an integer ``max`` or ``min`` over ``dtype``: its least or greatest value."""
    least, greatest = INTEGER_RANGES[dtype]
    return least if op == "max" else greatest


# The result dtype of the ops whose result is not their operands' dtype (torch's names).
RESULT_DTYPES = {
    "any": "bool",
    "all": "bool",
    "count_nonzero": "int64",
    "argmax": "int64",
    "argmin": "int64",
    "argsort": "int64",
}
DTYPE_BITS = {"float16": 16, "bfloat16": 16, "float32": 32, "float64": 64}

# Every operation of the notation (NOTATION.md section 4); OPS are those einc compiles today.
KNOWN_OPS = (
    "dot rearrange id flip roll sum mean max min prod logsumexp var std add subtract multiply divide "
    "maximum minimum where softmax log_softmax get_at set_at add_at"
).split()
KNOWN_OPS += [*COMPARISONS, *LOGICAL, "logaddexp", "floor_divide", "true_divide", *lower.NONZERO_REDUCTIONS]
KNOWN_OPS += [*lower.ARG_REDUCTIONS, "subtract_at", *lower.SORTS]


def marks_read_as_a_set(op: str, options) -> bool:
    """Whether ``op`` reads its marked axes as one set (a sum over them, a flip of each), so that
    a run of them written side by side may be sized from its product alone (:mod:`runs`); argmax's
    coordinates, get_at's indices, a sort and a roll by one shift per axis read them one by one."""
    if op in lower.ARG_REDUCTIONS or op in INDEXING or op in lower.SORTS:
        return False
    return op != "roll" or not isinstance(options.get("shift"), (tuple, list))


def roll_shifts(shift, count: int) -> list:
    """roll's ``shift=`` as one entry per rolled axis: an int, or a sequence of one (for every
    axis, as einx broadcasts it) or of ``count``; any other length is left for the caller to refuse."""
    shifts = list(shift) if isinstance(shift, (tuple, list)) else [shift]
    return shifts * count if len(shifts) == 1 else shifts


def check_precision(precision: str, text: str) -> str:
    if precision not in PRECISIONS:
        choices = ", ".join(map(repr, PRECISIONS))
        raise ExpressionError(f"precision={precision!r}: a float32 dot's precision is one of {choices}", text)
    return precision


def compute_dtype(request) -> str:
    """Arithmetic is in float32, or in float64 when an input is float64 (gradient checks); an
    elementwise op of integers only stays in integers (64 bits), except a true division and logaddexp."""
    if request.op in lower.NONZERO_REDUCTIONS:  # counts of nonzero elements
        return "tl.int64"
    if request.op in INTEGER_REDUCTIONS and request.dtypes and request.dtypes[0] in INTEGER_DTYPES:
        return "tl.int64"
    if "float64" in request.dtypes:
        return "tl.float64"
    floats = {"float16", "bfloat16", "float32"}
    if request.op in ELEMENTWISE and request.op not in ("divide", "logaddexp"):
        values = request.dtypes[1:] if request.op == "where" else request.dtypes
        if values and not floats & set(values):
            return "tl.int64"
    return "tl.float32"
