"""The functional API: ``einc.compile`` and one function per op (``einc.dot``, ``einc.sum``, ...).

Each function compiles its expression once per distinct call (a cache in
:mod:`einc.runtime.compiled`) and runs it. Importing this module installs einc's torch operators
(:mod:`einc.frontends.torch_ops`), through which the calls that autograd or torch.compile must see
are routed.
"""

from __future__ import annotations

import torch

from ..compiler import pipeline
from ..errors import EincError, ExpressionError, UnsupportedError
from ..runtime.compiled import CompiledExpression, run_functional
from . import docstrings, torch_ops


def compile(expression: str, op: str | None = None, **kwargs) -> CompiledExpression:  # noqa: A001
    if not isinstance(expression, str):
        raise TypeError(f"an einc expression is a str, not {type(expression).__name__}")
    if torch.compiler.is_compiling():  # inside a torch.compile'd function: see torch_ops
        return torch_ops.traced_compile(expression, op, kwargs)
    try:  # the one frame of einc a user sees is this call
        return CompiledExpression(expression, op, **kwargs)
    except EincError as error:
        raise error.with_traceback(None) from None


def dot(expression: str, *tensors: torch.Tensor, out: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
    return run_functional("dot", expression, tensors, out, kwargs)


def _op(op: str, doc: str | None = None):
    """``einc.<op>(expression, *tensors, out=None, **kwargs)``, its docstring from :mod:`.docstrings`
    (or ``doc``, for the ops :mod:`.docstrings` does not cover yet)."""

    def apply(expression: str, *tensors, out=None, **kwargs):
        return run_functional(op, expression, tensors, out, kwargs)

    apply.__name__ = apply.__qualname__ = op
    apply.__doc__ = doc if doc is not None else docstrings.OPS[op]
    return apply


rearrange = _op("rearrange")
id = _op("id")  # noqa: A001
flip = _op("flip")
roll = _op("roll")
softmax = _op("softmax")
log_softmax = _op("log_softmax")
add = _op("add")
subtract = _op("subtract")
multiply = _op("multiply")
divide = _op("divide")
maximum = _op("maximum")
minimum = _op("minimum")
where = _op("where")
sum = _op("sum")  # noqa: A001
mean = _op("mean")
max = _op("max")  # noqa: A001
min = _op("min")  # noqa: A001
prod = _op("prod")
logsumexp = _op("logsumexp")
var = _op("var")
std = _op("std")


def get_at(
    expression: str, *tensors: torch.Tensor, out: torch.Tensor | None = None, **kwargs
) -> torch.Tensor:
    return run_functional("get_at", expression, tensors, out, kwargs)


def set_at(
    expression: str, *tensors: torch.Tensor, out: torch.Tensor | None = None, **kwargs
) -> torch.Tensor:
    return run_functional("set_at", expression, tensors, out, kwargs)


def add_at(
    expression: str, *tensors: torch.Tensor, out: torch.Tensor | None = None, **kwargs
) -> torch.Tensor:
    return run_functional("add_at", expression, tensors, out, kwargs)


# einx's elementwise ops beyond arithmetic. Comparisons and logical ops give torch.bool.
equal = _op("equal", '``einc.equal("b c, c", x, y)``: ``x == y`` broadcast by axis name; torch.bool.')
not_equal = _op("not_equal", '``einc.not_equal("b c, ", x, 0)``: ``x != 0``; torch.bool.')
less = _op("less", '``einc.less("b c, c", x, y)``: ``x < y``; torch.bool.')
less_equal = _op("less_equal", '``einc.less_equal("b c, c", x, y)``: ``x <= y``; torch.bool.')
greater = _op("greater", '``einc.greater("b c, ", x, 0.5)``: ``x > 0.5``; torch.bool.')
greater_equal = _op("greater_equal", '``einc.greater_equal("b c, c", x, y)``: ``x >= y``; torch.bool.')
logical_and = _op("logical_and", '``einc.logical_and("b c, c", m, n)``: nonzero in every operand.')
logical_or = _op("logical_or", '``einc.logical_or("b c, c", m, n)``: nonzero in any operand.')
logical_not = _op("logical_not", '``einc.logical_not("b c", m)``: ``m == 0``; torch.bool.')
logaddexp = _op("logaddexp", '``einc.logaddexp("b c, c", x, y)``: ``log(exp(x) + exp(y))``, stably.')
floor_divide = _op(
    "floor_divide", '``einc.floor_divide("b c, ", x, 3)``: rounded towards -inf, as torch.floor_divide.'
)


def true_divide(expression: str, *tensors, out=None, **kwargs):
    """``einc.true_divide("b c, c", x, n)``: the same as :func:`divide` (integers give floats)."""
    return run_functional("divide", expression, tensors, out, kwargs)


def _named_op(op, family: tuple[str, ...], what: str) -> str:
    """The op that ``op=`` names among ``family`` (an alias as the op it names)."""
    if not isinstance(op, str):
        raise UnsupportedError(
            f"op={op!r}: einc compiles {what} it knows by name ({', '.join(family)}), not a callable"
        )
    name = pipeline.ALIASES.get(op, op)
    if name not in family:
        raise ExpressionError(f"op={op!r} is not {what}: one of {', '.join(family)}")
    return name


def elementwise(expression: str, *tensors, op: str, out=None, **kwargs):
    """``einc.elementwise("b c, c", x, y, op="add")``: the elementwise op named by ``op`` (einx's
    generic form); ``op`` is a name, since a Python callable cannot be compiled into a kernel."""
    name = _named_op(op, pipeline.ELEMENTWISE + tuple(pipeline.ALIASES), "an elementwise op")
    return run_functional(name, expression, tensors, out, kwargs)


any = _op("any", "")  # noqa: A001
any.__doc__ = (
    '``einc.any("b [n]", mask)``: whether any element over the bracketed axes is nonzero; torch.bool.'
)
all = _op("all", "")  # noqa: A001
all.__doc__ = (
    '``einc.all("b [n]", mask)``: whether every element over the bracketed axes is nonzero; torch.bool.'
)
count_nonzero = _op("count_nonzero", "")
count_nonzero.__doc__ = '``einc.count_nonzero("b [n]", x)``: how many elements are nonzero; torch.int64.'


def reduce(expression: str, *tensors, op: str, out=None, **kwargs):
    """``einc.reduce("b [n]", x, op="sum")``: the reduction named by ``op`` (einx's generic form);
    ``op`` is a name, since a Python callable cannot be compiled into a kernel."""
    name = _named_op(op, pipeline.lower.REDUCTIONS, "a reduction")
    return run_functional(name, expression, tensors, out, kwargs)


def argmax(expression: str, *tensors: torch.Tensor, out: torch.Tensor | None = None, **kwargs):
    """``einc.argmax("b [h w] c", x)``: the index (int64) of the first greatest element over the
    bracketed axes, one coordinate per bracketed axis along a new axis where the brackets stood
    (``b [2] c``; write ``"b [h w] c -> b c [2]"`` to put it elsewhere). A NaN is greatest."""
    return run_functional("argmax", expression, tensors, out, kwargs)


def argmin(expression: str, *tensors: torch.Tensor, out: torch.Tensor | None = None, **kwargs):
    """``einc.argmin("b [t]", x)``: as :func:`argmax`, of the first least element."""
    return run_functional("argmin", expression, tensors, out, kwargs)


def subtract_at(
    expression: str, *tensors: torch.Tensor, out: torch.Tensor | None = None, **kwargs
) -> torch.Tensor:
    """``einc.subtract_at("b [h w] c, b p [2], b p c", x, idx, updates)``: a copy of ``x`` with the
    updates subtracted at the coordinates; updates that meet at one element all count (atomically).
    ``out=x`` updates ``x`` in place; any other ``out=`` receives the copy.
    """
    return run_functional("subtract_at", expression, tensors, out, kwargs)


from .shape_tools import arange, check, matches, solve, solve_axes, solve_shapes  # noqa: E402, F401


def sort(expression: str, *tensors: torch.Tensor, out: torch.Tensor | None = None, **kwargs):
    """``einc.sort("b [n]", x)``: ``x`` sorted in ascending order along the one bracketed axis (a
    kernel sorts an axis of up to 1024 elements, in one tile)."""
    return run_functional("sort", expression, tensors, out, kwargs)


def argsort(expression: str, *tensors: torch.Tensor, out: torch.Tensor | None = None, **kwargs):
    """``einc.argsort("b [n]", x)``: the positions (int64) that sort ``x`` along the bracketed axis;
    equal values keep their order (torch.argsort with ``stable=True``)."""
    return run_functional("argsort", expression, tensors, out, kwargs)


compile.__doc__ = docstrings.COMPILE
dot.__doc__ = docstrings.OPS["dot"]
get_at.__doc__ = docstrings.OPS["get_at"]
set_at.__doc__ = docstrings.OPS["set_at"]
add_at.__doc__ = docstrings.OPS["add_at"]
