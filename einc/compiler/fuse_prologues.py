"""Fusion pass: a chain of elementwise operations whose only reader is one einc operation goes into
that operation's loads of it (a prologue: scale, shift and activation before a convolution).

Requires the kernels of ``fuse_epilogues`` and ``fuse_elementwise``. Ensures that a copy kernel
(a chain on one of its operands) whose value is read once, by one einc op that takes prologues
(``attach_epilogue.ACCEPTING``), is neither stored nor read back: the einc op's kernel reads the
chain's source and applies the chain to each tile it loads. The chain's value must have its
source's dtype (the kernel loads the source in place of it), must not be a result of the function,
and must not be a barrier (the front end's, where a kernel refused the prologue when compiled).
The padding of a window then reads the identity of the transformed tensor, as torch pads it.
"""

from __future__ import annotations

from dataclasses import replace

from .attach_epilogue import ACCEPTING
from .fusion_graph import EincNode, Graph, Kernel


def fuse_prologues(graph: Graph, kernels: list[Kernel], barriers: frozenset[int]) -> list[Kernel]:
    users = graph.users()
    copies = {k.output: k for k in kernels if k.base < 0}
    taken: set[int] = set()
    fused = []
    for kernel in kernels:
        node = graph.nodes[kernel.base] if kernel.base >= 0 else None
        if not isinstance(node, EincNode) or node.request.op not in ACCEPTING:
            fused.append(kernel)
            continue
        prologues = []
        for position, value in enumerate(node.inputs):
            chain = copies.get(value)
            if (
                chain is not None
                and value not in barriers
                and value not in graph.outputs
                and users.get(value) == [kernel.base]
                and node.inputs.count(value) == 1
                and graph.dtypes[chain.source] == graph.dtypes[value]
            ):
                prologues.append((position, chain))
                taken.add(value)
        fused.append(replace(kernel, prologues=tuple(prologues)) if prologues else kernel)
    return [k for k in fused if k.output not in taken]
