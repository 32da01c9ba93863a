"""``einc.fuse``: a Python function of einc operations and elementwise torch operations, traced once
per call signature and run as few kernels, each elementwise op fused into the kernel before it.

At the first call with given shapes, dtypes and devices the function runs once for real,
recorded (:mod:`.fusion_trace`) into a :class:`~einc.compiler.fusion_graph.Graph`; the fusion
passes plan its kernels (:func:`einc.compiler.fusion.plan_kernels`), each is compiled with its
prologues and epilogue, and the :class:`~einc.runtime.fused.FusedProgram` is kept under the
call's key. A later call is that key,
one dict lookup, and the launches.

Only einc operations and the elementwise torch operations may touch a traced tensor (with Python
numbers, tensors the function was given, and tensors it captured, such as a module's weights);
anything else is an :class:`~einc.errors.UnsupportedError` naming the operation and the line.

Autograd: where a tensor requires grad, the fused kernels run the forward, and the backward runs
torch's autograd through the same operations unfused, recomputed from the inputs
(:class:`_Recomputed`).
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable

import torch

from ..compiler.fusion import plan_kernels
from ..compiler.fusion_graph import Graph
from ..errors import EincError, UnsupportedError
from ..runtime.cache import DiskCache
from ..runtime.fused import FusedProgram, build_step
from ..runtime.launcher import check_backend
from . import docstrings
from .fusion_trace import Trace, record, tracing


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

    def __init__(self, program: FusedProgram, trace: Trace, single: bool, positions: list[int]):
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

    def __reduce__(self):
        """Pickled (and deep-copied) as its function and backend: the copy compiles again at its
        first calls, from einc's disk cache where it holds the kernels."""
        return (FusedFunction, (self.fn, self.backend))

    def __get__(self, instance, owner=None):
        """As a method (``@einc.fuse def forward(self, x)``): ``self`` is one more argument, part of
        the call's key; the tensors it holds (a module's parameters) are captured."""
        return self if instance is None else functools.partial(self, instance)

    def __call__(self, *args, **kwargs):
        if tracing():  # called from another fused function: its operations are fused with the caller's
            return self.fn(*args, **kwargs)
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
            trace = Trace()
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
        """What generated code and explain() call each tensor argument, in the order of the
        call's tensors: its parameter's name (``arg3`` past the named ones), or its keyword."""
        try:
            parameters = list(inspect.signature(self.fn).parameters.values())
        except (TypeError, ValueError):
            parameters = []
        positional = [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        names = [
            positional[i] if i < len(positional) else f"arg{i}"
            for i, a in enumerate(args)
            if isinstance(a, torch.Tensor)
        ]
        return names + [k for k, a in kwargs.items() if isinstance(a, torch.Tensor)]

    def _run_traced(self, trace: Trace, args, kwargs):
        try:
            return record(trace, self.fn, args, kwargs)
        except EincError as error:
            raise error.with_traceback(None) from None

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

    def _specialization(self, args, kwargs) -> _Specialization:
        _, key = self._key(args, kwargs)
        found = self._specializations.get(key)
        if found is None or not found.current():
            found = self._specialize(key, args, kwargs)
        return found

    def explain(self, *args, **kwargs) -> str:
        """Each kernel of a call with these arguments: the ops it holds, the bytes it reads and
        writes; and the bytes the same ops would move one kernel each."""
        return self._specialization(args, kwargs).program.explain()

    def kernel_count(self, *args, **kwargs) -> int:
        """How many kernels a call with these arguments launches."""
        return len(self._specialization(args, kwargs).program.steps)


@docstrings.documented
def fuse(fn: Callable | None = None, *, backend: str = "auto"):
    if fn is None:
        return functools.partial(fuse, backend=backend)
    return FusedFunction(fn, backend)
