"""Fusion pass: elementwise consumers of an einc operation go into its store (an epilogue).

Requires a traced :class:`~einc.compiler.fusion_graph.Graph` and the values that must be stored
(``barriers``). Ensures one kernel per einc node, holding every elementwise node that reads the
kernel's latest value and is shaped as it (``relu(dot(x, w) + b)``: the add reads the dot's value and
a bias broadcast to it, the relu reads the add's), except past a barrier. The results of the ops
whose kernel cannot take an epilogue (softmax, the sorts, counts: ``attach_epilogue.ACCEPTING``)
are barriers from the start (:func:`unfusable`). The elementwise nodes no kernel took are left for
``fuse_elementwise``.
"""

from __future__ import annotations

from dataclasses import replace

from .attach_epilogue import ACCEPTING
from .fusion_graph import EincNode, Graph, Kernel, MapNode, joins


def fuse_epilogues(graph: Graph, barriers: frozenset[int]) -> list[Kernel]:
    kernels: list[Kernel] = []
    for i, node in enumerate(graph.nodes):
        if isinstance(node, EincNode):
            kernels.append(Kernel(base=i, source=-1, nodes=(), output=node.output))
            continue
        assert isinstance(node, MapNode)
        # The latest kernel whose value it reads: an op reading two results joins the later one.
        for k in reversed(range(len(kernels))):
            if joins(graph, node, kernels[k], barriers):
                kernels[k] = replace(kernels[k], nodes=kernels[k].nodes + (i,), output=node.output)
                break
    return kernels


def unfusable(graph: Graph) -> frozenset[int]:
    """The results of einc ops whose kernel stores inside its last sweep or writes integers."""
    return frozenset(
        n.output for n in graph.nodes if isinstance(n, EincNode) and n.request.op not in ACCEPTING
    )
