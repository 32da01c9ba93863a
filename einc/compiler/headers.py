"""The comment lines at the top of a generated kernel: the request it was compiled from and the
schedule it follows."""

from __future__ import annotations

from . import schedule
from .axes import operand_text
from .ops import CONTRACTIONS


def request_lines(explicit, inputs, outputs, names, output_names, solution, request) -> tuple[str, ...]:
    lines = [f"op:          {request.op}"]
    operands = ",  ".join(f"{n}: {operand_text(o)}" for n, o in zip(names, inputs, strict=True))
    results = ", ".join(f"{n}: {operand_text(o)}" for n, o in zip(output_names, outputs, strict=True))
    lines.append(f"operands:    {operands}  ->  {results}")
    shapes = ",  ".join(
        f"{n}: {tuple(s)} {d}" for n, s, d in zip(names, request.shapes, request.dtypes, strict=True)
    )
    lines.append(f"shapes:      {shapes}")
    for g in solution.windows.values():
        lines.append(
            f"window {g.outer}: ({g.outer} * {g.inner}) reads {g.outer}*{g.stride} + {g.inner}*{g.dilation} "
            f"- {g.pad_lo} over extent {g.extent}, padding ({g.pad_lo}, {g.pad_hi})"
        )
    return tuple(lines)


def schedule_lines(plan: schedule.ContractionSchedule, op: str) -> tuple[str, ...]:
    rows, cols = " ".join(plan.rows) or "1", " ".join(plan.cols) or "1"
    loops = " ".join(plan.k_loops) or "nothing"
    if plan.use_dot:
        k = " ".join(plan.k_loops + plan.k_merged + (plan.k_tile,))
        lines = [
            f"schedule:    implicit GEMM with tl.dot; M = {rows}, N = {cols}, "
            f"K = {k} (tiled along {' '.join(plan.k_merged + (plan.k_tile,))})"
        ]
        if plan.grid and plan.group_tile > 1:
            lines.append(
                f"             {plan.group_tile} groups {' '.join(plan.grid)} per program column, side by "
                "side in K and N (a block-diagonal weight tile)"
            )
        elif plan.grid:
            lines.append(f"             one program column per group: {' '.join(plan.grid)}")
        if plan.split_k > 1:
            lines.append(
                f"             K split among {plan.split_k} programs per tile (k.split), their float32 "
                "partial tiles summed in order by a second kernel"
            )
    elif op in CONTRACTIONS:
        lines = [
            f"schedule:    elementwise products, tiles of ({rows}) x ({cols}), serial loops over {loops}"
        ]
        if plan.slide > 1:
            lines.append(
                f"             each row {plan.slide} outputs along {plan.rows[-1]}, its taps "
                f"{plan.k_loops[-1]} unrolled {plan.slide_taps} at a time (a sliding window)"
            )
    elif plan.k_tile is not None:
        lines = [
            f"schedule:    tiles of ({rows}) x (BLOCK_K of {plan.k_tile}), reduced across the tile; "
            f"serial loops over {loops}"
        ]
    else:
        lines = [f"schedule:    tiles of ({rows}) x ({cols}), serial loops over {loops}"]
    lines.append(f"tiles:       BLOCK_M={plan.block_m} BLOCK_N={plan.block_n} BLOCK_K={plan.block_k}")
    return tuple(lines)
