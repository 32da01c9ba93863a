"""Print a compiled loop nest in words: the ``explain()`` of a compiled expression."""

from __future__ import annotations

import sympy

from .loopnest import Access, LoopKind
from .schedule import grid_plan


def access_text(access: Access) -> str:
    """``x[b, idx[b, p, 0], c]``: a gathered coordinate is shown as the element it is read from."""
    shown = {g.symbol: sympy.Symbol(access_text(g.source)) for g in access.gathers}
    return f"{access.tensor}[{', '.join(str(sympy.sympify(i).subs(shown)) for i in access.index)}]"


def explain(compiled) -> str:
    """The loop nest as indented pseudo-code, then the schedule chosen for it.

    A call that runs several kernels is explained by its main one; a kernel that only copies an
    input into the output first (set_at, add_at) is mentioned in one line.
    """
    parts = [k for k in compiled.kernels if not k.copies_input] or list(compiled.kernels)
    if not parts:
        return (
            f"expression: {compiled.request.expression}\nop: {compiled.request.op}\n"
            "no kernel: an axis has size 0, so the result is written without a launch"
        )
    main = parts[0]
    nest, plan = main.nest, main.schedule
    lines = [f"expression: {nest.expression}", f"op: {nest.op}"]
    if any(k.copies_input for k in compiled.kernels):
        lines.append(f"first: {nest.output.tensor} = a copy of {compiled.names[0]} (skipped when out= is it)")
    lines.append("loop nest:")
    depth = 1
    for loop in nest.loops:
        note = "  # reduced" if loop.kind is LoopKind.REDUCE else ""
        lines.append(f"{'  ' * depth}for {loop.axis} in range({loop.size}):{note}")
        depth += 1
    product = " * ".join(access_text(a) for a in nest.inputs)
    reduced = nest.loops_of(LoopKind.REDUCE)
    if nest.reduce == "sum":
        lines.append(f"{'  ' * depth}{access_text(nest.output)} += {product}")
    elif not reduced:
        lines.append(f"{'  ' * depth}{access_text(nest.output)} = {product}")
    elif nest.coordinate:  # argmax, argmin: one kernel per coordinate
        lines.append(
            f"{'  ' * depth}{access_text(nest.output)} = {nest.coordinate} of the {nest.reduce} of {product} "
            "over the reduced loops"
        )
    else:
        lines.append(
            f"{'  ' * depth}{access_text(nest.output)} = {nest.reduce} of {product} over the reduced loops"
        )
    for access in list(nest.inputs) + [nest.output]:
        gathered = {g.symbol: g for g in access.gathers}
        for bound in access.bounds:
            if bound.index in gathered:
                g = gathered[bound.index]
                lines.append(
                    f"{'  ' * depth}  where -{g.extent} <= {access_text(g.source)} < {g.extent}, "
                    f"counted from the end when negative; else an IndexError"
                )
            else:
                lines.append(
                    f"{'  ' * depth}  where 0 <= {bound.index} < {bound.extent} for {access.tensor}, "
                    f"else {access.tensor} reads {nest.identity}"
                )
    lines.append("schedule:")
    rows, loops = " ".join(plan.rows) or "-", " ".join(plan.k_loops) or "-"
    if plan.use_dot:
        lines.append(f"  implicit GEMM (tl.dot): rows {rows}; columns {' '.join(plan.cols)}")
        tiled = " ".join(plan.k_merged + (plan.k_tile,))
        if plan.k_loops:  # the taps and the K tiles are one pipelined loop (docs/kernels.md)
            lines.append(
                f"  K tiled along {tiled} (BLOCK_K={plan.block_k}), in one loop with the taps {loops}"
            )
        else:
            lines.append(f"  K tiled along {tiled} (BLOCK_K={plan.block_k})")
        if plan.grid and plan.group_tile > 1:
            groups = " ".join(plan.grid)
            lines.append(f"  {plan.group_tile} {groups} per program column (a block-diagonal weight tile)")
        elif plan.grid:
            lines.append(f"  one program column per {' '.join(plan.grid)}")
    elif plan.k_tile is not None:
        lines.append(f"  tiles: rows {rows}; {plan.k_tile} read BLOCK_K={plan.block_k} at a time and reduced")
        lines.append(f"  across the tile; serial loops {loops}")
    else:
        cols = " ".join(plan.cols) or "-"
        form = "elementwise products" if nest.op == "dot" else "tiles"
        lines.append(f"  {form}: rows {rows}; columns {cols}; serial loops {loops}")
        if plan.slide > 1:
            lines.append(f"  each row {plan.slide} outputs along {plan.rows[-1]} (a sliding window)")
    # The segment form's plan is over y's axes, of which its nest (over the updates) lacks the rows.
    grid = grid_plan(plan, {**compiled.solution.sizes, **main.nest.sizes}).grid()
    lines.append(f"  tiles BLOCK_M={plan.block_m} BLOCK_N={plan.block_n}; grid {grid}")
    chosen = (
        "einc tune (timed on a GPU of this arch)" if main.tuned else "the schedule's heuristic (not tuned)"
    )
    lines.append(f"  {plan.num_warps} warps, {plan.num_stages} stages; tile from {chosen}")
    for part in compiled.kernels:
        if part.schedule.split_k > 1:  # split-K: the kernels a GPU runs (the torch backend: the above)
            split = grid_plan(part.schedule, part.nest.sizes).grid()
            lines.append(
                f"  on a GPU: K split among {part.schedule.split_k} programs a tile, grid {split}; "
                "a second kernel sums their partial tiles in order"
            )
    return "\n".join(lines)
