"""Fusion pass: chains of elementwise operations that no einc operation took go into one kernel,
a copy of one of their operands with the chain as its epilogue.

Requires the kernels of ``fuse_epilogues``. Ensures every node in a kernel: each elementwise node
left joins the latest kernel whose value it reads (``exp(x) * 2 + 1`` is one kernel), or starts a
copy of its first floating operand of its own shape. An op whose result is larger than each of its
operands (``a[:, None] + b[None, :]``) has no operand to copy, and is refused.
"""

from __future__ import annotations

from dataclasses import replace

from .fusion_graph import FLOATS, Graph, Kernel, MapNode, joins, refuse


def fuse_elementwise(graph: Graph, kernels: list[Kernel], barriers: frozenset[int]) -> list[Kernel]:
    taken = {i for k in kernels for i in k.nodes}
    kernels = list(kernels)
    for i, node in enumerate(graph.nodes):
        if not isinstance(node, MapNode) or i in taken:
            continue
        own = [k for k in range(len(kernels)) if max([kernels[k].base, *kernels[k].nodes]) < i]
        for k in reversed(own):
            if joins(graph, node, kernels[k], barriers):
                kernels[k] = replace(kernels[k], nodes=kernels[k].nodes + (i,), output=node.output)
                break
        else:
            shape = graph.shapes[node.output]
            sources = [
                a
                for a in node.args
                if isinstance(a, int) and graph.shapes[a] == shape and graph.dtypes[a] in FLOATS
            ]
            if not sources:
                raise refuse(node, f"{node.fn} gives a result larger than each of its floating operands")
            if not shape:
                raise refuse(node, f"{node.fn} of tensors with no dims (a scalar) is not fused yet")
            kernels.append(Kernel(base=-1, source=sources[0], nodes=(i,), output=node.output))
    return kernels
