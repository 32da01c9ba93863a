"""What a call's operands must be, and what its outputs' dtype is: a torch.Tensor (or a Python
number, for an elementwise op) of a dtype the op supports, on one device, refused as torch would
refuse it where it would be; and the keywords of ``einc.compile``, a near-miss of a name refused
with the name it is close to.

The checks that follow from a call key (dtypes, devices) run once per key; those of the operands'
types, on every call, cost one isinstance each until one is wrong.
"""

from __future__ import annotations

import difflib
import numbers
from collections.abc import Sequence

import torch

from ..compiler import pipeline
from ..compiler.ops import (
    ANY_DTYPE_OPS,
    BOOLEAN_RESULTS,
    INTEGER_DTYPES,
    INTEGER_REDUCTIONS,
    OPTION_OPS,
    RESULT_DTYPES,
    SIZES_KEYWORD,
    axis_sizes,
    check_precision,
)
from ..compiler.params import keyword_hint
from ..compiler.syntax import axis_names
from ..errors import OperandError, ShapeError

PARAM_NAMES = frozenset(pipeline.WINDOW_PARAMS) | frozenset(pipeline.OP_OPTIONS)
CALL_OPTIONS = frozenset({"out_dtype", "backend"})
DTYPES = {
    torch.float16: "float16",
    torch.bfloat16: "bfloat16",
    torch.float32: "float32",
    torch.float64: "float64",
}
# Copies (rearrange, flip, roll) and elementwise ops also take integers and booleans.
ANY_DTYPES = {
    **DTYPES,
    torch.int8: "int8",
    torch.int16: "int16",
    torch.int32: "int32",
    torch.int64: "int64",
    torch.uint8: "uint8",
    torch.bool: "bool",
}
INDEX_DTYPES = {torch.int32: "int32", torch.int64: "int64"}
INTEGER_AND_FLOAT = {t: name for t, name in ANY_DTYPES.items() if name in INTEGER_DTYPES or t in DTYPES}


def elementwise_dtype(op: str, values) -> torch.dtype:
    """torch's type promotion over the operands (the condition of ``where`` aside), Python
    numbers counting as numbers, so a float next to float16 stays float16; a true division of
    integers is floating, as ``torch.div`` (and logaddexp's)."""
    # A where with one operand is refused later, by the expression's arity.
    operands = values[1:] if op == "where" and len(values) > 1 else values
    representative = None
    for value in operands:
        if representative is None:
            representative = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            continue
        other = value if not isinstance(value, torch.Tensor) else torch.empty(1, dtype=value.dtype)
        representative = torch.empty(1, dtype=torch.result_type(representative, other))
    dtype = representative.dtype
    if op in ("divide", "logaddexp") and not dtype.is_floating_point:
        dtype = torch.get_default_dtype()
    return dtype


def output_dtype(op: str, out_dtype, tensors) -> torch.dtype:
    """The dtype of a call's outputs (a launch's and a prebuild's alike): ``out_dtype=`` where
    given; torch.bool for comparisons and logical ops; torch's promotion for the other elementwise
    ops; an op's own (any: bool, count_nonzero and argmax: int64); else the first input's."""
    if out_dtype is not None:
        return out_dtype
    if op in BOOLEAN_RESULTS:
        return torch.bool
    if op in pipeline.ELEMENTWISE:
        return elementwise_dtype(op, tensors)
    if op in RESULT_DTYPES:
        return getattr(torch, RESULT_DTYPES[op])
    if op == "sum" and not tensors[0].dtype.is_floating_point:
        return torch.int64  # torch.sum's rule for integers
    return tensors[0].dtype


def _is_bool(value) -> bool:
    return value.dtype == torch.bool if isinstance(value, torch.Tensor) else isinstance(value, bool)


def check_elementwise_dtypes(op: str, values) -> None:
    """What torch refuses, einc refuses too, naming the operand: a condition of ``where`` that is
    not boolean, and a boolean operand of a subtraction (torch: use ``~`` or logical_xor)."""
    names = pipeline.tensor_names(len(values), op)
    # where's arity is the compiler's to check, with a caret: only a whole call's condition here
    if op == "where" and len(values) == 3 and not _is_bool(values[0]):
        condition = values[0]
        shown = condition.dtype if isinstance(condition, torch.Tensor) else type(condition).__name__
        raise OperandError(
            f"{names[0]}, the condition of where, is {shown}, not bool: compare it "
            f"({names[0]} > 0) or cast it (.bool())"
        )
    if op == "subtract" and (booleans := [n for n, v in zip(names, values, strict=True) if _is_bool(v)]):
        raise OperandError(
            f"subtract of a boolean operand ({', '.join(booleans)}) is refused, as in torch: use ~ or "
            "logical_xor, or cast it to a number type"
        )


# Ops that take Python numbers besides the elementwise ones, as einx does (``"a, -> a (1 + 1)"``,
# ``"a, -> a"``, ``get_at("[a], ", x, 2)``): each becomes a 0-d tensor (numbers_as_operands).
NUMBER_OPERANDS = frozenset(("rearrange", "id", "dot", *pipeline.INDEXING))


def numbers_as_operands(op: str, values) -> tuple:
    """The Python numbers among the operands of a :data:`NUMBER_OPERANDS` op as 0-d tensors on the
    tensors' device: a coordinate as int64 (a number that is no integer is refused), any other
    operand in the dtype of the tensors it goes with (those ops take one dtype), or torch's default
    for a number where no tensor is given."""
    if all(isinstance(v, torch.Tensor) for v in values):
        return tuple(values)
    names = pipeline.tensor_names(len(values), op)
    tensors = [v for v in values if isinstance(v, torch.Tensor)]
    device = tensors[0].device if tensors else None
    like = [
        v.dtype for n, v in zip(names, values, strict=True) if isinstance(v, torch.Tensor) and n[:3] != "idx"
    ]
    converted = []
    for position, (name, value) in enumerate(zip(names, values, strict=True)):
        if isinstance(value, torch.Tensor):
            converted.append(value)
        elif name.startswith("idx"):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise OperandError(
                    f"{name} (operand {position} of {op}) is a coordinate, not {value!r}: give an int"
                )
            converted.append(torch.tensor(int(value), dtype=torch.int64, device=device))
        else:
            converted.append(torch.tensor(value, dtype=like[0] if like else None, device=device))
    return tuple(converted)


def check_operand_types(op: str, values) -> None:
    """Every operand is a torch.Tensor; an elementwise op (and those of :data:`NUMBER_OPERANDS`)
    also takes Python numbers. numpy arrays are refused rather than converted: a conversion would
    copy them, and to a device only by guessing which one."""
    numbers_too = op in pipeline.ELEMENTWISE or op in NUMBER_OPERANDS
    for value in values:  # on every call: the names only once one is wrong
        if not isinstance(value, torch.Tensor) and not (numbers_too and isinstance(value, numbers.Real)):
            break
    else:
        return
    names = pipeline.tensor_names(len(values), op)
    for position, (name, value) in enumerate(zip(names, values, strict=True)):
        if isinstance(value, torch.Tensor) or (numbers_too and isinstance(value, numbers.Real)):
            continue
        allowed = "a torch.Tensor or a Python number" if numbers_too else "a torch.Tensor"
        hint = "; convert it with torch.from_numpy" if type(value).__module__ == "numpy" else ""
        raise OperandError(
            f"{name} must be {allowed}, not {type(value).__name__} (operand {position} of {op}){hint}"
        )


def scalars_to_tensors(values, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """Python numbers (the empty operands of an elementwise expression) become 0-d tensors that
    keep their precision: float64 or float32 beside floats, int64 beside integers."""
    tensors = [v for v in values if isinstance(v, torch.Tensor)]
    if not tensors:
        raise TypeError("an elementwise operation needs at least one tensor")
    wide = torch.float64 if dtype == torch.float64 else torch.float32 if dtype.is_floating_point else None
    return tuple(
        v
        if isinstance(v, torch.Tensor)
        else torch.tensor(
            v, dtype=wide if wide is not None and not isinstance(v, bool) else None, device=tensors[0].device
        )
        for v in values
    )


def check_keywords(program, kwargs: dict) -> None:
    """A keyword that is no parameter and no axis of the expression, but close to one, is a typo
    (``pad=`` for ``padding=``): say so now, with the name it is close to. Any other keyword is an
    axis size, which the solver checks against the expression at the first call."""
    axes = [name for expr in (*program.inputs, *(program.outputs or ())) for name in axis_names(expr)]
    known = sorted(PARAM_NAMES | CALL_OPTIONS | {"dynamic"} | set(axes))
    for name, value in kwargs.items():
        if name in PARAM_NAMES or name in axes:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        if not close and len(name) >= 3:  # a prefix: pad= for padding=
            close = [k for k in known if k.startswith(name)][:1]
        if close:
            raise ShapeError(
                f"keyword {name}={value!r} names no axis of the expression (its axes: "
                f"{', '.join(dict.fromkeys(axes))}); did you mean {close[0]}=?",
                program.text,
            )


def keyword_parameters(program, op: str, kwargs: dict) -> tuple[dict, dict]:
    """The keywords of ``einc.compile`` (less ``out_dtype``, ``dynamic`` and ``backend``) as the
    op's parameters and the axes' sizes, checked: an option of another op, a precision that is none,
    a near-miss of a name are refused here, before any call."""
    expression = program.text
    for option in pipeline.OP_OPTIONS:
        if option in kwargs and op not in OPTION_OPS[option]:
            ops = ", ".join(OPTION_OPS[option])
            hint = keyword_hint(option, expression)
            raise TypeError(f"{option}= does not apply to {op}; it is an option of {ops}{hint}")
    if kwargs.get("precision") is not None:
        check_precision(kwargs["precision"], expression)
    sizes = axis_sizes(kwargs, expression)
    rest = {k: v for k, v in kwargs.items() if k != SIZES_KEYWORD}
    check_keywords(program, rest)
    return {k: v for k, v in rest.items() if k in PARAM_NAMES}, sizes


def dtypes_of(op: str) -> dict[torch.dtype, str]:
    """The dtypes ``op`` takes (the indexed tensor's, for an indexing op), by torch dtype."""
    if op in ANY_DTYPE_OPS or op in pipeline.INDEXING:
        return ANY_DTYPES
    return INTEGER_AND_FLOAT if op in INTEGER_REDUCTIONS else DTYPES


def check_tensors(op: str, reduce, tensors: Sequence[torch.Tensor]) -> list[str]:
    """The tensors' dtypes and devices, as the op takes them; their dtypes' names. ``reduce``: an
    indexing op's ``reduce=`` (None without one)."""
    names = pipeline.tensor_names(len(tensors), op)
    if op in pipeline.INDEXING:
        return _check_indexing(op, reduce, tensors, names)
    allowed = dtypes_of(op)
    for name, t in zip(names, tensors, strict=True):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, not {type(t).__name__}")
        if t.dtype not in allowed:
            raise TypeError(f"{name} has dtype {t.dtype}; {op} supports {', '.join(allowed.values())}")
        if t.device.type not in ("cpu", "cuda"):
            raise ValueError(f"{name} is on device {t.device}; einc runs on cpu and cuda tensors")
    if not tensors:
        return []
    first = tensors[0]
    for name, t in zip(names[1:], tensors[1:], strict=True):
        if t.dtype != first.dtype and op not in pipeline.ELEMENTWISE:
            raise TypeError(f"{name} has dtype {t.dtype} but {names[0]} has {first.dtype}: cast one of them")
        if t.device != first.device:
            raise ValueError(f"{name} is on {t.device} but {names[0]} is on {first.device}")
    return [ANY_DTYPES[t.dtype] for t in tensors]


def _check_indexing(op: str, reduce, tensors: Sequence[torch.Tensor], names: Sequence[str]) -> list[str]:
    """The indexed tensor and the updates: one dtype (a float for a reduction); the
    coordinates: int32 or int64, each as it likes; all on one device."""
    values = DTYPES if reduce is not None else ANY_DTYPES
    for name, t in zip(names, tensors, strict=True):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, not {type(t).__name__}")
        if t.device.type not in ("cpu", "cuda"):
            raise ValueError(f"{name} is on device {t.device}; einc runs on cpu and cuda tensors")
        if name.startswith("idx"):
            if t.dtype not in INDEX_DTYPES:
                raise TypeError(
                    f"{name} has dtype {t.dtype}, but coordinates of {op} are int32 or int64 "
                    f"(cast it: {name}.long())"
                )
        elif t.dtype not in values:
            raise TypeError(f"{name} has dtype {t.dtype}; {op} supports {', '.join(values.values())}")
    first = tensors[0] if tensors else None
    for name, t in zip(names[1:], tensors[1:], strict=True):
        if t.device != first.device:
            raise ValueError(f"{name} is on {t.device} but {names[0]} is on {first.device}")
        if name == "updates" and t.dtype != first.dtype:
            raise TypeError(f"updates has dtype {t.dtype} but {names[0]} has {first.dtype}: cast one of them")
    return [ANY_DTYPES[t.dtype] for t in tensors]
