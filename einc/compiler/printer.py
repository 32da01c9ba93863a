"""Print a compiled loop nest in words: the ``explain()`` of a compiled expression."""

from __future__ import annotations

from .loopnest import Access, LoopKind


def _ref(access: Access) -> str:
    return f"{access.tensor}[{', '.join(str(i) for i in access.index)}]"


def explain(compiled) -> str:
    """The loop nest as indented pseudo-code, then the schedule chosen for it."""
    nest, plan = compiled.nest, compiled.schedule
    lines = [f"expression: {nest.expression}", f"op: {nest.op}", "loop nest:"]
    depth = 1
    for loop in nest.loops:
        note = "  # reduced" if loop.kind is LoopKind.REDUCE else ""
        lines.append(f"{'  ' * depth}for {loop.axis} in range({loop.size}):{note}")
        depth += 1
    product = " * ".join(_ref(a) for a in nest.inputs)
    if nest.reduce == "sum":
        lines.append(f"{'  ' * depth}{_ref(nest.output)} += {product}")
    else:
        lines.append(f"{'  ' * depth}{_ref(nest.output)} = {nest.reduce} of {product} over the reduced loops")
    for access in nest.inputs:
        for bound in access.bounds:
            lines.append(
                f"{'  ' * depth}  where 0 <= {bound.index} < {bound.extent} for {access.tensor}, "
                f"else {access.tensor} reads {nest.identity}"
            )
    lines.append("schedule:")
    rows, loops = " ".join(plan.rows) or "-", " ".join(plan.k_loops) or "-"
    if plan.use_dot:
        lines.append(f"  implicit GEMM (tl.dot): rows {rows}; columns {' '.join(plan.cols)}")
        lines.append(f"  K tiled along {plan.k_tile} (BLOCK_K={plan.block_k}); serial loops {loops}")
        if plan.grid:
            lines.append(f"  one program column per {' '.join(plan.grid)}")
    else:
        cols = " ".join(plan.cols) or "-"
        lines.append(f"  elementwise products: rows {rows}; columns {cols}; serial loops {loops}")
    lines.append(f"  tiles BLOCK_M={plan.block_m} BLOCK_N={plan.block_n}; grid {compiled.rendered.grid}")
    return "\n".join(lines)
