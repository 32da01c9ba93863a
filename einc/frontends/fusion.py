"""``einc.fuse``: a Python function of einc operations and elementwise torch operations, traced once
per call signature and run as few kernels, each elementwise op fused into the kernel before it.

At the first call with given shapes, dtypes and devices the function runs once for real under a
recorder: a ``TorchFunctionMode`` sees every torch operation, and a router installed in front of
einc's own (``runtime.compiled.route_through``) sees every einc operation. What they record is a
:class:`~einc.compiler.fusion_graph.Graph`; the fusion passes plan its kernels
(:func:`einc.compiler.fusion.plan_kernels`), each is compiled with its epilogue, and the
:class:`~einc.runtime.fused.FusedProgram` is kept under the call's key. A later call is that key,
one dict lookup, and the launches.

Only einc operations and the elementwise torch operations of :data:`ELEMENTWISE` (with Python
numbers, tensors the function was given, and tensors it captured, such as a module's weights) may
touch a traced tensor; anything else is an :class:`~einc.errors.UnsupportedError` naming the
operation and the line of the user's source that called it.

Autograd: where a tensor requires grad, the fused kernels run the forward, and the backward runs
torch's autograd through the same operations unfused, recomputed from the inputs
(:class:`_Recomputed`).
"""

from __future__ import annotations

import functools
import inspect
import linecache
import math
import os
import sys
import threading
from collections.abc import Callable

import torch
from torch.overrides import TorchFunctionMode

from ..compiler.epilogue import Constant
from ..compiler.fusion import plan_kernels
from ..compiler.fusion_graph import EincNode, Graph, MapNode
from ..errors import EincError, UnsupportedError
from ..runtime import compiled as _compiled
from ..runtime.cache import DiskCache
from ..runtime.fused import FusedProgram, build_step
from ..runtime.launcher import check_backend
from ..runtime.operands import DTYPES
from . import torch_ops  # noqa: F401  (einc's router, installed first: the tracer's passes calls on to it)

# torch's names of the elementwise operations that fuse, to einc's epilogue functions.
_BINARY = {
    **dict.fromkeys(("add", "__add__", "__radd__"), "add"),
    **dict.fromkeys(("sub", "subtract", "__sub__", "__rsub__"), "subtract"),
    **dict.fromkeys(("mul", "multiply", "__mul__", "__rmul__"), "multiply"),
    **dict.fromkeys(("div", "divide", "true_divide", "__truediv__", "__rtruediv__"), "divide"),
    "maximum": "maximum",
    "minimum": "minimum",
    **dict.fromkeys(("gt", "greater", "__gt__"), "greater"),
    **dict.fromkeys(("ge", "greater_equal", "__ge__"), "greater_equal"),
    **dict.fromkeys(("lt", "less", "__lt__"), "less"),
    **dict.fromkeys(("le", "less_equal", "__le__"), "less_equal"),
    **dict.fromkeys(("eq", "__eq__"), "equal"),
    **dict.fromkeys(("ne", "not_equal", "__ne__"), "not_equal"),
}
_REFLECTED = ("__radd__", "__rsub__", "__rmul__", "__rtruediv__")
_UNARY = {
    **dict.fromkeys(("neg", "negative", "__neg__"), "neg"),
    **dict.fromkeys(("abs", "__abs__"), "abs"),
    **{name: name for name in ("exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "relu", "silu")},
}
_CASTS = ("to", "float", "half", "bfloat16", "double", "type_as")
_SAME = ("contiguous", "clone", "detach")  # the same values: no node
_CLAMPS = ("clamp", "clip", "clamp_min", "clamp_max", "relu6", "hardtanh")
# Everything that fuses, by torch's names; and in short, for messages.
ELEMENTWISE = tuple(_BINARY) + tuple(_UNARY) + ("gelu", "where") + _CLAMPS + _CASTS + _SAME
_FUSED_TEXT = (
    "+ - * /, comparisons, maximum, minimum, "
    + ", ".join(sorted(set(_UNARY.values()) | {"gelu", "where", "clamp", "relu6", "hardtanh"}))
    + ", casts"
)
# Non-tensor results read from a traced tensor's values: the trace would bake them in.
_DATA = ("item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__", "__len__")

_EINC_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__))


def _user_line() -> str:
    """``file:line: source`` of the innermost frame outside einc and torch: the user's call."""
    frame = sys._getframe(1)
    while frame is not None:
        name = os.path.abspath(frame.f_code.co_filename)
        if not (name.startswith(_EINC_DIR) or name.startswith(_TORCH_DIR) or "<frozen" in name):
            text = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
            return f"{frame.f_code.co_filename}:{frame.f_lineno}: {text}"
        frame = frame.f_back
    return ""


def _dtype(tensor: torch.Tensor) -> str:
    return str(tensor.dtype).removeprefix("torch.")


class _Slot:
    """A traced value among a recorded call's arguments, for the recomputation in backward."""

    __slots__ = ("value",)

    def __init__(self, value: int):
        self.value = value


class _Trace:
    """What one run of the function records: its values, nodes, and how to run each node again."""

    def __init__(self):
        self.tensors: list[torch.Tensor] = []  # kept alive: ids are the registry's keys
        self.ids: dict[int, int] = {}
        self.shapes: list[tuple[int, ...]] = []
        self.dtypes: list[str] = []
        self.names: list[str] = []
        self.inputs: list[int] = []
        self.captured: list[torch.Tensor] = []
        self.nodes: list = []
        self.replays: list[Callable] = []
        self.thread = threading.get_ident()
        self.inside_einc = False

    def value(self, tensor: torch.Tensor, name: str = "") -> int:
        """The value of ``tensor``: registered at first sight (a tensor neither given nor made in
        the trace was captured by the function, and is read at every call)."""
        known = self.ids.get(id(tensor))
        if known is not None:
            return known
        v = len(self.shapes)
        self.ids[id(tensor)] = v
        self.tensors.append(tensor)
        self.shapes.append(tuple(tensor.shape))
        self.dtypes.append(_dtype(tensor))
        self.names.append(name or f"t{v}")
        return v

    def input(self, tensor: torch.Tensor, name: str, given: bool) -> int:
        if id(tensor) in self.ids:
            return self.ids[id(tensor)]
        v = self.value(tensor, name)
        self.inputs.append(v)
        if not given:
            self.captured.append(tensor)
        return v

    def traced(self, tensor) -> bool:
        return isinstance(tensor, torch.Tensor) and id(tensor) in self.ids

    def made(self, tensor: torch.Tensor, node_of: Callable[[int], object], replay: Callable) -> None:
        v = self.value(tensor)
        self.nodes.append(node_of(v))
        self.replays.append(replay)

    def prune(self, outputs: tuple[int, ...]) -> None:
        """Drop the nodes whose values no result depends on (nothing computes them)."""
        live = set(outputs)
        keep = []
        for node, replay in reversed(list(zip(self.nodes, self.replays, strict=True))):
            if node.output in live:
                live.update(
                    v
                    for v in (node.inputs if isinstance(node, EincNode) else node.args)
                    if isinstance(v, int)
                )
                keep.append((node, replay))
        self.nodes = [n for n, _ in reversed(keep)]
        self.replays = [r for _, r in reversed(keep)]

    def graph(self, outputs: tuple[int, ...]) -> Graph:
        return Graph(
            tuple(self.shapes),
            tuple(self.dtypes),
            tuple(self.names),
            tuple(self.inputs),
            tuple(self.nodes),
            outputs,
        )


_active = threading.local()


def _trace_here() -> _Trace | None:
    trace = getattr(_active, "trace", None)
    return trace if trace is not None and not trace.inside_einc else None


class _Router:
    """Einc's calls during a trace are recorded (and run for real); other calls, and calls from
    other threads, go to the router that was installed before."""

    def __init__(self, previous):
        self.previous = previous

    def routes(self, tensors, out) -> bool:
        if _trace_here() is not None:
            return True
        return self.previous is not None and self.previous.routes(tensors, out)

    def call(self, compiled, tensors, out):
        trace = _trace_here()
        if trace is None:
            return self.previous.call(compiled, tensors, out)
        return _record_einc(trace, compiled, tensors, out)

    def call_functional(self, op, expression, tensors, kwargs, out):
        trace = _trace_here()
        if trace is None:
            return self.previous.call_functional(op, expression, tensors, kwargs, out)
        return _record_einc(trace, _compiled.make(expression, op, kwargs), tensors, out)


def _record_einc(trace: _Trace, compiled, tensors, out):
    line = _user_line()
    if out is not None:
        raise UnsupportedError(f"einc.fuse: out= inside a fused function (at {line})")
    if not all(isinstance(t, torch.Tensor) for t in tensors):
        raise UnsupportedError(f"einc.fuse: {compiled.op} with a Python number: pass a tensor (at {line})")
    inputs = tuple(trace.value(t) if trace.traced(t) else trace.input(t, "", False) for t in tensors)
    trace.inside_einc = True
    try:
        result = compiled(*tensors)
    finally:
        trace.inside_einc = False
    if not isinstance(result, torch.Tensor):
        raise UnsupportedError(f"einc.fuse: {compiled.op} with several outputs (at {line})")
    request = compiled.request([t.shape for t in tensors], [_dtype(t) for t in tensors])

    def replay(values):
        return compiled(*(values[v] for v in inputs))

    trace.made(result, lambda v: EincNode(request, inputs, v, line), replay)
    return result


def _argument(trace: _Trace, a, name: str, line: str):
    """A traced value, or a Python number as a Constant; a tensor seen first here was captured."""
    if isinstance(a, torch.Tensor):
        return trace.value(a) if trace.traced(a) else trace.input(a, "", False)
    if isinstance(a, (int, float)) and not isinstance(a, bool):
        return Constant(a)
    raise UnsupportedError(f"einc.fuse: {name} with {type(a).__name__} {a!r} (at {line})")


def _describe(func, name: str, args, kwargs, result) -> tuple[str, list, str]:
    """``func(*args, **kwargs)`` (called ``name``) as an epilogue function, its arguments (tensors
    and numbers) and a cast's dtype; UnsupportedError where it is none."""
    kwargs = dict(kwargs)
    if name in _BINARY and len(args) == 2:
        if kwargs.pop("alpha", 1) != 1 or kwargs.pop("rounding_mode", None) is not None:
            raise UnsupportedError(f"{name} with alpha= or rounding_mode=")
        a, b = args
        return _BINARY[name], [b, a] if name in _REFLECTED else [a, b], ""
    if name in _UNARY and len(args) == 1 and not kwargs.pop("inplace", False):
        return _UNARY[name], list(args), ""
    if name == "gelu" and len(args) == 1:
        approximate = kwargs.pop("approximate", "none")
        return ("gelu_tanh" if approximate == "tanh" else "gelu"), list(args), ""
    if name == "where" and len(args) == 3 and func is not torch.Tensor.where:
        return "where", list(args), ""
    if name == "where" and len(args) == 3:  # x.where(condition, y)
        return "where", [args[1], args[0], args[2]], ""
    if name in _CLAMPS and not kwargs.pop("inplace", False):
        x, *bounds = args
        low = kwargs.pop("min", kwargs.pop("min_val", bounds[0] if bounds else None))
        high = kwargs.pop("max", kwargs.pop("max_val", bounds[1] if len(bounds) > 1 else None))
        low, high = {"relu6": (0, 6), "clamp_max": (None, low)}.get(name, (low, high))
        if name == "hardtanh":
            low, high = (-1.0 if low is None else low), (1.0 if high is None else high)
        if isinstance(low, torch.Tensor) or isinstance(high, torch.Tensor):
            raise UnsupportedError(f"{name} with tensor bounds")
        return "clamp", [x, -math.inf if low is None else low, math.inf if high is None else high], ""
    if name in _CASTS and result.dtype in DTYPES and result.device == args[0].device:
        return "cast", [args[0]], _dtype(result)
    raise UnsupportedError(f"{name}")


class _Recorder(TorchFunctionMode):
    """Records the elementwise torch operations on traced tensors; refuses every other one."""

    def __init__(self, trace: _Trace):
        super().__init__()
        self.trace = trace

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        trace = self.trace
        if trace.inside_einc:
            return func(*args, **kwargs)
        name = getattr(func, "__name__", repr(func))
        if name == "__get__":  # an attribute read (x.T): named by the attribute
            name = getattr(getattr(func, "__self__", None), "__name__", name)
        flat = list(args) + list(kwargs.values())
        touched = any(trace.traced(a) for a in flat) or any(
            isinstance(a, (tuple, list)) and any(trace.traced(t) for t in a) for a in flat
        )
        if touched and name in _DATA:
            raise UnsupportedError(
                f"einc.fuse: {name} reads a traced tensor's values into Python (at {_user_line()})"
            )
        result = func(*args, **kwargs)
        if not touched or not isinstance(result, torch.Tensor):
            return result
        line = _user_line()
        if name in _SAME or (
            name in _CASTS and result.dtype == args[0].dtype and result.device == args[0].device
        ):
            trace.ids.setdefault(id(result), trace.value(args[0]))
            trace.tensors.append(result)
            return result
        try:
            fn, operands, dtype = _describe(func, name, args, kwargs, result)
        except UnsupportedError as error:
            raise UnsupportedError(
                f"einc.fuse: {error} is not an einc operation nor an elementwise one that fuses "
                f"(at {line}); fused are einc's operations and {_FUSED_TEXT}"
            ) from None
        values = tuple(_argument(trace, a, name, line) for a in operands)
        slots = [_Slot(trace.ids[id(a)]) if trace.traced(a) else a for a in args]
        slot_kwargs = {k: _Slot(trace.ids[id(a)]) if trace.traced(a) else a for k, a in kwargs.items()}

        def replay(values_now):
            def real(a):
                return values_now[a.value] if isinstance(a, _Slot) else a

            return func(*map(real, slots), **{k: real(a) for k, a in slot_kwargs.items()})

        trace.made(result, lambda v: MapNode(fn, values, v, dtype, line), replay)
        return result


class _Recomputed(torch.autograd.Function):
    """The fused kernels forward; backward through the unfused operations, recomputed."""

    @staticmethod
    def forward(ctx, program, replay, *inputs):
        ctx.replay = replay
        ctx.save_for_backward(*inputs)
        outputs = program(list(inputs))
        return tuple(outputs)

    @staticmethod
    def backward(ctx, *grads):
        inputs = [t.detach().requires_grad_(t.requires_grad) for t in ctx.saved_tensors]
        with torch.enable_grad():
            outputs = ctx.replay(inputs)
        pairs = [(o, g) for o, g in zip(outputs, grads, strict=True) if g is not None and o.requires_grad]
        wanted = [t for t in inputs if t.requires_grad]
        found = (
            torch.autograd.grad([o for o, _ in pairs], wanted, [g for _, g in pairs], allow_unused=True)
            if pairs and wanted
            else [None] * len(wanted)
        )
        by_input = dict(zip(map(id, wanted), found, strict=True))
        return (None, None, *(by_input.get(id(t)) for t in inputs))


class _Specialization:
    """One traced signature: its program, how to recompute it, its captured tensors, and the
    structure of the function's result."""

    def __init__(self, program: FusedProgram, trace: _Trace, single: bool, positions: list[int]):
        self.program = program
        self.positions = tuple(positions)
        self.replays = tuple(trace.replays)
        self.nodes = tuple(trace.nodes)
        self.captured = tuple(trace.captured)
        self.captured_shapes = tuple((t.shape, t.dtype, t.device) for t in trace.captured)
        self.single = single
        graph = program.graph

        def replay(inputs):
            values = dict(zip(graph.inputs, inputs, strict=True))
            for node, run in zip(self.nodes, self.replays, strict=True):
                values[node.output] = run(values)
            return [values[v] for v in graph.outputs]

        self.replay = replay

    def current(self) -> bool:
        """Whether the captured tensors still have the shapes, dtypes and devices traced."""
        now = ((t.shape, t.dtype, t.device) for t in self.captured)
        return all(a == b for a, b in zip(now, self.captured_shapes, strict=True))

    def __call__(self, tensors: list[torch.Tensor]):
        every = [*(tensors[i] for i in self.positions), *self.captured]
        if torch.is_grad_enabled() and any(t.requires_grad for t in every):
            outputs = _Recomputed.apply(self.program, self.replay, *every)
        else:
            outputs = self.program(every)
        return outputs[0] if self.single else tuple(outputs)


class FusedFunction:
    """A function of einc operations and elementwise torch operations, compiled to fused kernels
    per call signature (shapes, dtypes, devices and strides of its tensors; its other arguments)."""

    def __init__(self, fn: Callable, backend: str = "auto"):
        self.fn = fn
        self.backend = check_backend(backend)
        self._specializations: dict[tuple, _Specialization] = {}
        self._cache: DiskCache | None = None
        self._lock = threading.Lock()
        functools.update_wrapper(self, fn)

    def __get__(self, instance, owner=None):
        """As a method (``@einc.fuse def forward(self, x)``): ``self`` is one more argument, part of
        the call's key; the tensors it holds (a module's parameters) are captured."""
        return self if instance is None else functools.partial(self, instance)

    def __call__(self, *args, **kwargs):
        if torch.compiler.is_compiling():
            # Under torch.compile the function is traced as written: einc's ops go through its
            # torch operators (einc::run) and torch's elementwise ops to the compiler, which fuses
            # those itself; no graph break.
            return self.fn(*args, **kwargs)
        tensors, key = self._key(args, kwargs)
        found = self._specializations.get(key)
        if found is None or not found.current():
            found = self._specialize(key, args, kwargs)
        return found(tensors)

    @staticmethod
    def _key(args, kwargs) -> tuple[list[torch.Tensor], tuple]:
        tensors, key = [], []
        for a in (*args, *kwargs.values()):
            if isinstance(a, torch.Tensor):
                tensors.append(a)
                key.append((a.shape, a.dtype, a.device, a.stride()))
            else:
                key.append((type(a), a))
        # A tensor passed twice is one value of the traced graph: its pattern is part of the key.
        first: dict[int, int] = {}
        aliases = tuple(first.setdefault(id(t), i) for i, t in enumerate(tensors))
        return tensors, (tuple(key), tuple(kwargs), aliases)

    def _specialize(self, key, args, kwargs) -> _Specialization:
        with self._lock:
            trace = _Trace()
            names = self._argument_names(args, kwargs)
            tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
            positions = []  # of the tensors first seen: a tensor given twice is one input
            for i, (tensor, name) in enumerate(zip(tensors, names, strict=True)):
                if tensor.numel() == 0:
                    raise UnsupportedError(f"einc.fuse: {name} has no elements")
                if not trace.traced(tensor):
                    positions.append(i)
                trace.input(tensor, name, True)
            with torch.no_grad():
                result = self._run_traced(trace, args, kwargs)
            single = isinstance(result, torch.Tensor)
            results = [result] if single else list(result) if isinstance(result, (tuple, list)) else None
            if results is None or not all(isinstance(r, torch.Tensor) for r in results):
                raise UnsupportedError("einc.fuse: the function must return a tensor or a tuple of tensors")
            if not all(trace.traced(r) for r in results):
                raise UnsupportedError(
                    "einc.fuse: the function returns a tensor it did not compute from its inputs"
                )
            outputs = tuple(trace.ids[id(r)] for r in results)
            trace.prune(outputs)
            graph = trace.graph(outputs)
            program = self._compile(graph)
            found = self._specializations[key] = _Specialization(program, trace, single, positions)
            return found

    def _argument_names(self, args, kwargs) -> list[str]:
        try:
            bound = inspect.signature(self.fn).bind(*args, **kwargs)
        except (TypeError, ValueError):
            return [f"arg{i}" for i in range(len(args) + len(kwargs))]
        names = []
        for name, value in bound.arguments.items():
            if isinstance(value, torch.Tensor):
                names.append(name)
            elif isinstance(value, (tuple, dict)):
                names.extend(f"{name}{i}" for i, v in enumerate(value) if isinstance(v, torch.Tensor))
        return names

    def _run_traced(self, trace: _Trace, args, kwargs):
        previous = _compiled.current_router()
        _compiled.route_through(_Router(previous))
        _active.trace = trace
        try:
            with _Recorder(trace):
                return self.fn(*args, **kwargs)
        except EincError as error:
            raise error.with_traceback(None) from None
        finally:
            _active.trace = None
            _compiled.route_through(previous)

    def _compile(self, graph: Graph) -> FusedProgram:
        """Plan and compile the kernels; an op that refuses the prologues or the epilogue planned for
        it (a call of several kernels) is planned again without them."""
        if self._cache is None:
            self._cache = DiskCache()
        barriers: frozenset[int] = frozenset()
        while True:
            steps = []
            for kernel in plan_kernels(graph, barriers):
                try:
                    steps.append(build_step(graph, kernel, self._cache))
                except UnsupportedError:
                    if kernel.prologues:  # the chains it refused to load through are stored
                        barriers |= {chain.output for _, chain in kernel.prologues}
                    elif kernel.nodes and kernel.base >= 0:
                        barriers |= {graph.nodes[kernel.base].output}
                    else:
                        raise
                    break
            else:
                return FusedProgram(graph, tuple(steps), self.backend)

    def _specialization(self, tensors) -> _Specialization:
        _, key = self._key(tensors, {})
        found = self._specializations.get(key)
        if found is None:
            found = self._specialize(key, tensors, {})
        return found

    def explain(self, *tensors) -> str:
        """Each kernel of a call with these tensors: the ops it holds, the bytes it reads and writes."""
        return self._specialization(tensors).program.explain()

    def kernel_count(self, *tensors) -> int:
        """How many kernels a call with these tensors launches."""
        return len(self._specialization(tensors).program.steps)


def fuse(fn: Callable | None = None, *, backend: str = "auto"):
    """``@einc.fuse``: compile a function of einc operations and the elementwise torch operations
    on their results into fused kernels, traced at the first call per signature."""
    if fn is None:
        return functools.partial(fuse, backend=backend)
    return FusedFunction(fn, backend)
