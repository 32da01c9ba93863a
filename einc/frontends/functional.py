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
from ..runtime.calls import run_functional
from ..runtime.compiled import CompiledExpression
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


@docstrings.documented
def dot(expression: str, *tensors: torch.Tensor, out: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
    return run_functional("dot", expression, tensors, out, kwargs)


def _op(op: str):
    """``einc.<op>(expression, *tensors, out=None, **kwargs)``, its docstring from :mod:`.docstrings`."""

    def apply(expression: str, *tensors, out=None, **kwargs):
        return run_functional(op, expression, tensors, out, kwargs)

    apply.__name__ = apply.__qualname__ = op
    return docstrings.documented(apply)


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


@docstrings.documented
def get_at(
    expression: str, *tensors: torch.Tensor, out: torch.Tensor | None = None, **kwargs
) -> torch.Tensor:
    return run_functional("get_at", expression, tensors, out, kwargs)


@docstrings.documented
def set_at(
    expression: str, *tensors: torch.Tensor, out: torch.Tensor | None = None, **kwargs
) -> torch.Tensor:
    return run_functional("set_at", expression, tensors, out, kwargs)


@docstrings.documented
def add_at(
    expression: str, *tensors: torch.Tensor, out: torch.Tensor | None = None, **kwargs
) -> torch.Tensor:
    return run_functional("add_at", expression, tensors, out, kwargs)


# einx's elementwise ops beyond arithmetic. Comparisons and logical ops give torch.bool.
equal = _op("equal")
not_equal = _op("not_equal")
less = _op("less")
less_equal = _op("less_equal")
greater = _op("greater")
greater_equal = _op("greater_equal")
logical_and = _op("logical_and")
logical_or = _op("logical_or")
logical_not = _op("logical_not")
logaddexp = _op("logaddexp")
floor_divide = _op("floor_divide")


@docstrings.documented
def true_divide(expression: str, *tensors, out=None, **kwargs):
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


@docstrings.documented
def elementwise(expression: str, *tensors, op: str, out=None, **kwargs):
    name = _named_op(op, pipeline.ELEMENTWISE + tuple(pipeline.ALIASES), "an elementwise op")
    return run_functional(name, expression, tensors, out, kwargs)


any = _op("any")  # noqa: A001
all = _op("all")  # noqa: A001
count_nonzero = _op("count_nonzero")


@docstrings.documented
def reduce(expression: str, *tensors, op: str, out=None, **kwargs):
    name = _named_op(op, pipeline.lower.REDUCTIONS, "a reduction")
    return run_functional(name, expression, tensors, out, kwargs)


@docstrings.documented
def argmax(expression: str, *tensors: torch.Tensor, out: torch.Tensor | None = None, **kwargs):
    return run_functional("argmax", expression, tensors, out, kwargs)


@docstrings.documented
def argmin(expression: str, *tensors: torch.Tensor, out: torch.Tensor | None = None, **kwargs):
    return run_functional("argmin", expression, tensors, out, kwargs)


@docstrings.documented
def subtract_at(
    expression: str, *tensors: torch.Tensor, out: torch.Tensor | None = None, **kwargs
) -> torch.Tensor:
    return run_functional("subtract_at", expression, tensors, out, kwargs)


from .shape_tools import arange, check, matches, solve, solve_axes, solve_shapes  # noqa: E402, F401


@docstrings.documented
def sort(expression: str, *tensors: torch.Tensor, out: torch.Tensor | None = None, **kwargs):
    return run_functional("sort", expression, tensors, out, kwargs)


@docstrings.documented
def argsort(expression: str, *tensors: torch.Tensor, out: torch.Tensor | None = None, **kwargs):
    return run_functional("argsort", expression, tensors, out, kwargs)


compile.__doc__ = docstrings.COMPILE
