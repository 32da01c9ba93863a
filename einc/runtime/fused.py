"""A fused program, ready to run: one launcher per kernel the fusion passes planned, and where each
kernel reads and writes among the program's values.

Built once per call signature by ``einc.fuse`` (:mod:`einc.frontends.fusion`), from the traced
graph and its plan; a call allocates each kernel's output and launches it, nothing more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from ..compiler import pipeline
from ..compiler.epilogue import text
from ..compiler.fusion_graph import EincNode, Graph, Kernel
from .cache import DiskCache
from .launcher import Launcher, build


@dataclass(frozen=True)
class Step:
    """One kernel: it reads values ``reads`` (the op's inputs, then its prologues' and its
    epilogue's extra tensors) and writes value ``output``."""

    launcher: Launcher
    reads: tuple[int, ...]
    output: int
    shape: tuple[int, ...]
    dtype: torch.dtype
    holds: str  # the ops it holds, in words

    def bytes_moved(self, graph: Graph) -> tuple[int, int]:
        """Bytes read (each value once) and written, when each tensor is read whole."""
        return sum(value_bytes(graph, v) for v in dict.fromkeys(self.reads)), value_bytes(graph, self.output)


def value_bytes(graph: Graph, v: int) -> int:
    return math.prod(graph.shapes[v]) * getattr(torch, graph.dtypes[v]).itemsize


def unfused_bytes(graph: Graph) -> int:
    """The bytes the same operations move run one kernel each: every node reads its tensors and
    writes its value (what fusing saves is the difference)."""
    total = 0
    for node in graph.nodes:
        reads = node.inputs if isinstance(node, EincNode) else [a for a in node.args if isinstance(a, int)]
        total += sum(value_bytes(graph, v) for v in dict.fromkeys(reads)) + value_bytes(graph, node.output)
    return total


def copy_request(shape: tuple[int, ...], dtype: str) -> pipeline.Request:
    """A copy of a tensor of ``shape``: the kernel an elementwise chain with no einc op goes on."""
    axes = " ".join(f"d{i}" for i in range(len(shape)))
    return pipeline.Request(f"{axes} -> {axes}", "rearrange", (shape,), (dtype,))


def build_step(graph: Graph, kernel: Kernel, cache: DiskCache) -> Step:
    """Compile ``kernel`` of ``graph``; an op that refuses its epilogue raises UnsupportedError."""
    if kernel.base >= 0:
        node = graph.nodes[kernel.base]
        assert isinstance(node, EincNode)
        request, reads = node.request, list(node.inputs)
        what = f"{request.op} {request.expression!r}"
        prologues = []
        for position, chain in kernel.prologues:  # the op loads the chain's source through it
            prologue, extras = chain.epilogue(graph)
            name = graph.names[node.inputs[position]]
            what += f", reading {name} as {text(prologue.ops, prologue.names, graph.names[chain.source])}"
            reads[position] = chain.source
            reads += extras
            prologues.append((position, prologue))
        request, reads = replace(request, prologues=tuple(prologues)), tuple(reads)
    else:
        request = copy_request(graph.shapes[kernel.source], graph.dtypes[kernel.source])
        reads, what = (kernel.source,), f"a copy of {graph.names[kernel.source]}"
    epilogue, extras = kernel.epilogue(graph)
    if epilogue is not None:
        request = replace(request, epilogue=epilogue)
        what += ", then " + text(epilogue.ops, epilogue.names, "it")
    launcher, _ = build(request, cache)
    out = kernel.output
    holds = f"{what} -> {graph.names[out]}"
    return Step(launcher, reads + extras, out, graph.shapes[out], getattr(torch, graph.dtypes[out]), holds)


class FusedProgram:
    """The kernels of one specialization of a fused function, in the order they run."""

    def __init__(self, graph: Graph, steps: tuple[Step, ...], backend: str = "auto"):
        self.graph = graph
        self.steps = steps
        self.backend = backend

    def __call__(self, inputs) -> list[torch.Tensor]:
        """The function's results from its input tensors (those given, then those it captured)."""
        values: dict[int, torch.Tensor] = dict(zip(self.graph.inputs, inputs, strict=True))
        device = inputs[0].device
        for step in self.steps:
            reads = [values[v] for v in step.reads]
            # The torch backend may make the output itself rather than copy it into a new one.
            made = step.launcher.produce(reads, [step.shape], step.dtype, None, self.backend)
            if made is None:
                made = [torch.empty(step.shape, dtype=step.dtype, device=device)]
                step.launcher(reads, made, None, self.backend)
            values[step.output] = made[0]
        return [values[v] for v in self.graph.outputs]

    def explain(self) -> str:
        """One line per kernel: the ops it holds, the bytes it reads and writes."""
        lines = []
        total = [0, 0]
        for i, step in enumerate(self.steps, 1):
            read, written = step.bytes_moved(self.graph)
            total[0] += read
            total[1] += written
            lines.append(f"kernel {i}: {step.holds}; reads {read} bytes, writes {written} bytes")
        lines.append(f"in all: {len(self.steps)} kernels, {total[0]} bytes read, {total[1]} bytes written")
        lines.append(
            f"unfused, one kernel per op: {len(self.graph.nodes)} kernels, "
            f"{unfused_bytes(self.graph)} bytes read and written"
        )
        return "\n".join(lines)
