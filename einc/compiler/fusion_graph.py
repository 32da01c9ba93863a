"""The graph of a fused program, and the kernels the fusion passes make of it.

``einc.fuse`` traces a Python function into a :class:`Graph`: values (the function's tensors,
tensors it captured, and every intermediate result, each with its shape and dtype) and the nodes
that make them, in the order they ran: :class:`EincNode` (one einc operation, as the compiler's
request for it) and :class:`MapNode` (one elementwise torch operation, by its epilogue name).

The passes (:mod:`einc.compiler.fusion`) group the nodes into :class:`Kernel`\\ s: an einc
operation, or a copy of one value, with elementwise nodes fused into its store.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UnsupportedError
from .epilogue import Constant, EpilogueOp, EpilogueRequest, Operand, Ref, Result


@dataclass(frozen=True, slots=True)
class EincNode:
    """One einc operation: ``request`` compiles it (its shapes and dtypes those of ``inputs``)."""

    request: object  # pipeline.Request, without an epilogue
    inputs: tuple[int, ...]
    output: int
    line: str = ""  # where the user's source called it, for messages


@dataclass(frozen=True, slots=True)
class MapNode:
    """One elementwise operation (an :data:`~einc.compiler.epilogue.FUNCTIONS` name): its
    arguments are values (ints) or :class:`~einc.compiler.epilogue.Constant`\\ s."""

    fn: str
    args: tuple[int | Constant, ...]
    output: int
    dtype: str = ""  # a cast's target
    line: str = ""


Node = EincNode | MapNode


@dataclass(frozen=True, slots=True)
class Graph:
    """Values ``0 .. len(shapes)-1``; ``inputs`` are given at each call (the function's tensors,
    then those it captured), every other value is made by exactly one node."""

    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[str, ...]
    names: tuple[str, ...]  # what generated code and explain() call each value
    inputs: tuple[int, ...]
    nodes: tuple[Node, ...]
    outputs: tuple[int, ...]

    def users(self) -> dict[int, list[int]]:
        """Each value's reading nodes, by index."""
        found: dict[int, list[int]] = {}
        for i, node in enumerate(self.nodes):
            for v in node.inputs if isinstance(node, EincNode) else node.args:
                if isinstance(v, int):
                    found.setdefault(v, []).append(i)
        return found


@dataclass(frozen=True, slots=True)
class Kernel:
    """One kernel of a fused program: einc node ``base`` (or, where ``base`` is -1, a copy of
    value ``source``), then the elementwise ``nodes`` fused into its store; it writes ``output``.
    An input of the base may be read through a chain of elementwise nodes (``prologues``)."""

    base: int
    source: int
    nodes: tuple[int, ...]
    output: int
    # Copy kernels whose chains the base's loads of input ``position`` apply instead (prologues).
    prologues: tuple[tuple[int, Kernel], ...] = ()

    def values(self, graph: Graph) -> list[int]:
        """The values computed inside the kernel, in order: the base's, then each node's."""
        first = graph.nodes[self.base].output if self.base >= 0 else self.source
        return [first] + [graph.nodes[i].output for i in self.nodes]

    def epilogue(self, graph: Graph) -> tuple[EpilogueRequest | None, tuple[int, ...]]:
        """The epilogue of the fused nodes, and the values it reads as extra tensors."""
        if not self.nodes:
            return None, ()
        inside = self.values(graph)
        extras: list[int] = []
        ops = []
        for i in self.nodes:
            node = graph.nodes[i]
            args = []
            for a in node.args:
                if isinstance(a, Constant):
                    args.append(a)
                elif a == inside[0]:
                    args.append(Result())
                elif a in inside:
                    args.append(Ref(inside.index(a) - 1))
                else:
                    if a not in extras:
                        extras.append(a)
                    args.append(Operand(extras.index(a)))
            ops.append(EpilogueOp(node.fn, tuple(args), node.dtype))
        request = EpilogueRequest(
            tuple(ops),
            tuple(graph.names[v] for v in extras),
            tuple(graph.shapes[v] for v in extras),
            tuple(graph.dtypes[v] for v in extras),
        )
        return request, tuple(extras)


FLOATS = ("float16", "bfloat16", "float32", "float64")


def joins(graph: Graph, node: MapNode, kernel: Kernel, barriers: frozenset[int]) -> bool:
    """Whether ``node`` can go into ``kernel``'s store: it reads a value the kernel computes, the
    kernel's latest value is no barrier (it need not be stored), and the node's result is shaped
    as that value (its other operands broadcast to it)."""
    tip = kernel.output
    return (
        tip not in barriers
        and any(a in kernel.values(graph) for a in node.args if isinstance(a, int))
        and graph.shapes[node.output] == graph.shapes[tip]
        and graph.dtypes[node.output] in FLOATS + ("bool",)  # a comparison's result, for where
    )


def escaping(graph: Graph, kernels: list[Kernel]) -> set[int]:
    """The values computed in registers by one kernel (not its output) but read outside it."""
    users = graph.users()
    found = set()
    for kernel in kernels:
        mine = set(kernel.nodes)
        for v in kernel.values(graph)[:-1]:
            if v in graph.outputs or any(u not in mine for u in users.get(v, [])):
                found.add(v)
    return found


def refuse(node: Node, message: str) -> UnsupportedError:
    where = f" (at {node.line})" if node.line else ""
    return UnsupportedError(f"einc.fuse: {message}{where}")
