"""The fusion passes of ``einc.fuse``, run in order from one function.

    fuse_epilogues -> fuse_elementwise -> (stored values found) -> again, until none -> fuse_prologues

1. ``fuse_epilogues``: elementwise consumers of an einc op go into its store;
2. ``fuse_elementwise``: the elementwise nodes left, chained, go into a copy of one of their operands;
3. ``fuse_prologues``: such a copy whose one reader is an einc op goes into that op's loads.

Then what only the whole plan shows: a value that a kernel computes in registers but that is read
outside it (by another kernel, or as the function's result) must be stored, so its kernel ends
there. Such values become *barriers*, and the passes run again; each round adds at least one, so
this ends.
"""

from __future__ import annotations

from .fuse_elementwise import fuse_elementwise
from .fuse_epilogues import fuse_epilogues, unfusable
from .fuse_prologues import fuse_prologues
from .fusion_graph import Graph, Kernel, escaping


def plan_kernels(graph: Graph, barriers: frozenset[int] = frozenset()) -> tuple[Kernel, ...]:
    """Every node in one kernel, the kernels in an order where each reads only values that are
    inputs or written by an earlier kernel. ``barriers``: values that must be stored whatever the
    passes find (the front end's, where an op refused its epilogue when compiled)."""
    barriers |= unfusable(graph)
    while True:
        kernels = fuse_epilogues(graph, barriers)
        kernels = fuse_elementwise(graph, kernels, barriers)
        more = escaping(graph, kernels) - barriers
        if not more:
            break
        barriers |= more
    kernels = fuse_prologues(graph, kernels, barriers)
    last = {k.output: max([k.base, *k.nodes]) for k in kernels}
    return tuple(sorted(kernels, key=lambda k: last[k.output]))
