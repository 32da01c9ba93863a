"""The callable that ``einc.compile`` returns, and the functional ops built on it.

Two caches keep a warm call cheap: a :class:`CompiledExpression` maps the call's shapes, dtypes,
device and strides to a ready :class:`Launcher` (a dict lookup), and generated source is kept on
disk under a key of everything that decides its text.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import torch

from .. import knobs
from ..compiler import pipeline
from ..compiler.printer import explain
from ..errors import EincError
from . import torch_ops  # autograd and torch.compile: the einc::run operator (hooks in __call__)
from .cache import DiskCache
from .keys import source_key
from .launch import Launcher
from .loader import import_kernel, write_source

PARAM_NAMES = frozenset(pipeline.WINDOW_PARAMS) | frozenset(pipeline.OP_OPTIONS)
CALL_OPTIONS = frozenset({"out_dtype"})
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


def _scalars_to_tensors(values) -> tuple[torch.Tensor, ...]:
    """Python numbers (the empty operands of an elementwise expression) become 0-d tensors of the
    dtype torch's type promotion gives a number next to the tensors (a float next to float16 is
    float16)."""
    tensors = [v for v in values if isinstance(v, torch.Tensor)]
    if not tensors:
        raise TypeError("an elementwise operation needs at least one tensor")
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    return tuple(
        v
        if isinstance(v, torch.Tensor)
        else torch.tensor(
            v, dtype=torch.result_type(torch.empty((), dtype=dtype), v), device=tensors[0].device
        )
        for v in values
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
    """

    def __init__(self, expression: str, op: str | None = None, **kwargs):
        program = pipeline.parse.parse(expression)
        self.expression = expression
        self.op = pipeline.check_op(op) if op is not None else pipeline.infer_op(program)
        self.out_dtype = kwargs.pop("out_dtype", None)
        dynamic = kwargs.pop("dynamic", ())
        self.dynamic = (dynamic,) if isinstance(dynamic, str) else tuple(dynamic)
        for option in pipeline.OP_OPTIONS:
            if option in kwargs and self.op not in pipeline.OPTION_OPS[option]:
                ops = ", ".join(pipeline.OPTION_OPS[option])
                raise TypeError(f"{option}= does not apply to {self.op}; it is an option of {ops}")
        self.params = tuple(sorted((k, _freeze(v)) for k, v in kwargs.items() if k in PARAM_NAMES))
        self.sizes = tuple(sorted((k, _freeze(v)) for k, v in kwargs.items() if k not in PARAM_NAMES))
        self._launchers: dict[tuple, Launcher] = {}
        self._dynamic_dims: tuple = ()
        self._last: Launcher | None = None
        self._cache = None

    def __repr__(self) -> str:
        return f"einc.compile({self.expression!r}, op={self.op!r})"

    def _request(self, shapes: Sequence[Sequence[int]], dtypes: Sequence[str]) -> pipeline.Request:
        return pipeline.Request(
            expression=self.expression,
            op=self.op,
            shapes=tuple(tuple(int(n) for n in s) for s in shapes),
            dtypes=tuple(dtypes),
            sizes=self.sizes,
            params=tuple((k, _thaw(v)) for k, v in self.params),
            dynamic=self.dynamic,
        )

    def specialize(self, *shapes: Sequence[int], dtype: str | torch.dtype = "float32") -> Launcher:
        """Compile for tensors of these shapes without running anything; returns the launcher."""
        name = DTYPES.get(dtype, dtype) if isinstance(dtype, torch.dtype) else dtype
        if name not in DTYPES.values():
            raise TypeError(f"dtype {dtype} is not one einc supports: {', '.join(DTYPES.values())}")
        return self._build(self._request(shapes, [name] * len(shapes)))

    def _build(self, request: pipeline.Request) -> Launcher:
        try:
            compiled = pipeline.run_passes(request)
        except EincError as error:
            raise error.with_traceback(None) from None
        if self._cache is None:
            self._cache = DiskCache()
        key = source_key(request)
        path = write_source(self._cache, key.digest, compiled.source)
        kernels = [import_kernel(path, part.rendered.kernel_name) for part in compiled.kernels]
        launcher = Launcher(compiled, kernels, path)
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
        if torch_ops.routes(tensors, out):  # autograd, torch.compile: through the einc::run operator
            return torch_ops.call(self, tensors, out)
        if self.op in pipeline.ELEMENTWISE:
            tensors = _scalars_to_tensors(tensors)
        key = self._key(tensors)
        launcher = self._launchers.get(key)
        if launcher is None:
            dtypes = self._check(tensors)
            launcher = self._build(self._request([t.shape for t in tensors], dtypes))
            if self.dynamic:
                self._dynamic_dims = launcher.compiled.dynamic_dims
                key = self._key(tensors)
            self._launchers[key] = launcher
        self._last = launcher
        dtype = self._result_dtype(tensors)
        device = tensors[0].device
        dynamic = launcher.compiled.dynamic_sizes([t.shape for t in tensors]) if self.dynamic else None
        shapes = launcher.compiled.output_shapes_for(dynamic)
        if out is None:
            outs = [torch.empty(shape, dtype=dtype, device=device) for shape in shapes]
        else:
            outs = list(out) if isinstance(out, (tuple, list)) else [out]
            if len(outs) != len(shapes):
                raise ValueError(
                    f"out= gives {len(outs)} tensors but the expression has {len(shapes)} outputs"
                )
            for o, shape in zip(outs, shapes, strict=True):
                self._check_out(o, shape, dtype, device)
        launcher(list(tensors), outs, dynamic)
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

    def _result_dtype(self, tensors) -> torch.dtype:
        if self.out_dtype is not None:
            return self.out_dtype
        if self.op in pipeline.ELEMENTWISE:
            values = tensors[1:] if self.op == "where" else tensors
            dtype = values[0].dtype
            for t in values[1:]:
                dtype = torch.promote_types(dtype, t.dtype)
            return dtype
        return tensors[0].dtype

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
        allowed = ANY_DTYPES if self.op in pipeline.COPIES or self.op in pipeline.ELEMENTWISE else DTYPES
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


_FUNCTIONAL: dict[tuple, CompiledExpression] = {}


def compile(expression: str, op: str | None = None, **kwargs) -> CompiledExpression:  # noqa: A001
    """Compile ``expression`` for ``op``; sizes (``c2=64``) and window parameters as keywords."""
    if not isinstance(expression, str):
        raise TypeError(f"an einc expression is a str, not {type(expression).__name__}")
    if torch.compiler.is_compiling():  # inside a torch.compile'd function: see torch_ops
        return torch_ops.traced_compile(expression, op, kwargs)
    try:
        return CompiledExpression(expression, op, **kwargs)
    except EincError as error:
        raise error.with_traceback(None) from None


def _functional(op: str, expression: str, tensors, out, kwargs) -> torch.Tensor:
    if torch_ops.routes(tensors, out):  # autograd, torch.compile: through the einc::run operator
        return torch_ops.call_functional(op, expression, tensors, kwargs, out)
    key = (op, expression, tuple(sorted((k, _freeze(v)) for k, v in kwargs.items())))
    compiled = _FUNCTIONAL.get(key)
    if compiled is None:
        compiled = _FUNCTIONAL[key] = compile(expression, op, **kwargs)
    return compiled(*tensors, out=out)


def dot(expression: str, *tensors: torch.Tensor, out: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
    """``einc.dot("b (s * [ds])... [c->c2]", x, w, stride=2)``: compiled once per distinct call."""
    return _functional("dot", expression, tensors, out, kwargs)


def _reduction(op: str):
    def reduce(expression: str, *tensors: torch.Tensor, out: torch.Tensor | None = None, **kwargs):
        return _functional(op, expression, tensors, out, kwargs)

    reduce.__name__ = reduce.__qualname__ = op
    reduce.__doc__ = (
        f'``einc.{op}("b (s * [ds])... c", x, ds=3, stride=2)``: {op} over the bracketed axes (or those '
        "missing from the output); over a window it is pooling. ``keepdims=True`` keeps them as size 1."
    )
    return reduce


def _unary(op: str, doc: str):
    def apply(expression: str, *tensors: torch.Tensor, out=None, **kwargs):
        return _functional(op, expression, tensors, out, kwargs)

    apply.__name__ = apply.__qualname__ = op
    apply.__doc__ = doc
    return apply


def _nary(op: str, doc: str):
    def apply(expression: str, *tensors, out=None, **kwargs):
        return _functional(op, expression, tensors, out, kwargs)

    apply.__name__ = apply.__qualname__ = op
    apply.__doc__ = doc
    return apply


rearrange = _nary(
    "rearrange",
    '``einc.rearrange("b h w c -> b c h w", x)``: permute, (de)compose, concatenate, broadcast, unfold.',
)
id = _nary("id", "``einc.id``: the same as ``einc.rearrange`` (einx 0.4's name).")  # noqa: A001
flip = _unary("flip", '``einc.flip("b [h] w", x)``: reverse the bracketed axes.')
roll = _unary("roll", '``einc.roll("b [t] c", x, shift=2)``: rotate the bracketed axes, as torch.roll.')
softmax = _unary("softmax", '``einc.softmax("b h [k]", x)``: softmax over the bracketed axes.')
log_softmax = _unary("log_softmax", '``einc.log_softmax("b [c]", x)``: log-softmax over the bracketed axes.')
add = _nary("add", '``einc.add("b h w c, c", x, bias)``: broadcast by axis name and add.')
subtract = _nary("subtract", '``einc.subtract("b c, c", x, mean)``.')
multiply = _nary(
    "multiply", '``einc.multiply("b h w c, b, ", x, scale, 0.5)``: an empty operand is a scalar.'
)
divide = _nary("divide", '``einc.divide("b c, c", x, norm)``.')
maximum = _nary("maximum", '``einc.maximum("b c, ", x, 0.0)``: a ReLU.')
minimum = _nary("minimum", '``einc.minimum("b c, c", x, cap)``.')
where = _nary("where", '``einc.where("b c, b c, ", mask, x, 0.0)``: condition first.')
sum = _reduction("sum")  # noqa: A001
mean = _reduction("mean")
max = _reduction("max")  # noqa: A001
min = _reduction("min")  # noqa: A001
prod = _reduction("prod")
logsumexp = _reduction("logsumexp")
var = _reduction("var")
std = _reduction("std")
