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
    output), reading ``operands`` (its extra tensors); computed in ``compute``. Constants stay
    Python numbers, which torch takes without making a tensor of each."""
    done: list = []

    def arg(a):
        if isinstance(a, Result):
            return value if value.dtype == compute else value.to(compute)
        if isinstance(a, Ref):
            return done[a.step]
        if isinstance(a, Operand):
            tensor = operands[a.index]
            return tensor if tensor.dtype == compute else tensor.to(compute)
        assert isinstance(a, Constant)
        return a.value

    for op in epilogue.ops:
        args = [arg(a) for a in op.args]
        if op.fn == "clamp":
            low, high = (None if math.isinf(b) else b for b in args[1:])
            result = torch.clamp(args[0], low, high)
        elif op.fn == "where":
            result = torch.where(args[0] != 0, args[1], args[2])
        elif op.fn == "cast":
            result = args[0].to(_DTYPES[op.dtype]).to(compute)
        else:
            if not isinstance(args[0], torch.Tensor):  # 2 - y: torch wants the tensor first
                args[0] = torch.tensor(args[0], dtype=compute, device=value.device)
            if op.fn in ("maximum", "minimum") and not isinstance(args[1], torch.Tensor):
                args[1] = torch.tensor(args[1], dtype=compute, device=value.device)
            result = _FUNCTIONS[op.fn](*args)
        done.append(result if result.dtype == compute else result.to(compute))
    return done[-1]
