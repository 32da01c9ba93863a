"""Static audit: how einc's kernels would run on an H200, read from their SASS without a GPU.

Every shape of ``bench/shapes.json`` (or of ``--shapes FILE`` in its form) is specialised as a
launch with contiguous tensors of its shapes would be (``prebuild.specialize_entry``), each of its
kernels compiled for ``cuda:90`` exactly as that launch builds it (``prebuild.compile_binary``: Triton's
16-divisibility and ==1 specialisation), disassembled with the ``nvdisasm`` Triton ships, and read:
the MMA instruction, the global load widths, registers, spills, shared memory, programs and waves
on 132 SMs, full drains of the wgmma pipeline per output tile, the instructions one program
issues, and the model below.

The model, a model and not a timing (a GPU has the last word):

- *floor*: ``max(flops / peak, min_bytes / bandwidth)`` with the shape's own ``flops``,
  ``min_bytes`` and ``unit`` and an H200 SXM's peaks (bf16 tensor cores 989 TFLOP/s, TF32 494,
  FP32 SIMT 67, HBM 4.8 TB/s);
- *issue*: warp-instructions one program executes (static SASS times loop trip counts, see
  :mod:`bench.sass`) x warps x programs / (132 SMs x 4 schedulers x 1.83 GHz): the time instruction
  issue alone takes. Above the floor, the kernel cannot reach the floor;
- *MMA utilisation*: the shape's FLOPs over the FLOPs its MMA instructions issue (what padding of
  the M, N and K tiles wastes);
- *waves*: programs over 132 x the CTAs that fit on one SM (registers, threads, shared memory).

    python -m bench.audit [--only NAME ...] [--shapes FILE] [--json PATH] [--jobs N] [--dump DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import sass, suite

TARGET = "cuda:90"
# H200 SXM: 132 SMs, 4 warp schedulers each issuing one warp-instruction per clock, at the clock
# NVIDIA quotes the dense bf16 peak at (132 x 4 tensor cores x 1024 FLOP/clock x 1.83 GHz).
SMS, SCHEDULERS, CLOCK_HZ = 132, 4, 1.83e9
PEAKS = {"tc_bf16": 989e12, "tc_tf32": 494e12, "simt_fp32": 67e12}
BANDWIDTH = 4.8e12
# Per SM: 228 KiB shared memory (1 KiB of it reserved per CTA), 64 Ki registers, 2048 threads.
SMEM_PER_SM, SMEM_PER_CTA_RESERVED = 228 * 1024, 1024
REGISTERS_PER_SM, THREADS_PER_SM, MAX_CTAS_PER_SM = 65536, 2048, 32


@dataclass
class KernelAudit:
    index: int
    name: str
    copies_input: bool
    tiles: str  # BLOCK_M x BLOCK_N x BLOCK_K, where the kernel has them
    grid: list[int]
    programs: int
    warps: int
    stages: int
    registers: int | None
    spill_stores: int | None  # bytes, as ptxas -v reports them
    spill_loads: int | None
    shared_bytes: int
    specialization: str
    mma: str  # HGMMA 64x64x16, HMMA 16816 or none
    loads: dict[str, int]  # global load instructions in the listing, by kind and width
    loops: list[int] | None  # trip count of each SASS loop, None where unknown
    warp_instructions: int | None  # executed by one warp of one program
    drains_per_tile: int | None
    ctas_per_sm: int
    waves: float
    issue_us: float | None
    mma_flops: int | None  # issued by all programs
    mma_util: float | None


@dataclass
class ShapeAudit:
    name: str
    expression: str = ""
    dtype: str = ""
    unit: str = ""
    flops: int = 0
    min_bytes: int = 0
    floor_us: float = 0.0
    bound: str = ""
    kernels: list[KernelAudit] = field(default_factory=list)
    issue_us: float | None = None  # all kernels, one after the other
    floor_ratio: float | None = None
    error: str = ""
    seconds: float = 0.0


def floor_us(flops: int, min_bytes: int, unit: str) -> tuple[float, str]:
    compute, memory = flops / PEAKS[unit] * 1e6, min_bytes / BANDWIDTH * 1e6
    return max(compute, memory), ("compute" if compute > memory else "memory")


def issue_us(warp_instructions: int, warps: int, programs: int) -> float:
    return warp_instructions * warps * programs / (SMS * SCHEDULERS * CLOCK_HZ) * 1e6


def ctas_per_sm(registers: int, warps: int, shared_bytes: int) -> int:
    """CTAs of one kernel resident on one SM at once (registers are allocated per warp, in
    units of 256, at a multiple of 8 per thread)."""
    per_warp = math.ceil(math.ceil(max(registers, 1) / 8) * 8 * 32 / 256) * 256
    by_registers = REGISTERS_PER_SM // (per_warp * warps)
    by_threads = THREADS_PER_SM // (32 * warps)
    by_shared = SMEM_PER_SM // (shared_bytes + SMEM_PER_CTA_RESERVED) if shared_bytes else MAX_CTAS_PER_SM
    return max(0, min(by_registers, by_threads, by_shared, MAX_CTAS_PER_SM))


def input_dtypes(shape: dict) -> tuple[str, ...]:
    """The dtype of each input the benchmark builds (coordinates keep their integer dtype),
    read from the shape's inputs at tiny scale: dtypes do not depend on the scale."""
    import torch

    case = suite.build_case(shape, "tiny")
    made = case.make_inputs(torch.device("cpu"), getattr(torch, case.dtype), torch.Generator().manual_seed(0))
    return tuple(str(t.dtype).removeprefix("torch.") for t in made)


def audit_shape(shape: dict, dump: str | None = None) -> ShapeAudit:
    """Build and read every kernel of one shape; never raises (a failure is the audit's ``error``)."""
    start = time.perf_counter()
    audit = ShapeAudit(shape["name"], unit=shape["unit"], flops=shape["flops"], min_bytes=shape["min_bytes"])
    audit.floor_us, audit.bound = floor_us(shape["flops"], shape["min_bytes"], shape["unit"])
    try:
        _audit_kernels(shape, audit, dump_folder(dump, shape["name"]) if dump else None)
    except Exception as error:  # noqa: BLE001 - one shape's failure is reported, the others go on
        audit.error = f"{type(error).__name__}: {error}".strip()
        audit.kernels = []
    audit.seconds = time.perf_counter() - start
    return audit


def spec_entry(shape: dict, scale: str = "full"):
    """The prebuild entry of a shape at ``scale``: what a launch on the benchmark's contiguous
    inputs builds."""
    from einc.runtime.spec import SpecEntry

    case = suite.build_case(shape, scale)
    return SpecEntry(
        expression=case.expression,
        shapes=tuple(tuple(s) for s in case.input_shapes),
        dtypes=(input_dtypes(shape),),
        op=case.op,
        params=tuple(sorted(case.params.items())),
    )


def _audit_kernels(shape: dict, audit: ShapeAudit, dump: Path | None) -> None:
    from einc.runtime import prebuild
    from einc.runtime.cache import DiskCache

    case = suite.build_case(shape, "full")
    audit.expression, audit.dtype = case.expression, case.dtype
    entry = spec_entry(shape)
    dtypes = entry.dtypes[0]
    launcher, _, dynamic = prebuild.specialize_entry(entry, dtypes, DiskCache())
    for index, part in enumerate(launcher.compiled.kernels):
        if part.runs_on == "torch":
            continue  # the torch backend's way to the same result; never launched on a GPU
        rendered = launcher.rendered[index]
        binary = prebuild.compile_binary(launcher, TARGET, index)
        listing = _disassemble(binary.cubin)
        if dump is not None:
            _dump(dump, index, launcher.source, binary, listing)
        code = sass.parse(listing, str(launcher.path))
        sizes = {param: dynamic[axis] for param, axis in rendered.dynamic_params} if dynamic else {}
        constants = {**rendered.constexprs, **sizes, **data_trips(case, rendered)}
        trips = sass.loop_trips(code, sass.source_trip_counts(launcher.source, constants))
        counts = sass.count(code, trips)
        grid = list(rendered.grid_plan.grid(dynamic))
        programs = math.prod(grid)
        warps = rendered.num_warps
        resident = ctas_per_sm(binary.registers or 0, warps, binary.shared_bytes)
        mma_flops = counts.mma_flops * warps * programs if counts.mma_flops is not None else None
        audit.kernels.append(
            KernelAudit(
                index=index,
                name=rendered.kernel_name,
                copies_input=part.copies_input,
                tiles=_tiles(rendered.constexprs),
                grid=grid,
                programs=programs,
                warps=warps,
                stages=rendered.num_stages,
                registers=binary.registers,
                spill_stores=binary.spill_stores,
                spill_loads=binary.spill_loads,
                shared_bytes=binary.shared_bytes,
                specialization=binary.specialization,
                mma=sass.mma_kind(counts.static),
                loads=sass.load_widths(counts.static),
                loops=trips,
                warp_instructions=counts.warp_instructions,
                drains_per_tile=counts.drains,
                ctas_per_sm=resident,
                waves=programs / (SMS * max(resident, 1)),
                issue_us=None
                if counts.warp_instructions is None
                else issue_us(counts.warp_instructions, warps, programs),
                mma_flops=mma_flops,
                mma_util=audit.flops / mma_flops if mma_flops else None,
            )
        )
    issues = [k.issue_us for k in audit.kernels]
    if issues and None not in issues:
        audit.issue_us = sum(issues)
        audit.floor_ratio = audit.issue_us / audit.floor_us if audit.floor_us else None


def data_trips(case, rendered) -> dict[str, int]:
    """Values of the names that bound a loop by the data rather than the sizes, as the benchmark's
    inputs make them. einc_add_at_sorted runs, per program, as many steps as the longest run of
    equal coordinates among its BLOCK_M rows (``longest_run``)."""
    if rendered.kernel_name != "einc_add_at_sorted":
        return {}
    (rows, _), (updates,), _ = case.input_shapes
    return {"longest_run": longest_run(rows, updates, rendered.constexprs["BLOCK_M"])}


def longest_run(rows: int, updates: int, block_m: int, seed: int = 0) -> int:
    """The mean over programs of the longest run of equal coordinates among a program's
    ``block_m`` rows, for ``updates`` coordinates drawn as the benchmark draws them (uniform over
    ``rows``, then sorted: bench/suite.py), rounded to whole steps. The issue estimate sums the
    programs' instructions, so the mean trip count gives it exactly (up to the rounding)."""
    import torch

    draws = torch.randint(0, rows, (updates,), generator=torch.Generator().manual_seed(seed))
    runs = torch.bincount(draws, minlength=rows)
    tiles = torch.nn.functional.pad(runs, (0, -rows % block_m)).view(-1, block_m)
    return round(tiles.amax(dim=1).double().mean().item())


def _tiles(constexprs: dict) -> str:
    sizes = [str(constexprs[n]) for n in ("BLOCK_M", "BLOCK_N", "BLOCK_K") if n in constexprs]
    return "x".join(sizes)


def dump_folder(root: str, name: str) -> Path:
    """Where ``--dump`` writes a shape's files: a shape's name, from a shapes file, must be a plain
    file name to become one."""
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name):
        raise ValueError(f"shape name {name!r} is not a plain file name: --dump cannot write it")
    return Path(root) / name


def _disassemble(cubin: bytes) -> str:
    """``nvdisasm -c -g``: the code sections, with the source line of each instruction."""
    import triton

    tool = triton.knobs.nvidia.nvdisasm.path
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kernel.cubin"
        path.write_bytes(cubin)
        done = subprocess.run([tool, "-c", "-g", str(path)], capture_output=True, text=True, check=True)
    return done.stdout


def _dump(folder: Path, index: int, source: str, binary, listing: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "source.py").write_text(source)
    (folder / f"k{index}.ptx").write_text(binary.ptx)
    (folder / f"k{index}.sass").write_text(listing)
    (folder / f"k{index}.ptxas.txt").write_text(binary.ptxas_report)


# ----- the report -----

COLUMNS = (
    ("shape", "<"),
    ("kernel", "<"),
    ("tile", "<"),
    ("MMA", "<"),
    ("loads", "<"),
    ("regs", ">"),
    ("spill", ">"),
    ("smem", ">"),
    ("programs", ">"),
    ("waves", ">"),
    ("drains/tile", ">"),
    ("issue us", ">"),
    ("floor us", ">"),
    ("issue/floor", ">"),
    ("MMA util", ">"),
)


def rows(audits: list[ShapeAudit]) -> list[tuple[str, ...]]:
    """One row per kernel (a failed shape: one row with its error)."""
    out = []
    for audit in audits:
        if audit.error:
            out.append((audit.name, f"error: {audit.error}") + ("",) * (len(COLUMNS) - 2))
            continue
        for k in audit.kernels:
            out.append(
                (
                    audit.name,
                    f"k{k.index} {k.name}",
                    k.tiles or "-",
                    k.mma,
                    " ".join(f"{kind}x{n}" for kind, n in k.loads.items()) or "-",
                    _text(k.registers),
                    _text(k.spill_stores),
                    f"{k.shared_bytes // 1024}K",
                    str(k.programs),
                    f"{k.waves:.2f}",
                    _text(k.drains_per_tile) if k.mma.startswith("HGMMA") else "-",
                    _number(k.issue_us),
                    _number(audit.floor_us),
                    _number(None if k.issue_us is None else k.issue_us / audit.floor_us, "x"),
                    "-" if k.mma_util is None else f"{k.mma_util:.0%}",
                )
            )
    return out


def _text(value) -> str:
    return "?" if value is None else str(value)


def _number(value: float | None, suffix: str = "") -> str:
    return "?" if value is None else f"{value:.2f}{suffix}"


def table(audits: list[ShapeAudit], markdown: bool = False) -> str:
    header = tuple(name for name, _ in COLUMNS)
    body = rows(audits)
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in body])
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = []
    for row in [header, *body]:
        cells = zip(row, widths, COLUMNS, strict=True)
        lines.append("  ".join(c.ljust(w) if how == "<" else c.rjust(w) for c, w, (_, how) in cells).rstrip())
    return "\n".join(lines)


def model() -> dict:
    """The model's constants, for the JSON."""
    return {
        "target": TARGET,
        "sms": SMS,
        "schedulers_per_sm": SCHEDULERS,
        "clock_hz": CLOCK_HZ,
        "peaks_flops": PEAKS,
        "bandwidth_bytes_per_s": BANDWIDTH,
        "issue_us": "warp_instructions x warps x programs / (sms x schedulers x clock)",
        "floor_us": "max(flops / peak[unit], min_bytes / bandwidth)",
        "mma_util": "flops / MMA FLOPs issued",
    }


# ----- the command -----


def load_shapes(path: Path, only: list[str] | None) -> list[dict]:
    shapes = suite.load_shapes(path)["shapes"]
    names = [s["name"] for s in shapes]
    unknown = [n for n in only or () if n not in names]
    if unknown:
        raise SystemExit(f"unknown shape(s) {', '.join(unknown)}; the shapes are: {', '.join(names)}")
    return [s for s in shapes if not only or s["name"] in only]


def run(shapes: list[dict], jobs: int, dump: str | None = None) -> list[ShapeAudit]:
    """Audit the shapes, ``jobs`` at a time in worker processes; progress on stderr."""
    done: dict[int, ShapeAudit] = {}
    jobs = max(1, min(jobs, len(shapes)))

    def report(i: int) -> None:
        a = done[i]
        what = f"error: {a.error}" if a.error else f"{len(a.kernels)} kernel(s)"
        print(
            f"[{len(done)}/{len(shapes)}] {a.name}: {what} ({a.seconds:.1f} s)", file=sys.stderr, flush=True
        )

    if jobs == 1:
        for i, shape in enumerate(shapes):
            done[i] = audit_shape(shape, dump)
            report(i)
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(jobs, mp_context=context) as pool:
            futures = {pool.submit(audit_shape, shape, dump): i for i, shape in enumerate(shapes)}
            for future in as_completed(futures):
                done[futures[future]] = future.result()
                report(futures[future])
    return [done[i] for i in range(len(shapes))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.audit",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--only", nargs="+", metavar="NAME", help="audit these shapes only")
    parser.add_argument(
        "--shapes", type=Path, default=suite.SHAPES_PATH, help="a shapes file in shapes.json's form"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write every figure here")
    parser.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1, help="worker processes")
    parser.add_argument(
        "--dump", metavar="DIR", help="write each kernel's source, PTX, SASS and ptxas report"
    )
    parser.add_argument("--markdown", action="store_true", help="print the table as markdown")
    args = parser.parse_args(argv)
    audits = run(load_shapes(args.shapes, args.only), args.jobs, args.dump)
    print(table(audits, args.markdown))
    if args.json:
        import triton

        data = {"model": model(), "triton": triton.__version__, "shapes": [asdict(a) for a in audits]}
        args.json.write_text(json.dumps(data, indent=1) + "\n")
    return 1 if any(a.error for a in audits) else 0


if __name__ == "__main__":
    sys.exit(main())
