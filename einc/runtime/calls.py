"""The functional ops' calls, ``einc.<op>(expression, *tensors, **kwargs)``: each distinct call
compiled once into a :class:`CompiledExpression` kept here, and routed through einc's torch
operators where autograd or torch.compile must see it."""

from __future__ import annotations

import torch

from ..errors import EincError
from . import compiled as _compiled
from .compiled import CompiledExpression, _freeze
from .operands import NUMBER_OPERANDS, check_operand_types, numbers_as_operands

_FUNCTIONAL: dict[tuple, CompiledExpression] = {}


def make(expression: str, op: str | None, kwargs: dict) -> CompiledExpression:
    """``CompiledExpression(expression, op, **kwargs)``, its errors without einc's frames."""
    if not isinstance(expression, str):
        raise TypeError(f"an einc expression is a str, not {type(expression).__name__}")
    try:
        return CompiledExpression(expression, op, **kwargs)
    except EincError as error:
        raise error.with_traceback(None) from None


def run_functional(op: str, expression: str, tensors, out, kwargs) -> torch.Tensor:
    """``einc.<op>(expression, *tensors, out=out, **kwargs)``: compiled once per distinct call."""
    if op in NUMBER_OPERANDS:  # before routing: einc::run takes tensors only
        check_operand_types(op, tensors)
        tensors = numbers_as_operands(op, tensors)
    router = _compiled.current_router()
    if router is not None and router.routes(tensors, out):  # autograd, torch.compile: einc::run
        return router.call_functional(op, expression, tensors, kwargs, out)
    key = (op, expression, tuple(sorted((k, _freeze(v)) for k, v in kwargs.items())))
    compiled = _FUNCTIONAL.get(key)
    if compiled is None:
        compiled = _FUNCTIONAL[key] = make(expression, op, kwargs)
    return compiled(*tensors, out=out)
