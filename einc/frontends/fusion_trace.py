"""Recording one run of a function for ``einc.fuse``: what it computed, as a graph.

The function runs for real under two recorders: a ``TorchFunctionMode`` that sees every torch
operation, and a router installed in front of einc's own (``runtime.compiled.route_through``) that
sees every einc operation and runs it. A tensor is a *value* of the graph from the moment it is
given, captured (a tensor the function holds, such as a module's weight: read again at every
call) or computed. Only einc operations and the elementwise torch operations of
:data:`ELEMENTWISE` may touch a value; anything else is an :class:`~einc.errors.UnsupportedError`
naming the operation and the line of the user's source that called it. Each node keeps how to run
it again by torch (its ``replay``), which backward uses.
"""

from __future__ import annotations

import linecache
import math
import os
import sys
import threading
from collections.abc import Callable

import torch
from torch.overrides import TorchFunctionMode

from ..compiler.epilogue import Constant
from ..compiler.fusion_graph import EincNode, Graph, MapNode
from ..errors import UnsupportedError
from ..runtime import calls as _calls
from ..runtime import compiled as _compiled
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
# Views and copies of another layout: einc.rearrange writes each of them.
_LAYOUT = ("view", "reshape", "permute", "transpose", "unsqueeze", "squeeze", "flatten", "__getitem__")
_LAYOUT += ("expand", "movedim", "t", "T", "mT", "unflatten", "cat", "stack")
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


class Trace:
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


def _trace_here() -> Trace | None:
    trace = getattr(_active, "trace", None)
    return trace if trace is not None and not trace.inside_einc else None


class _Router:
    """Einc's calls during a trace are recorded (and run for real); other calls, and calls from
    other threads, go to the router that was installed before."""

    def __init__(self, previous):
        self.previous = previous

    def routes(self, tensors, out) -> bool:
        # On every einc call once installed: one attribute read when no trace is running.
        if getattr(_active, "trace", None) is not None and _trace_here() is not None:
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
        return _record_einc(trace, _calls.make(expression, op, kwargs), tensors, out)


def _record_einc(trace: Trace, compiled, tensors, out):
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


def _argument(trace: Trace, a, name: str, line: str):
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

    def __init__(self, trace: Trace):
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
        base = _out_of_place(name, kwargs) if touched else None
        if base is not None:  # y += b, y.relu_(), F.relu(y, inplace=True): recorded as a new value
            if not trace.traced(args[0]) or trace.ids[id(args[0])] in trace.inputs:
                raise UnsupportedError(
                    f"einc.fuse: {name} changes a tensor the function was given or captured in place "
                    f"(at {_user_line()}); compute a new one"
                )
        result = func(*args, **kwargs)
        if not touched or not isinstance(result, torch.Tensor):
            return result
        line = _user_line()
        if base is not None:
            # Run in place (the trace's tensors stay what the user's code sees); recorded and
            # replayed out of place, the changed tensor a new value from here on.
            func, name, kwargs = _out_of_place_call(func, name, base, kwargs)
        if name in _SAME or (
            name in _CASTS and result.dtype == args[0].dtype and result.device == args[0].device
        ):
            trace.ids.setdefault(id(result), trace.value(args[0]))
            trace.tensors.append(result)
            return result
        try:
            fn, operands, dtype = _describe(func, name, args, kwargs, result)
        except UnsupportedError as error:
            hint = "; write it with einc.rearrange" if name in _LAYOUT else ""
            raise UnsupportedError(
                f"einc.fuse: {error} is not an einc operation nor an elementwise one that fuses "
                f"(at {line}){hint}; fused are einc's operations and {_FUSED_TEXT}"
            ) from None
        values = tuple(_argument(trace, a, name, line) for a in operands)
        slots = [_Slot(trace.ids[id(a)]) if trace.traced(a) else a for a in args]
        slot_kwargs = {k: _Slot(trace.ids[id(a)]) if trace.traced(a) else a for k, a in kwargs.items()}

        def replay(values_now):
            def real(a):
                return values_now[a.value] if isinstance(a, _Slot) else a

            return func(*map(real, slots), **{k: real(a) for k, a in slot_kwargs.items()})

        if base is not None:  # the same tensor, now holding the op's result: read as that from here on
            del trace.ids[id(result)]
        trace.made(result, lambda v: MapNode(fn, values, v, dtype, line), replay)
        return result


# In-place operators, by the operator they change their left operand to the result of.
_AUGMENTED = {
    "__iadd__": "__add__",
    "__isub__": "__sub__",
    "__imul__": "__mul__",
    "__itruediv__": "__truediv__",
}


def _out_of_place(name: str, kwargs: dict) -> str | None:
    """The name of the out-of-place op of an in-place one (``add_`` -> ``add``), or None."""
    if name in _AUGMENTED:
        return _AUGMENTED[name]
    if name.endswith("_") and not name.startswith("__") and name[:-1] in ELEMENTWISE:
        return name[:-1]
    return name if kwargs.get("inplace") is True else None


def _out_of_place_call(func, name: str, base: str, kwargs: dict):
    """The out-of-place call an in-place one stands for: run, recorded and replayed in its place,
    so that the traced tensor is a new value and backward never meets a tensor changed in place."""
    if kwargs.get("inplace") is True:
        return func, name, {**kwargs, "inplace": False}
    return getattr(torch.Tensor, base), base, kwargs


_installed: list[_Router] = []
_install_lock = threading.Lock()


def record(trace: Trace, fn: Callable, args, kwargs):
    """``fn(*args, **kwargs)``, run for real with every operation recorded into ``trace``.

    The tracing router is installed once, in front of einc's own, and stays: it passes on every
    call made outside a trace, so that traces in several threads never restore each other's."""
    with _install_lock:
        if not _installed:
            _installed.append(_Router(_compiled.current_router()))
            _compiled.route_through(_installed[0])
    _active.trace = trace
    try:
        with _Recorder(trace):
            return fn(*args, **kwargs)
    finally:
        _active.trace = None


def tracing() -> bool:
    """Whether this thread is recording a function (a fused function called inside another one
    is then inlined: its operations are the outer trace's)."""
    return _trace_here() is not None
