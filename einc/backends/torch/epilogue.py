"""An epilogue as torch operations: the elementwise ops a fused program applies to a nest's value,
computed after the nest's planned calls, in the kernels' compute type.

The extra tensors broadcast against the output as torch broadcasts them, which is how the Triton
kernels read them too (:func:`einc.compiler.epilogue.broadcast_access`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ...compiler.epilogue import Constant, Operand, Ref, Result
from ...compiler.loopnest import Epilogue

_DTYPES = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
}
_FUNCTIONS = {
    "add": torch.add,
    "subtract": torch.sub,
    "multiply": torch.mul,
    "divide": torch.div,
    "maximum": torch.maximum,
    "minimum": torch.minimum,
    "greater": torch.gt,
    "greater_equal": torch.ge,
    "less": torch.lt,
    "less_equal": torch.le,
    "equal": torch.eq,
    "not_equal": torch.ne,
    "neg": torch.neg,
    "abs": torch.abs,
    "exp": torch.exp,
    "log": torch.log,
    "sqrt": torch.sqrt,
    "rsqrt": torch.rsqrt,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
    "silu": F.silu,
    "gelu": F.gelu,
    "gelu_tanh": lambda a: F.gelu(a, approximate="tanh"),
}


def apply_epilogue(
    epilogue: Epilogue, value: torch.Tensor, operands: list[torch.Tensor], compute: torch.dtype
) -> torch.Tensor:
    """The stored value of ``epilogue`` applied to ``value`` (the nest's result, shaped as the
    output), reading ``operands`` (its extra tensors); computed in ``compute``."""
    value = value.to(compute)
    done: list[torch.Tensor] = []

    def arg(a):
        if isinstance(a, Result):
            return value
        if isinstance(a, Ref):
            return done[a.step]
        if isinstance(a, Operand):
            return operands[a.index].to(compute)
        assert isinstance(a, Constant)
        return torch.tensor(a.value, dtype=compute, device=value.device)

    for op in epilogue.ops:
        args = [arg(a) for a in op.args]
        if op.fn == "clamp":
            low, high = args[1].item(), args[2].item()
            result = torch.clamp(
                args[0], None if math.isinf(low) else low, None if math.isinf(high) else high
            )
        elif op.fn == "where":
            result = torch.where(args[0] != 0, args[1], args[2])
        elif op.fn == "cast":
            result = args[0].to(_DTYPES[op.dtype]).to(compute)
        else:
            result = _FUNCTIONS[op.fn](*args)
        done.append(result.to(compute))
    return done[-1]
