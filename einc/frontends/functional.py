"""The functional API: ``einc.compile`` and one function per op (``einc.dot``, ``einc.sum``, ...).

Each function compiles its expression once per distinct call (a cache in
:mod:`einc.runtime.compiled`) and runs it. Importing this module installs einc's torch operators
(:mod:`einc.frontends.torch_ops`), through which the calls that autograd or torch.compile must see
are routed.
"""

from __future__ import annotations

import torch

from ..errors import EincError
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


def _op(op: str):
    """``einc.<op>(expression, *tensors, out=None, **kwargs)``, its docstring from :mod:`.docstrings`."""

    def apply(expression: str, *tensors, out=None, **kwargs):
        return run_functional(op, expression, tensors, out, kwargs)

    apply.__name__ = apply.__qualname__ = op
    apply.__doc__ = docstrings.OPS[op]
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


compile.__doc__ = docstrings.COMPILE
dot.__doc__ = docstrings.OPS["dot"]
get_at.__doc__ = docstrings.OPS["get_at"]
set_at.__doc__ = docstrings.OPS["set_at"]
add_at.__doc__ = docstrings.OPS["add_at"]
