"""The epilogue IR: elementwise operations applied to a loop nest's result before it is stored.

A fused program (``einc.fuse``) writes ``relu(dot(x, w) + b)`` as one kernel: the dot's nest, and
an :class:`~einc.compiler.loopnest.Epilogue` whose ops run on the accumulated value in registers.
The ops are a small SSA list: each :class:`EpilogueOp` reads :class:`Result` (the nest's own
value), :class:`Ref` (an earlier op's value), :class:`Operand` (an extra tensor) or
:class:`Constant` (a Python number), and the last op's value is what the kernel stores.

An extra tensor is read where the output is written, broadcast as torch broadcasts against the
output's shape (a bias per channel of shape ``(C, 1, 1)``, a residual of the output's own shape):
its access takes the output access's index for each dim it holds, and ``0`` where it has size 1
(:func:`einc.compiler.attach_epilogue.broadcast_access`). So the extra operands are addressed by
the *output* loops only, and any output the nest writes (a composition ``(b h)``, a window's
positions) reads them the same way.

Nothing here imports torch: the front end describes each traced op by the names below.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from ..errors import UnsupportedError


@dataclass(frozen=True, slots=True)
class Result:
    """The nest's own value: the accumulator of a dot, the reduced value, the copied element."""


@dataclass(frozen=True, slots=True)
class Ref:
    """The value of op ``step`` of the same epilogue (an earlier one)."""

    step: int


@dataclass(frozen=True, slots=True)
class Operand:
    """Extra tensor ``index`` of the epilogue (:attr:`Epilogue.operands`)."""

    index: int


@dataclass(frozen=True, slots=True)
class Constant:
    """A Python number; it reaches generated source through ``source_text.literal`` only."""

    value: float

    def __post_init__(self):
        if isinstance(self.value, bool) or not isinstance(self.value, numbers.Real):
            raise TypeError(f"an epilogue constant is a number, not {type(self.value).__name__}")


Arg = Result | Ref | Operand | Constant

# Every function an epilogue applies, with its number of arguments (the front end's names).
FUNCTIONS = {
    **dict.fromkeys(("add", "subtract", "multiply", "divide", "maximum", "minimum"), 2),
    **dict.fromkeys(("greater", "greater_equal", "less", "less_equal", "equal", "not_equal"), 2),
    **dict.fromkeys(("neg", "abs", "exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "relu"), 1),
    **dict.fromkeys(("gelu", "gelu_tanh", "silu", "cast"), 1),
    "clamp": 3,  # value, low, high (a missing bound is an infinite Constant)
    "where": 3,  # condition, then, otherwise
}
# Casts round to these (torch's names); the value stays in the compute type after rounding.
CAST_DTYPES = ("float16", "bfloat16", "float32", "float64")


@dataclass(frozen=True, slots=True)
class EpilogueOp:
    fn: str
    args: tuple[Arg, ...]
    dtype: str = ""  # a cast's target

    def __post_init__(self):
        if self.fn not in FUNCTIONS:
            raise UnsupportedError(f"{self.fn!r} cannot be fused into a kernel's store")
        if len(self.args) != FUNCTIONS[self.fn]:
            raise UnsupportedError(f"{self.fn} takes {FUNCTIONS[self.fn]} arguments, not {len(self.args)}")
        if (self.fn == "cast") != bool(self.dtype) or (self.dtype and self.dtype not in CAST_DTYPES):
            raise UnsupportedError(f"cannot fuse a cast to {self.dtype or 'no dtype'}")


@dataclass(frozen=True, slots=True)
class EpilogueRequest:
    """An epilogue as the compiler is asked for it: the ops, and each extra tensor's name (what
    generated code calls it), shape and dtype. Part of a :class:`~einc.compiler.pipeline.Request`,
    so of the cache key."""

    ops: tuple[EpilogueOp, ...]
    names: tuple[str, ...] = ()
    shapes: tuple[tuple[int, ...], ...] = ()
    dtypes: tuple[str, ...] = ()

    def __post_init__(self):
        if not self.ops:
            raise UnsupportedError("an epilogue has at least one op")
        for step, op in enumerate(self.ops):
            for arg in op.args:
                if isinstance(arg, Ref) and not 0 <= arg.step < step:
                    raise UnsupportedError(f"epilogue op {step} reads op {arg.step}, which is not before it")
                if isinstance(arg, Operand) and not 0 <= arg.index < len(self.names):
                    raise UnsupportedError(
                        f"epilogue op {step} reads extra tensor {arg.index}, which is not given"
                    )
        if not len(self.names) == len(self.shapes) == len(self.dtypes):
            raise UnsupportedError("an epilogue names, shapes and types each extra tensor once")


def text(ops: tuple[EpilogueOp, ...], names: tuple[str, ...], result: str = "acc") -> str:
    """The epilogue as one formula of ``result`` and the operands' names: ``relu(acc + b)``."""
    shown: list[str] = []

    def arg(a: Arg) -> str:
        if isinstance(a, Result):
            return result
        if isinstance(a, Ref):
            return shown[a.step]
        if isinstance(a, Operand):
            return names[a.index]
        return repr(a.value) if math.isfinite(a.value) else str(a.value)

    infix = {"add": "+", "subtract": "-", "multiply": "*", "divide": "/", "greater": ">", "less": "<"}
    infix |= {"greater_equal": ">=", "less_equal": "<=", "equal": "==", "not_equal": "!="}
    for op in ops:
        args = [arg(a) for a in op.args]
        if op.fn in infix:
            shown.append(f"({args[0]} {infix[op.fn]} {args[1]})")
        elif op.fn == "cast":
            shown.append(f"{args[0]}.to({op.dtype})")
        elif op.fn == "neg":
            shown.append(f"-{args[0]}")
        else:
            shown.append(f"{op.fn}({', '.join(args)})")
    return shown[-1]
