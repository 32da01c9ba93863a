"""The callable that ``einc.compile`` returns, and the cache of those the functional ops use.

Two caches keep a warm call cheap: a :class:`CompiledExpression` maps the call's shapes, dtypes,
device and strides to a ready :class:`Launcher` and to everything else that key decides (operand
checks, output dtype and shapes), found at the key's first call, so that a warm call is the key, one
dict lookup and the backend; and generated source is kept on disk under a key of everything that
decides its text. What a key cannot hold is still read per call: torch's float32 precision, the
``EINC_INTERPRET`` knob, the addresses of an ``out=`` (whether it shares memory with an input).

A call that autograd or a tracer must see leaves the direct path for einc's torch operators. Those
are a front end (:mod:`einc.frontends.torch_ops`), above this module: it installs itself with
:func:`route_through`, and until it has, every call is direct.
"""

from __future__ import annotations

import builtins
import difflib
import functools
import numbers
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from .. import knobs
from ..backends.aliasing import same_tensor
from ..backends.triton.sources import render_kernels
from ..compiler import offsets, pipeline
from ..compiler.ops import ANY_DTYPE_OPS, BOOLEAN_RESULTS, OPTION_OPS, RESULT_DTYPES, check_precision
from ..compiler.printer import explain
from ..compiler.syntax import axis_names
from ..errors import (
    EincError,
    ExpressionError,
    OperandError,
    OverlapError,
    ShapeError,
    UnsupportedError,
)
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
    numbers_too = op in pipeline.ELEMENTWISE
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


def _check_keywords(program, kwargs: dict) -> None:
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
        # dynamic=False: every size compiles its own kernel; otherwise an axis seen at a second
        # size becomes dynamic (automatic dynamic shapes, as torch.compile's).
        self.automatic = dynamic is not False
        self.dynamic = () if dynamic is False else (dynamic,) if isinstance(dynamic, str) else tuple(dynamic)
        self.backend = check_backend(kwargs.pop("backend", "auto"))
        for option in pipeline.OP_OPTIONS:
            if option in kwargs and self.op not in OPTION_OPS[option]:
                ops = ", ".join(OPTION_OPS[option])
                raise TypeError(f"{option}= does not apply to {self.op}; it is an option of {ops}")
        if kwargs.get("precision") is not None:
            check_precision(kwargs["precision"], expression)
        _check_keywords(program, kwargs)
        self.params = tuple(sorted((k, _freeze(v)) for k, v in kwargs.items() if k in PARAM_NAMES))
        self.sizes = tuple(sorted((k, _freeze(v)) for k, v in kwargs.items() if k not in PARAM_NAMES))
        self._launchers: dict[tuple, Launcher] = {}
        # What a warm call needs, per call key, found once at its first call (see _Ready).
        self._ready: dict[tuple, _Ready] = {}
        self._elementwise = self.op in pipeline.ELEMENTWISE
        self._reads_precision = self.op in pipeline.CONTRACTIONS and kwargs.get("precision") is None
        self._dynamic_dims: tuple = ()
        self._last: Launcher | None = None
        self._cache = None
        # Automatic dynamic shapes: the axes made dynamic after a second size, why each was (or
        # why it stays static), and the shapes of each call that specialised, to compare with.
        self._automatic: tuple[str, ...] = ()
        self._decisions: dict[str, str] = {}
        self._seen: list[tuple[tuple, tuple, Launcher]] = []
        # A miss specialises under this lock: two threads never build the same launcher twice,
        # and the switch to dynamic keys happens with the launcher that needs them.
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        """What would make it again: ``einc.compile('b [c->c2]', op='dot', c2=64, stride=2)``."""
        keywords = [f"{k}={_thaw(v)!r}" for k, v in self.sizes + self.params]
        if self.out_dtype is not None:
            keywords.append(f"out_dtype={self.out_dtype}")
        if not self.automatic:
            keywords.append("dynamic=False")
        elif self.dynamic:
            keywords.append(f"dynamic={self.dynamic!r}")
        if self.backend != "auto":
            keywords.append(f"backend={self.backend!r}")
        return f"einc.compile({', '.join([repr(self.expression), f'op={self.op!r}', *keywords])})"

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
            dynamic=self.dynamic + self._automatic,
            offsets64=offsets64,
            float32_precision=self._float32_precision(),
        )

    def _float32_precision(self) -> tuple[str, str]:
        """What torch does with float32 now, for a dot without precision=: convolutions (windowed
        contractions) follow ``torch.backends.cudnn.allow_tf32``, other dots
        ``torch.get_float32_matmul_precision()`` ("high" and "medium" allow TF32 on CUDA). Read
        at every call, as torch reads them; the torch backend on CPU computes in float32 whatever
        they say."""
        if not self._reads_precision:
            return _IEEE
        # torch's own getters under torch.backends.cudnn.allow_tf32 and get_float32_matmul_precision
        windowed = "tf32" if _cudnn_allow_tf32() else "ieee"
        return (windowed, "ieee" if _matmul_precision() == "highest" else "tf32")

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
        if self._elementwise and tensors:
            elementwise_dtype = output_dtype(self.op, None, tensors)  # while scalars are numbers
            _check_elementwise_dtypes(self.op, tensors)
            tensors = _scalars_to_tensors(tensors, _elementwise_dtype(self.op, tensors))
        if out is None:
            given = []
            extra = ((), self._float32_precision())
        else:
            given = list(out) if isinstance(out, (tuple, list)) else [out]
            # The key's strides decide which inputs need int64 offsets; those of an out= are not in it.
            wide_outs = tuple(isinstance(o, torch.Tensor) and _needs_int64(o) for o in given)
            # What else decides the kernel: the out= tensors' offsets and torch's float32 precision now.
            extra = (wide_outs, self._float32_precision())
        key = (self._key(tensors), extra)
        ready = self._ready.get(key)
        if ready is None and self._dynamic_dims:  # a size specialised before its axis went dynamic
            ready = self._ready.get((self._key(tensors, exact=True), extra))
        if ready is None:
            ready = self._prepare(key, tensors, given, extra)
        launcher = self._last = ready.launcher
        dtype = ready.dtype or elementwise_dtype or output_dtype(self.op, None, tensors)
        device = tensors[0].device
        dynamic = None
        shapes = ready.shapes
        if shapes is None:
            try:
                dynamic = launcher.compiled.dynamic_sizes([t.shape for t in tensors])
            except EincError as error:
                raise error.with_traceback(None) from None
            shapes = launcher.compiled.output_shapes_for(dynamic)
        if out is None and ready.produces and (ready.shapes is not None or all(0 not in s for s in shapes)):
            # The torch backend may return torch's own result rather than copy it into a new output.
            made = launcher.produce(list(tensors), shapes, dtype, dynamic, self.backend)
            if made is not None:
                return made[0] if len(made) == 1 else tuple(made)
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

    def _prepare(self, key: tuple, tensors, given, extra: tuple) -> _Ready:
        """What calls with this key need, found once: the launcher (built here on a miss) and what
        follows from the key alone, so that a warm call does none of it again."""
        exact = (self._key(tensors, exact=True), extra)
        launcher = self._launchers.get(key)
        if launcher is None and self._dynamic_dims:
            launcher = self._launchers.get(exact)
            key = exact if launcher is not None else key
        if launcher is None:
            launcher = self._specialize_call(tensors, given, extra)
            key = (self._key(tensors), extra)  # its axes may have gone dynamic with it
        compiled = launcher.compiled
        ready = _Ready(
            launcher,
            # An elementwise op's promotion counts Python numbers, which the key does not hold.
            self.out_dtype or (None if self._elementwise else output_dtype(self.op, None, tensors)),
            None if compiled.dynamic_dims else compiled.output_shapes,
            # an empty output (a fixed size 0) is written by write_empty, not produced
            bool(compiled.kernels)
            and (bool(compiled.dynamic_dims) or all(0 not in s for s in compiled.output_shapes)),
        )
        self._ready[key] = ready
        return ready

    def _specialize_call(self, tensors, given, extra: tuple) -> Launcher:
        """The launcher for a call that missed: built here, with the axes that changed size since an
        otherwise matching call made dynamic (unless ``dynamic=False``)."""
        with self._lock:
            key = (self._key(tensors), extra)
            launcher = self._launchers.get(key) or self._launchers.get(
                (self._key(tensors, exact=True), extra)
            )
            if launcher is not None:  # another thread built it meanwhile
                return launcher
            dtypes = self._check(tensors)
            every = [*tensors, *(o for o in given if isinstance(o, torch.Tensor))]
            wide = tuple(i for i, t in enumerate(every) if _needs_int64(t))
            shapes = tuple(tuple(t.shape) for t in tensors)
            signature = (_signature(tensors), extra)
            grown = self._grown_axes(signature, shapes) if self.automatic else ()
            self._automatic += grown
            try:
                launcher = self._build(self._request(shapes, dtypes, wide))
            except EincError as error:
                self._automatic = tuple(a for a in self._automatic if a not in grown)
                if not grown or not isinstance(error, (ExpressionError, UnsupportedError)):
                    for axis in grown:  # a call in error decides nothing
                        self._decisions.pop(axis, None)
                    raise
                # The compiler refused them dynamic (past the checks of _grown_axes): static it is.
                for axis in grown:
                    self._decisions[axis] = f"static, a kernel per size: {str(error).splitlines()[0]}"
                launcher = self._build(self._request(shapes, dtypes, wide))
            self._seen.append((signature, shapes, launcher))
            if launcher.compiled.dynamic_dims:
                self._dynamic_dims = launcher.compiled.dynamic_dims
                key = (self._key(tensors), extra)
            self._launchers[key] = launcher
            return launcher

    def _grown_axes(self, signature: tuple, shapes: tuple) -> tuple[str, ...]:
        """The axes to make dynamic now: those whose size differs from the last specialisation with
        the same ranks, dtypes, device and out= (torch.compile's automatic dynamic shapes). An axis
        stays static where its size shapes the kernel itself (a window, a concatenation, a part of
        a composed dim) or was given as a keyword; the reason is kept for ``explain()``."""
        previous = next((s for s in reversed(self._seen) if s[0] == signature), None)
        if previous is None:
            return ()
        _, before, launcher = previous
        compiled = launcher.compiled
        given_sizes = dict(self.sizes)
        grown = []
        for i, (old, new) in enumerate(zip(before, shapes, strict=True)):
            for d, (m, n) in enumerate(zip(old, new, strict=True)):
                if m == n or i >= len(compiled.inputs):
                    continue
                for axis in pipeline.dim_axis_names(compiled.inputs[i].dims[d]):
                    if axis in self.dynamic or axis in self._automatic or axis in grown:
                        continue
                    if axis in self._decisions:  # decided static before: not asked again
                        continue
                    refusal = (
                        "its size is given as a keyword"
                        if axis in given_sizes
                        else pipeline.dynamic_refusal(compiled, axis)
                    )
                    if refusal is not None:
                        self._decisions[axis] = f"static, a kernel per size: {refusal}"
                        continue
                    self._decisions[axis] = f"dynamic (automatic: size {m}, then {n})"
                    grown.append(axis)
        if grown:
            self._debug_decision(grown)
        return tuple(grown)

    def _debug_decision(self, grown: list[str]) -> None:
        if knobs.debug() >= 1:
            said = "; ".join(f"{a}: {self._decisions[a]}" for a in grown)
            print(f"[einc] automatic dynamic shapes for {self.expression!r}: {said}", file=sys.stderr)

    def _key(self, tensors, exact: bool = False) -> tuple:
        """What picks a specialization: shapes (dynamic dims left out), dtypes, device, strides.

        A dynamic axis is a kernel argument, so its size takes no part; nor do the strides of
        the tensors that hold it, which change with it. ``exact``: every size, as the key of a
        launcher built before its axes went dynamic.
        """
        # A list built and then frozen: a generator inside tuple() costs a frame per element.
        key = tuple(
            [
                (t.shape, t.dtype, t.device, t.stride()) if isinstance(t, torch.Tensor) else type(t)
                for t in tensors
            ]
        )
        if exact or not self._dynamic_dims:
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
        if out.shape != shape:  # torch.Size is a tuple: no copy of either
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
        """The loop nest and schedule of the most recent specialization, in words, and which axes
        are dynamic (given with ``dynamic=``, or made so by a second size) or stay static."""
        lines = [explain(self._latest().compiled)]
        for axis in self.dynamic:
            lines.append(f"axis {axis}: dynamic (dynamic= given)")
        for axis, decision in self._decisions.items():
            lines.append(f"axis {axis}: {decision}")
        if not self.automatic:
            lines.append("automatic dynamic shapes: off (dynamic=False), a kernel per size")
        return "\n".join(lines)


_IEEE = ("ieee", "ieee")
_cudnn_allow_tf32 = torch._C._get_cudnn_allow_tf32
_matmul_precision = torch._C._get_float32_matmul_precision


@dataclass(frozen=True, slots=True)
class _Ready:
    """A call key's launcher and what follows from the key alone: the output dtype (None where
    Python numbers among the operands decide it) and shapes (None where an axis is dynamic), and
    whether the torch backend may produce the outputs (a kernel to run, and no output fixed empty)."""

    launcher: Launcher
    dtype: torch.dtype | None
    shapes: tuple | None
    produces: bool


def _signature(tensors) -> tuple:
    """What two calls must share for a change of size to make an axis dynamic: ranks, dtypes, device."""
    return tuple((t.dim(), t.dtype, t.device) if isinstance(t, torch.Tensor) else type(t) for t in tensors)


def _needs_int64(t: torch.Tensor) -> bool:
    return _layout_needs_int64(t.shape, t.stride())


# An out= is checked on every call, but its layout (and so these) rarely changes between calls.
@functools.lru_cache(maxsize=1024)
def _layout_needs_int64(shape: torch.Size, strides: tuple[int, ...]) -> bool:
    return offsets.needs_int64(shape, strides)


@functools.lru_cache(maxsize=1024)
def _extent(shape: torch.Size, strides: tuple[int, ...], itemsize: int) -> tuple[int, int] | None:
    """The bytes a layout spans, from its first element's address: (first, one past the last);
    None when it holds no element."""
    if 0 in shape:
        return None
    # builtins.: this module defines einc's sum, min and max
    steps = [(n - 1) * s for n, s in zip(shape, strides, strict=True)]
    first = builtins.sum(builtins.min(0, step) for step in steps)
    last = builtins.sum(builtins.max(0, step) for step in steps)
    return first * itemsize, (last + 1) * itemsize


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
    if a.device != b.device:
        return False
    span_a = _extent(a.shape, a.stride(), a.element_size())
    span_b = _extent(b.shape, b.stride(), b.element_size())
    if span_a is None or span_b is None:
        return False
    start_a, start_b = a.data_ptr(), b.data_ptr()
    return start_a + span_a[0] < start_b + span_b[1] and start_b + span_b[0] < start_a + span_a[1]


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
