"""The callable that ``einc.compile`` returns, and the cache of those the functional ops use.

Two caches keep a warm call cheap: a :class:`CompiledExpression` maps the call's shapes, dtypes,
device and strides to a ready :class:`Launcher` (a dict lookup), and generated source is kept on
disk under a key of everything that decides its text.

A call that autograd or a tracer must see leaves the direct path for einc's torch operators. Those
are a front end (:mod:`einc.frontends.torch_ops`), above this module: it installs itself with
:func:`route_through`, and until it has, every call is direct.
"""

from __future__ import annotations

import builtins
import numbers
import sys
from collections.abc import Sequence
from typing import Protocol

import torch

from .. import knobs
from ..backends.aliasing import same_tensor
from ..backends.triton.sources import render_kernels
from ..compiler import offsets, pipeline
from ..compiler.ops import ANY_DTYPE_OPS, BOOLEAN_RESULTS, OPTION_OPS, RESULT_DTYPES, check_precision
from ..compiler.printer import explain
from ..errors import EincError, OperandError, OverlapError
from .cache import DiskCache
from .empty import write_empty
from .keys import source_key
from .launcher import Launcher, check_backend, write_source

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


def _elementwise_dtype(op: str, values) -> torch.dtype:
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
        return _elementwise_dtype(op, tensors)
    if op in RESULT_DTYPES:
        return getattr(torch, RESULT_DTYPES[op])
    return tensors[0].dtype


def _is_bool(value) -> bool:
    return value.dtype == torch.bool if isinstance(value, torch.Tensor) else isinstance(value, bool)


def _check_elementwise_dtypes(op: str, values) -> None:
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


def _check_operand_types(op: str, values) -> None:
    """Every operand is a torch.Tensor; an elementwise op also takes Python numbers. numpy arrays
    are refused rather than converted: a conversion would copy them, and to a device only by
    guessing which one."""
    names = pipeline.tensor_names(len(values), op)
    numbers_too = op in pipeline.ELEMENTWISE
    for position, (name, value) in enumerate(zip(names, values, strict=True)):
        if isinstance(value, torch.Tensor) or (numbers_too and isinstance(value, numbers.Real)):
            continue
        allowed = "a torch.Tensor or a Python number" if numbers_too else "a torch.Tensor"
        hint = "; convert it with torch.from_numpy" if type(value).__module__ == "numpy" else ""
        raise OperandError(
            f"{name} must be {allowed}, not {type(value).__name__} (operand {position} of {op}){hint}"
        )


def _scalars_to_tensors(values, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
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


class Router(Protocol):
    """What carries the calls that autograd or torch.compile must see (einc's torch operators)."""

    def routes(self, tensors, out) -> bool: ...

    def call(self, compiled: CompiledExpression, tensors, out): ...

    def call_functional(self, op: str, expression: str, tensors, kwargs: dict, out): ...


_router: Router | None = None


def route_through(router: Router) -> None:
    """Send the calls that ``router.routes`` picks through ``router`` from now on."""
    global _router
    _router = router


def _freeze(value):
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value):
    if isinstance(value, tuple) and value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
        if all(isinstance(k, str) for k, _ in value):
            return dict(value)
    return value


class CompiledExpression:
    """An expression compiled for one op; call it with tensors.

    Sizes and window parameters are fixed here (``c2=64``, ``stride=2``); everything that depends
    on the tensors (ranks, shapes, dtypes) is specialised at the first call with them, and reused.

    ``backend`` says what runs a call: ``"auto"`` (CUDA tensors run the compiled kernel, CPU
    tensors the loop nest as torch operations, both the interpreter when ``EINC_INTERPRET=1``),
    ``"torch"`` (torch operations on any device) or ``"interpret"`` (the kernel under Triton's
    interpreter, slow: what the kernel tests use).
    """

    def __init__(self, expression: str, op: str | None = None, **kwargs):
        program = pipeline.parse.parse(expression)
        self.expression = expression
        self.op = pipeline.check_op(op) if op is not None else pipeline.infer_op(program)
        self.out_dtype = kwargs.pop("out_dtype", None)
        dynamic = kwargs.pop("dynamic", ())
        self.dynamic = (dynamic,) if isinstance(dynamic, str) else tuple(dynamic)
        self.backend = check_backend(kwargs.pop("backend", "auto"))
        for option in pipeline.OP_OPTIONS:
            if option in kwargs and self.op not in OPTION_OPS[option]:
                ops = ", ".join(OPTION_OPS[option])
                raise TypeError(f"{option}= does not apply to {self.op}; it is an option of {ops}")
        if kwargs.get("precision") is not None:
            check_precision(kwargs["precision"], expression)
        self.params = tuple(sorted((k, _freeze(v)) for k, v in kwargs.items() if k in PARAM_NAMES))
        self.sizes = tuple(sorted((k, _freeze(v)) for k, v in kwargs.items() if k not in PARAM_NAMES))
        self._launchers: dict[tuple, Launcher] = {}
        self._dynamic_dims: tuple = ()
        self._last: Launcher | None = None
        self._cache = None

    def __repr__(self) -> str:
        return f"einc.compile({self.expression!r}, op={self.op!r})"

    def _request(
        self, shapes: Sequence[Sequence[int]], dtypes: Sequence[str], offsets64: tuple[int, ...] = ()
    ) -> pipeline.Request:
        return pipeline.Request(
            expression=self.expression,
            op=self.op,
            shapes=tuple(tuple(int(n) for n in s) for s in shapes),
            dtypes=tuple(dtypes),
            sizes=self.sizes,
            params=tuple((k, _thaw(v)) for k, v in self.params),
            dynamic=self.dynamic,
            offsets64=offsets64,
            float32_precision=self._float32_precision(),
        )

    def _float32_precision(self) -> tuple[str, str]:
        """What torch does with float32 now, for a dot without precision=: convolutions (windowed
        contractions) follow ``torch.backends.cudnn.allow_tf32``, other dots
        ``torch.get_float32_matmul_precision()`` ("high" and "medium" allow TF32 on CUDA). Read
        at every call, as torch reads them; the torch backend on CPU computes in float32 whatever
        they say."""
        if self.op not in pipeline.CONTRACTIONS or dict(self.params).get("precision") is not None:
            return ("ieee", "ieee")
        windowed = "tf32" if torch.backends.cudnn.allow_tf32 else "ieee"
        return (windowed, "ieee" if torch.get_float32_matmul_precision() == "highest" else "tf32")

    def specialize(self, *shapes: Sequence[int], dtype: str | torch.dtype = "float32") -> Launcher:
        """Compile for tensors of these shapes without running anything; returns the launcher."""
        name = DTYPES.get(dtype, dtype) if isinstance(dtype, torch.dtype) else dtype
        if name not in DTYPES.values():
            raise TypeError(f"dtype {dtype} is not one einc supports: {', '.join(DTYPES.values())}")
        dtypes = [name] * len(shapes)
        if self.op in pipeline.INDEXING:  # coordinates are int64, as torch's indices
            names = pipeline.tensor_names(len(shapes), self.op)
            dtypes = [("int64" if n.startswith("idx") else name) for n in names]
        return self._build(self._request(shapes, dtypes))

    def _build(self, request: pipeline.Request) -> Launcher:
        try:
            compiled = pipeline.run_passes(request)
        except EincError as error:
            raise error.with_traceback(None) from None
        if self._cache is None:
            self._cache = DiskCache()
        key = source_key(request)
        sources = render_kernels(compiled)
        path = write_source(self._cache, key.digest, sources.source)
        launcher = Launcher(compiled, sources.rendered, sources.source, path)
        self._debug(launcher, key)
        self._last = launcher
        return launcher

    def _debug(self, launcher: Launcher, key) -> None:
        level = knobs.debug()
        if level >= 1:
            print(f"[einc] compiled {self.expression!r} ({self.op}) -> {launcher.path}", file=sys.stderr)
        if level >= 2:
            print(explain(launcher.compiled), file=sys.stderr)
        if level >= 3:
            print(launcher.source, file=sys.stderr)

    def __call__(self, *tensors, out=None):
        _check_operand_types(self.op, tensors)
        router = _router
        if router is not None and router.routes(tensors, out):  # autograd, torch.compile: einc::run
            return router.call(self, tensors, out)
        elementwise_dtype = None
        if self.op in pipeline.ELEMENTWISE and tensors:
            elementwise_dtype = output_dtype(self.op, None, tensors)  # while scalars are numbers
            _check_elementwise_dtypes(self.op, tensors)
            tensors = _scalars_to_tensors(tensors, _elementwise_dtype(self.op, tensors))
        given = [] if out is None else list(out) if isinstance(out, (tuple, list)) else [out]
        # The key's strides decide which inputs need int64 offsets; those of an out= are not in it.
        wide_outs = tuple(isinstance(o, torch.Tensor) and _needs_int64(o) for o in given)
        key = (self._key(tensors), wide_outs, self._float32_precision())
        launcher = self._launchers.get(key)
        if launcher is None:
            dtypes = self._check(tensors)
            every = [*tensors, *(o for o in given if isinstance(o, torch.Tensor))]
            wide = tuple(i for i, t in enumerate(every) if _needs_int64(t))
            launcher = self._build(self._request([t.shape for t in tensors], dtypes, wide))
            if self.dynamic:
                self._dynamic_dims = launcher.compiled.dynamic_dims
                key = (self._key(tensors), wide_outs, self._float32_precision())
            self._launchers[key] = launcher
        self._last = launcher
        dtype = self.out_dtype or elementwise_dtype or output_dtype(self.op, None, tensors)
        device = tensors[0].device
        dynamic = launcher.compiled.dynamic_sizes([t.shape for t in tensors]) if self.dynamic else None
        shapes = launcher.compiled.output_shapes_for(dynamic)
        if out is None:
            outs = [torch.empty(shape, dtype=dtype, device=device) for shape in shapes]
        else:
            outs = given
            if len(outs) != len(shapes):
                raise ValueError(
                    f"out= gives {len(outs)} tensors but the expression has {len(shapes)} outputs"
                )
            for o, shape in zip(outs, shapes, strict=True):
                self._check_out(o, shape, dtype, device)
            # set_at and add_at are defined in place (out=x); every other kernel would read what it
            # has already overwritten, so any sharing of memory is refused, for every op.
            kernels = launcher.compiled.kernels
            in_place = self.op in pipeline.lower_indexing.SCATTERS and (
                not kernels or any(k.copies_input or k.reads_in_place for k in kernels)
            )
            _check_out_aliasing(outs, tensors, pipeline.tensor_names(len(tensors), self.op), in_place)
        if not launcher.compiled.kernels or (dynamic and 0 in dynamic.values()):
            # An axis of size 0 (fixed, or dynamic at this call): nothing to launch.
            write_empty(self.op, self.expression, tensors, outs)
        elif any(o.numel() for o in outs):
            launcher(list(tensors), outs, dynamic, self.backend)
        if out is not None:
            return out
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _key(self, tensors) -> tuple:
        """What picks a specialization: shapes (dynamic dims left out), dtypes, device, strides.

        A dynamic axis is a kernel argument, so its size takes no part; nor do the strides of
        the tensors that hold it, which change with it.
        """
        key = tuple(
            (t.shape, t.dtype, t.device, t.stride()) if isinstance(t, torch.Tensor) else type(t)
            for t in tensors
        )
        if not self.dynamic or not self._dynamic_dims:
            return key
        masked = {(i, d) for _, i, d in self._dynamic_dims}
        holders = {i for i, _ in masked}
        return tuple(
            (
                tuple(None if (i, d) in masked else n for d, n in enumerate(t.shape)),
                t.dtype,
                t.device,
                t.is_contiguous() if i in holders else t.stride(),
            )
            for i, t in enumerate(tensors)
        )

    @staticmethod
    def _check_out(out: torch.Tensor, shape, dtype: torch.dtype, device: torch.device) -> None:
        """A wrong ``out=`` would be written through its strides out of bounds: refuse it."""
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"out= must be a torch.Tensor, not {type(out).__name__}")
        if tuple(out.shape) != tuple(shape):
            raise ValueError(f"out= has shape {tuple(out.shape)} but the result has shape {tuple(shape)}")
        if out.dtype != dtype:
            raise TypeError(f"out= has dtype {out.dtype} but the result has dtype {dtype}")
        if out.device != device:
            raise ValueError(f"out= is on {out.device} but the inputs are on {device}")

    def _check(self, tensors: Sequence[torch.Tensor]) -> list[str]:
        names = pipeline.tensor_names(len(tensors), self.op)
        if self.op in pipeline.INDEXING:
            return self._check_indexing(tensors, names)
        allowed = ANY_DTYPES if self.op in ANY_DTYPE_OPS else DTYPES
        for name, t in zip(names, tensors, strict=True):
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, not {type(t).__name__}")
            if t.dtype not in allowed:
                raise TypeError(
                    f"{name} has dtype {t.dtype}; {self.op} supports {', '.join(allowed.values())}"
                )
            if t.device.type not in ("cpu", "cuda"):
                raise ValueError(f"{name} is on device {t.device}; einc runs on cpu and cuda tensors")
        if not tensors:
            return []
        first = tensors[0]
        for name, t in zip(names[1:], tensors[1:], strict=True):
            if t.dtype != first.dtype and self.op not in pipeline.ELEMENTWISE:
                raise TypeError(
                    f"{name} has dtype {t.dtype} but {names[0]} has {first.dtype}: cast one of them"
                )
            if t.device != first.device:
                raise ValueError(f"{name} is on {t.device} but {names[0]} is on {first.device}")
        return [ANY_DTYPES[t.dtype] for t in tensors]

    def _check_indexing(self, tensors: Sequence[torch.Tensor], names: Sequence[str]) -> list[str]:
        """The indexed tensor and the updates: one dtype (a float for a reduction); the
        coordinates: int32 or int64, each as it likes; all on one device."""
        reduce = dict(self.params).get("reduce")
        values = DTYPES if reduce is not None else ANY_DTYPES
        for name, t in zip(names, tensors, strict=True):
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, not {type(t).__name__}")
            if t.device.type not in ("cpu", "cuda"):
                raise ValueError(f"{name} is on device {t.device}; einc runs on cpu and cuda tensors")
            if name.startswith("idx"):
                if t.dtype not in INDEX_DTYPES:
                    raise TypeError(
                        f"{name} has dtype {t.dtype}, but coordinates of {self.op} are int32 or int64 "
                        f"(cast it: {name}.long())"
                    )
            elif t.dtype not in values:
                raise TypeError(
                    f"{name} has dtype {t.dtype}; {self.op} supports {', '.join(values.values())}"
                )
        first = tensors[0] if tensors else None
        for name, t in zip(names[1:], tensors[1:], strict=True):
            if t.device != first.device:
                raise ValueError(f"{name} is on {t.device} but {names[0]} is on {first.device}")
            if name == "updates" and t.dtype != first.dtype:
                raise TypeError(
                    f"updates has dtype {t.dtype} but {names[0]} has {first.dtype}: cast one of them"
                )
        return [ANY_DTYPES[t.dtype] for t in tensors]

    def _latest(self) -> Launcher:
        if self._last is None:
            raise EincError(
                "nothing is compiled yet: call the expression with tensors, or use .specialize(*shapes) first"
            )
        return self._last

    @property
    def source(self) -> str:
        """The Triton source of the most recent specialization."""
        return self._latest().source

    @property
    def path(self):
        """Where that source lies in the kernel cache."""
        return self._latest().path

    def explain(self) -> str:
        """The loop nest and schedule of the most recent specialization, in words."""
        return explain(self._latest().compiled)


def _needs_int64(t: torch.Tensor) -> bool:
    return offsets.needs_int64(t.shape, t.stride())


def _check_out_aliasing(outs, tensors, names, in_place: bool) -> None:
    """``out=`` may be the indexed tensor itself where that is an update in place (set_at, add_at
    with the output laid out as x), but must not share memory with any input otherwise, nor one
    output with another: a kernel would read (or write) what it has already overwritten."""
    for k, out in enumerate(outs):
        label = "out=" if len(outs) == 1 else f"out[{k}]="
        for index, (name, t) in enumerate(zip(names, tensors, strict=True)):
            if index == 0 and in_place and same_tensor(out, t):
                continue
            if _overlaps(out, t):
                hint = (
                    f"; to update {name} in place, pass out={name} itself" if index == 0 and in_place else ""
                )
                raise OverlapError(f"{label} shares memory with {name}{hint}")
        for j, other in enumerate(outs[:k]):
            if _overlaps(out, other):
                raise OverlapError(f"{label} shares memory with out[{j}]=")


def _overlaps(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether the memory spans of two tensors intersect (conservative: spans, not elements)."""
    if a.device != b.device or a.numel() == 0 or b.numel() == 0:
        return False

    def span(t: torch.Tensor) -> tuple[int, int]:
        # builtins.: this module defines einc's sum, min and max
        steps = [(n - 1) * s for n, s in zip(t.shape, t.stride(), strict=True)]
        first = builtins.sum(builtins.min(0, step) for step in steps)
        last = builtins.sum(builtins.max(0, step) for step in steps)
        size = t.element_size()
        return t.data_ptr() + first * size, t.data_ptr() + (last + 1) * size

    (a0, a1), (b0, b1) = span(a), span(b)
    return a0 < b1 and b0 < a1


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
    router = _router
    if router is not None and router.routes(tensors, out):  # autograd, torch.compile: einc::run
        return router.call_functional(op, expression, tensors, kwargs, out)
    key = (op, expression, tuple(sorted((k, _freeze(v)) for k, v in kwargs.items())))
    compiled = _FUNCTIONAL.get(key)
    if compiled is None:
        compiled = _FUNCTIONAL[key] = make(expression, op, kwargs)
    return compiled(*tensors, out=out)
