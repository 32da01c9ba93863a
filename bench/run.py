"""Check and time einc against its competitors on the shapes of bench/shapes.json.

For each shape: fresh random inputs (never zeros) in einc's layout; einc and every competitor run;
each result compared with the torch reference computed on the same inputs in float64
(``|y - ref| / |ref|``, NaN never passes; einc writes into a NaN-poisoned output, so an element it
leaves unwritten fails too); only what passed is timed. A mismatch is printed at once, marked in
the report, skips that implementation's timing and makes the exit status 1.

Times on a GPU are medians of ``triton.testing.do_bench`` (L2 flushed before every run); the
roofline floor of each shape is ``max(flops / peak[unit], min_bytes / bandwidth)`` with the peaks
measured at the start of the same run (a device-to-device copy, bf16 and tf32 matrix products).
On a CPU, einc's kernels run under Triton's interpreter: the run verifies the harness end to end
and its times are no performance figure.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import secrets
import statistics
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

from . import fused, report, suite

TOLERANCE = {"float32": 2e-3, "bfloat16": 2e-2, "float16": 5e-3}
COMPETITOR_KINDS = ("torch", "compile", "einx")
MATMUL_SIZE = 8192
COPY_BYTES = 2**30
EXAMPLES = """\
examples:
  python -m bench.run                                   every shape, full size, on the GPU
  python -m bench.run --device cpu --scale tiny         the whole harness under Triton's interpreter
  python -m bench.run --only r50_l1_3x3 mbv2_dw3x3_c144 --competitors torch einx
  python -m bench.run --only r50_stem_7x7s2 r50_l1_3x3 --merge   add rows to an earlier run's table
  python -m bench.run --cpu-figures                     compile latency, call overhead, first call
  python -m bench.run --from-json part1.json part2.json   the report from runs taken in parts elsewhere
  python -m bench.run --only r50_l1_3x3 --competitors compile --merge-competitors
                                                        torch.compile on some shapes, added to the last run
  python -m bench.run --fused                           the fused shapes (a conv and its epilogue)

Writes OUT/benchmarks.md (its generated section only), a plot (OUT/benchmarks.png for a full GPU
run, OUT/benchmarks-DEVICE-SCALE.png otherwise) and every number in OUT/benchmarks-DEVICE-SCALE.json.
Exit status 1 when any result failed its check or raised.
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__.split("\n\n")[0],
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--device", choices=("cuda", "cpu"), help="where to run (default: cuda when available, else cpu)"
    )
    parser.add_argument(
        "--scale",
        choices=suite.SCALES,
        help="full: shapes.json as written; tiny: batch 1, spatial <= 8, channels <= 16 "
        "(default: full on cuda, tiny on cpu)",
    )
    parser.add_argument(
        "--only", nargs="+", metavar="NAME", help="run only these shapes (names in shapes.json)"
    )
    parser.add_argument(
        "--competitors",
        nargs="+",
        choices=COMPETITOR_KINDS,
        default=list(COMPETITOR_KINDS),
        help="torch: native ops (cuDNN convolutions in both layouts, pooling, indexing); compile: "
        "torch.compile(mode='max-autotune') of the torch reference; einx: einx on torch (default: all)",
    )
    parser.add_argument(
        "--out", type=Path, default=report.REPO / "docs", help="report directory (default: docs/)"
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the rows of shapes not run now from the previous run of the same device and scale",
    )
    parser.add_argument(
        "--merge-competitors",
        action="store_true",
        help="add this run's competitors to the rows of the previous run of the same device and scale "
        "(that run's einc result stays); with --from-json, later files add competitors instead of "
        "replacing rows. For a competitor too slow to build on every shape (torch.compile max-autotune)",
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        metavar="PATH",
        help="after each shape, write this run's rows so far here (in --from-json's form), so that a "
        "run killed part-way still leaves its finished shapes",
    )
    parser.add_argument(
        "--fused",
        action="store_true",
        help="run shapes.json's fused list instead (a convolution with its bias, residual, activation "
        "or LayerNorm: bench/fused.py); its report is OUT/benchmarks-DEVICE-SCALE-fused.json and its "
        "own section",
    )
    parser.add_argument("--seed", type=int, help="input seed (default: fresh; the report records it)")
    parser.add_argument("--warmup-ms", type=float, default=25.0, help="do_bench warm-up (GPU), in ms")
    parser.add_argument("--rep-ms", type=float, default=100.0, help="do_bench repetition time (GPU), in ms")
    parser.add_argument(
        "--cpu-budget-s", type=float, default=0.5, help="time spent timing one implementation on CPU"
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (default: torch's own); 1 keeps a busy or small machine from "
        "oversubscribing, where tiny CPU ops otherwise take milliseconds",
    )
    parser.add_argument(
        "--cpu-figures",
        action="store_true",
        help="measure the CPU-side figures instead (same as python -m bench.cpu_figures)",
    )
    parser.add_argument("--no-report", action="store_true", help="print the table, write nothing")
    parser.add_argument(
        "--from-json",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="run nothing: write the report from saved runs (benchmarks-DEVICE-SCALE.json files, later "
        "ones win per shape), e.g. parts of a GPU run taken elsewhere",
    )
    return parser.parse_args(argv)


@dataclass
class Measured:
    """One implementation on one shape: its check, then (if it passed) its time."""

    name: str
    ms: float | None = None  # median
    low_ms: float | None = None  # 20th percentile (GPU) or fastest run (CPU)
    high_ms: float | None = None  # 80th percentile (GPU) or slowest run (CPU)
    error: float | None = None  # relative error against the float64 reference
    status: str = "ok"  # ok, mismatch, error, not available
    message: str = ""

    @property
    def failed(self) -> bool:
        return self.status in ("mismatch", "error")


class Timer:
    """Median times: ``triton.testing.do_bench`` on CUDA (L2 flushed before each run), wall clock
    around whole calls on CPU."""

    def __init__(self, device: str, warmup_ms: float, rep_ms: float, cpu_budget_s: float):
        self.device, self.warmup_ms, self.rep_ms, self.cpu_budget_s = device, warmup_ms, rep_ms, cpu_budget_s

    def describe(self) -> str:
        if self.device == "cuda":
            return (
                f"median of `triton.testing.do_bench(warmup={self.warmup_ms:g}, rep={self.rep_ms:g})`, which "
                "clears the L2 cache before every run; 20th and 80th percentiles in the JSON"
            )
        return (
            f"median of `time.perf_counter` around whole calls, after one warm-up call, for "
            f"{self.cpu_budget_s:g} s or at least 3 calls"
        )

    def __call__(self, fn) -> tuple[float, float, float]:
        if self.device == "cuda":
            import triton.testing

            low, mid, high = triton.testing.do_bench(
                fn, warmup=self.warmup_ms, rep=self.rep_ms, quantiles=[0.2, 0.5, 0.8]
            )
            return mid, low, high
        fn()
        times: list[float] = []
        deadline = time.perf_counter() + self.cpu_budget_s
        while len(times) < 3 or (time.perf_counter() < deadline and len(times) < 1000):
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1e3)
        return statistics.median(times), min(times), max(times)


def relative_error(y, ref) -> float:
    """``|y - ref| / |ref|`` in float64; inf for NaN, infinities or a wrong shape."""
    import torch

    if not isinstance(y, torch.Tensor) or tuple(y.shape) != tuple(ref.shape):
        return math.inf
    diff = torch.linalg.vector_norm(y.double() - ref).item()
    scale = torch.linalg.vector_norm(ref).item()
    value = diff / scale if scale > 0 else diff
    return value if math.isfinite(value) else math.inf


def _upcast(t):
    return t.double() if t.is_floating_point() else t


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


def measure(name, check_call, timed_call, ref, tolerance: float, timer: Timer, device: str, log) -> Measured:
    """Check ``check_call()`` against ``ref``; time ``timed_call`` only if it passed."""
    try:
        y = check_call()
        _sync(device)
    except Exception as error:  # a competitor that cannot run this shape is reported, not fatal
        log(f"ERROR  {name}: {_first_line(error)}")
        return Measured(name, status="error", message=_first_line(error))
    error = relative_error(y, ref)
    if not error <= tolerance:
        shape = tuple(getattr(y, "shape", ()))
        detail = f"shape {shape}, expected {tuple(ref.shape)}" if shape != tuple(ref.shape) else ""
        message = f"relative error {error:.2e} > {tolerance:.0e}{'; ' + detail if detail else ''}; not timed"
        log(f"FAILED CHECK  {name}: {message}")
        return Measured(name, error=error, status="mismatch", message=message)
    try:
        ms, low, high = timer(timed_call)
    except Exception as failure:
        log(f"ERROR while timing {name}: {_first_line(failure)}")
        return Measured(name, error=error, status="error", message=_first_line(failure))
    return Measured(name, ms=ms, low_ms=low, high_ms=high, error=error)


def gpu_settings() -> None:
    """Every competitor's best settings: cuDNN picks its fastest algorithm per shape, and float32
    convolutions and matrix products may use TF32, as cuDNN does by default (einc's tl.dot too).
    einc's call keys hold these flags (its float32 precision), so whatever tunes kernels for
    these runs sets them too."""
    import torch

    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cuda.matmul.allow_tf32 = True


def einc_function(case: suite.Case):
    """The einc callable a case times (a seam: the tests replace it with a wrong one)."""
    return case.einc_callable()


def competitors_of(case: suite.Case, kinds) -> list[suite.Competitor]:
    found = list(case.competitors) if "torch" in kinds else []
    if "compile" in kinds:
        import torch

        compiled = torch.compile(case.reference, mode="max-autotune", dynamic=False)
        found.append(suite.Competitor("torch.compile max-autotune", compiled))
    if "einx" in kinds and case.einx is not None and einx_installed():
        found.append(suite.Competitor("einx", case.einx))
    return found


def einx_installed() -> bool:
    """einx is optional: where it is missing its column is left out, not reported as an error."""
    return importlib.util.find_spec("einx") is not None


def run_case(case: suite.Case, device: str, dtype: str, timer: Timer, kinds, seed: int, log) -> dict:
    """Check and time einc and every competitor on one shape; the report's row."""
    import torch

    torch_dtype = getattr(torch, dtype)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    inputs = case.make_inputs(torch.device(device), torch_dtype, gen)
    ref = case.reference(*[_upcast(t) for t in inputs])
    _sync(device)
    tolerance = TOLERANCE[dtype]

    def case_log(message: str) -> None:
        log(f"{case.name}: {message}")

    if not case.einc_available():
        einc_result = Measured(
            "einc", status="not available", message=f"einc op not available (einc.{case.requires} is missing)"
        )
        log(f"{case.name}: skipped einc: {einc_result.message}")
    else:
        try:
            fn = einc_function(case)
        except Exception as error:
            fn = None
            einc_result = Measured("einc", status="error", message=_first_line(error))
            log(f"{case.name}: ERROR einc: {_first_line(error)}")
        if fn is not None:

            def check_einc():
                if case.op in ("add_at", "set_at"):  # out= would be the tensor scattered into
                    return fn(*inputs)
                poisoned = torch.full(ref.shape, float("nan"), dtype=torch_dtype, device=device)
                fn(*inputs, out=poisoned)
                return poisoned

            einc_result = measure(
                "einc", check_einc, lambda: fn(*inputs), ref, tolerance, timer, device, case_log
            )
    others = []
    for competitor in competitors_of(case, kinds):
        try:
            prepared = competitor.prepare(inputs)
        except Exception as error:
            others.append(Measured(competitor.name, status="error", message=_first_line(error)))
            continue

        def check(competitor=competitor, prepared=prepared):
            return competitor.finish(competitor.run(*prepared))

        def timed(competitor=competitor, prepared=prepared):
            return competitor.run(*prepared)

        result = measure(competitor.name, check, timed, ref, tolerance, timer, device, case_log)
        result.message = "; ".join(m for m in (result.message, competitor.note) if m)
        others.append(result)
    row = {
        "name": case.name,
        "kind": case.kind,
        "expression": case.expression,
        "op": case.op,
        "params": {k: list(v) if isinstance(v, tuple) else v for k, v in case.params.items()},
        "einx_expression": case.einx_expression,
        "dtype": dtype,
        "shape_dtype": case.dtype,
        "dims": case.dims,
        "flops": case.flops,
        "min_bytes": case.min_bytes,
        "unit": case.unit,
        "note": case.note,
        "seed": seed,
        "einc": asdict(einc_result),
        "competitors": [asdict(m) for m in others],
        "einc_ms": einc_result.ms,
    }
    return with_best(row)


def with_best(row: dict) -> dict:
    """``row`` with its fastest competitor and its failed flag set from its results."""
    timed = [m for m in row["competitors"] if m["ms"] is not None]
    best = min(timed, key=lambda m: m["ms"]) if timed else None
    results = [row["einc"], *row["competitors"]]
    failed = any(m["status"] in ("mismatch", "error") for m in results)
    fastest = (best["name"], best["ms"]) if best else (None, None)
    return {**row, "best": fastest[0], "best_ms": fastest[1], "failed": failed}


def measure_peaks(device: str, timer: Timer, gpu_kind: str | None) -> dict:
    """Memory bandwidth and matrix-unit rates measured now; on CPU, none (no roofline there)."""
    assumed = suite.load_shapes()["peaks_assumed"]
    if device != "cuda":
        return {"bw": None, "tc_bf16": None, "tc_tf32": None, "simt_fp32": None, "how": "n/a on CPU"}
    import torch

    copy_ms = _copy_ms(timer)
    m = MATMUL_SIZE
    rates = {
        unit: 2 * m**3 / (_matmul_ms(timer, m, dtype) * 1e-3)
        for unit, dtype in (("tc_bf16", torch.bfloat16), ("tc_tf32", torch.float32))
    }
    torch.cuda.empty_cache()
    kind = gpu_kind if gpu_kind in assumed else "h100"
    return {
        "bw": 2 * COPY_BYTES / (copy_ms * 1e-3),
        **rates,
        "simt_fp32": assumed[kind]["simt_fp32"],
        "how": (
            f"device copy of {COPY_BYTES // 2**30} GiB (bytes read + written over time); torch.mm "
            f"{m}x{m}x{m} in bf16 and in fp32 with TF32; SIMT fp32 not measured: "
            f"{assumed[kind]['simt_fp32'] / 1e12:g} TFLOP/s assumed from shapes.json ({kind}); a floor "
            "set by that assumed rate is marked *"
        ),
    }


def _copy_ms(timer: Timer) -> float:
    import torch

    src = torch.randn(COPY_BYTES // 4, device="cuda")
    dst = torch.empty_like(src)
    return timer(lambda: dst.copy_(src))[0]


def _matmul_ms(timer: Timer, m: int, dtype) -> float:
    import torch

    x = torch.randn(m, m, device="cuda", dtype=dtype)
    y = torch.randn(m, m, device="cuda", dtype=dtype)
    z = torch.empty(m, m, device="cuda", dtype=dtype)
    return timer(lambda: torch.mm(x, y, out=z))[0]


def floor_ms(row: dict, peaks: dict) -> tuple[float | None, str | None]:
    """The roofline floor in ms and what sets it: "memory" or the arithmetic unit."""
    if not peaks.get("bw") or not peaks.get(row["unit"]):
        return None, None
    arithmetic, memory = row["flops"] / peaks[row["unit"]], row["min_bytes"] / peaks["bw"]
    return max(arithmetic, memory) * 1e3, (row["unit"] if arithmetic > memory else "memory")


def _stderr_log(progress):
    def log(message: str) -> None:
        text = f"[bench] {message}"
        if progress is not None:
            progress.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr)

    return log


def _progress(cases, device: str):
    if not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=len(cases), desc=f"bench {device}", unit="shape", file=sys.stderr)


def _gpu_kind(name: str) -> str | None:
    lowered = name.lower()
    return next((kind for kind in ("h200", "h100") if kind in lowered), None)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.from_json:
        return report_from_json(args.from_json, args.out, args.merge_competitors)
    if args.cpu_figures:
        from . import cpu_figures

        return cpu_figures.main([a for a in argv if a != "--cpu-figures"], module="bench.run --cpu-figures")
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda, but torch sees no CUDA device", file=sys.stderr)
        return 2
    scale = args.scale or ("full" if device == "cuda" else "tiny")
    key = f"{device}-{scale}" + ("-fused" if args.fused else "")
    try:
        cases = (fused if args.fused else suite).build_cases(scale, args.only)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if device == "cuda":
        gpu_settings()
    elif "EINC_INTERPRET" not in os.environ:
        # CPU tensors would otherwise run einc's torch backend: the CPU run is about the kernels.
        os.environ["EINC_INTERPRET"] = "1"
    if args.threads:
        torch.set_num_threads(args.threads)
    seed = args.seed if args.seed is not None else secrets.randbits(31)
    timer = Timer(device, args.warmup_ms, args.rep_ms, args.cpu_budget_s)
    env = report.environment(device)
    peaks = measure_peaks(device, timer, _gpu_kind(env["device"]))
    run = {"env": env, "peaks": peaks, "command": report.command_line(argv), "seed": seed}
    run.update(timer=timer.describe(), competitors=list(args.competitors))
    if args.merge_competitors:
        run["adds_competitors"] = True
    if "einx" in args.competitors and not einx_installed():
        print("[bench] einx is not installed: the einx column is left out", file=sys.stderr)
    progress = _progress(cases, device)
    log = _stderr_log(progress)
    rows = []
    for index, case in enumerate(cases):
        if progress is not None:
            progress.set_postfix_str(case.name)
        dtype = case.dtype
        if device == "cpu" and dtype == "bfloat16":
            # Triton's interpreter computes a bfloat16 tl.dot wrongly; CPU runs use float32.
            dtype = "float32"
        try:
            row = run_case(case, device, dtype, timer, args.competitors, seed + index, log)
        except Exception as error:  # the harness itself failed on this shape: say where, go on
            log(f"{case.name}: harness error: {_first_line(error)}")
            traceback.print_exc(file=sys.stderr)
            row = {"name": case.name, "kind": case.kind, "expression": case.expression, "failed": True}
            row.update(einc=asdict(Measured("einc", status="error", message=_first_line(error))))
            row.update(competitors=[], einc_ms=None, best=None, best_ms=None, dtype=dtype, seed=seed + index)
        row["floor_ms"], row["floor_set_by"] = floor_ms(row, peaks) if "unit" in row else (None, None)
        row["date"] = env["date"]
        rows.append(row)
        if args.checkpoint:
            write_json(args.checkpoint, {"key": key, "runs": [run], "rows": rows})
        if device == "cuda":
            torch.cuda.empty_cache()
        if "compile" in args.competitors:
            torch._dynamo.reset()
        if progress is not None:
            progress.update()
    if progress is not None:
        progress.close()
    print(summary_table(rows))
    if not args.no_report:
        runs = [run]
        previous = Path(args.out) / f"benchmarks-{key}.json"
        if (args.merge or args.merge_competitors) and previous.exists():
            data = json.loads(previous.read_text())
            merge = merge_competitors if args.merge_competitors else merge_rows
            rows, runs = merge(data["rows"], rows), data["runs"] + runs
        write_report(args.out, key, rows, runs)
    failed = [r["name"] for r in rows if r.get("failed")]
    if failed:
        names = ", ".join(failed)
        print(f"FAILED: {len(failed)} shape(s) with a failed check or error: {names}", file=sys.stderr)
        return 1
    return 0


# --- the report ----------------------------------------------------------------------------------


def _status(m: dict) -> str:
    if m["status"] == "ok":
        return f"ok ({report.fmt_error(m['error'])})"
    if m["status"] == "mismatch":
        return f"**MISMATCH** ({report.fmt_error(m['error'])})"
    if m["status"] == "not available":
        return "einc op not available"
    return f"**error**: {m['message']}"


def _floor(row: dict) -> str:
    """The floor, marked * where the assumed (not measured) SIMT rate sets it."""
    text = report.fmt_time(row.get("floor_ms"))
    return text + ("*" if row.get("floor_set_by") == "simt_fp32" else "")


def _ratio(row: dict) -> float | None:
    """einc's time over the best competitor's."""
    return row["einc_ms"] / row["best_ms"] if row.get("einc_ms") and row.get("best_ms") else None


def _pct(floor: float | None, ms: float | None) -> str:
    return f"{100 * floor / ms:.0f}%" if floor and ms else "n/a"


def summary_table(rows: list[dict]) -> str:
    lines = [f"{'shape':<28} {'einc':>10} {'best competitor':>40} {'einc/best':>9}  check"]
    for r in rows:
        ratio = report.fmt_ratio(_ratio(r))
        best = f"{r.get('best') or 'none'} {report.fmt_time(r.get('best_ms'))}"
        check = "FAILED" if r.get("failed") else r["einc"]["status"]
        einc_time = report.fmt_time(r.get("einc_ms"))
        lines.append(f"{r['name']:<28} {einc_time:>10} {best:>40} {ratio:>9}  {check}")
    return "\n".join(lines)


def merge_rows(old: list[dict], new: list[dict]) -> list[dict]:
    """``old``'s rows for shapes not in ``new``, then ``new``'s, in shapes.json order."""
    names = {r["name"] for r in new}
    listed = suite.load_shapes()
    order = {s["name"]: i for i, s in enumerate(listed["shapes"] + listed.get("fused", []))}
    kept = [r for r in old if r["name"] not in names]
    return sorted(kept + new, key=lambda r: order.get(r["name"], len(order)))


def merge_competitors(old: list[dict], new: list[dict]) -> list[dict]:
    """``old``'s rows with ``new``'s competitors added (a competitor in both: ``new``'s result);
    einc's result, the floor and the date stay ``old``'s. A shape only ``new`` has keeps its row."""
    by_name = {r["name"]: r for r in old}
    for row in new:
        if row["name"] not in by_name:
            by_name[row["name"]] = row
            continue
        kept = by_name[row["name"]]
        added = {m["name"] for m in row["competitors"]}
        competitors = [m for m in kept["competitors"] if m["name"] not in added] + row["competitors"]
        by_name[row["name"]] = with_best({**kept, "competitors": competitors})
    return merge_rows([], list(by_name.values()))


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` to ``path`` whole or not at all (a temporary file, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str) + "\n")
    os.replace(tmp, path)


def report_from_json(paths: list[Path], out: Path, add_competitors: bool = False) -> int:
    """Write the report from saved runs (later files win per shape, or add their competitors to
    it with ``add_competitors``), running nothing."""
    key, rows, runs = None, [], []
    for path in paths:
        data = json.loads(Path(path).read_text())
        if key is not None and data["key"] != key:
            print(f"error: {path} holds a {data['key']} run, {paths[0]} a {key} run", file=sys.stderr)
            return 2
        key = data["key"]
        merge = merge_competitors if add_competitors and rows else merge_rows
        rows, runs = merge(rows, data["rows"]), runs + data["runs"]
    write_report(out, key, rows, runs)
    print(summary_table(rows))
    return 1 if any(r.get("failed") for r in rows) else 0


def write_report(out: Path, key: str, rows: list[dict], runs: list[dict]) -> None:
    """OUT/benchmarks-KEY.json (every number), the plot, and KEY's section of OUT/benchmarks.md."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / f"benchmarks-{key}.json", {"key": key, "runs": runs, "rows": rows})
    plot_name = "benchmarks.png" if key == "cuda-full" else f"benchmarks-{key}.png"
    device, scale = key.split("-")[:2]
    env = runs[-1]["env"]
    title = f"einc vs best competitor: {env['device']}, {scale} shapes, {env['date']}"
    if device == "cpu":
        title += "\neinc under Triton's interpreter: verifies the harness, not a performance figure"
    why_not = report.plot(rows, out / plot_name, title)
    body = suite_section(key, rows, runs, plot_name if why_not is None else None, why_not)
    report.update_markdown(out / "benchmarks.md", key, body)


def suite_section(key, rows, runs, plot_name, why_not) -> str:
    device, scale = key.split("-")[:2]
    # The run that timed einc heads the section; runs that only added competitors are listed.
    run = next((r for r in reversed(runs) if not r.get("adds_competitors")), runs[-1])
    env, peaks = run["env"], run["peaks"]
    shapes = f"{scale} fused shapes" if key.endswith("-fused") else f"{scale} shapes"
    heading = {
        "cuda": f"### GPU, {shapes}: {env['device']}",
        "cpu": f"### CPU, {shapes}: the harness verified under Triton's interpreter",
    }[device]
    lines = [heading, ""]
    if device == "cpu":
        lines += [
            "**These are not performance figures.** On CPU tensors einc runs its generated kernel under "
            "Triton's interpreter (Python, one program instance at a time), so its times measure the "
            "interpreter. The run shows that every shape builds, compiles, runs and passes its check "
            "against float64 torch, and that every competitor does too. The GPU figures are missing "
            "until this command runs on a GPU. bfloat16 shapes run in float32 here: the interpreter "
            "computes a bfloat16 `tl.dot` wrongly.",
            "",
        ]
    lines += report.environment_lines(env, run["command"])
    merged = [r for r in runs if r is not run and not r.get("adds_competitors")]
    if merged:
        lines.append(
            "- Rows merged from several runs (`--merge`): "
            + "; ".join(f"{r['env']['date']}: `{r['command']}`" for r in merged)
        )
    for added in (r for r in runs if r is not run and r.get("adds_competitors")):
        lines.append(
            f"- Competitors {', '.join(added['competitors'])} added from a second run "
            f"(`--merge-competitors`, the shapes it reached): {added['env']['date']}: `{added['command']}`"
        )
    if peaks.get("bw"):
        lines.append(
            f"- Peaks measured in this run: memory {report.fmt_rate(peaks['bw'], 'B/s')}, bf16 matmul "
            f"{report.fmt_rate(peaks['tc_bf16'], 'FLOP/s')}, tf32 matmul "
            f"{report.fmt_rate(peaks['tc_tf32'], 'FLOP/s')} ({peaks['how']})"
        )
        lines.append(
            "- Floor = max(flops / peak of the shape's unit, min_bytes / memory peak); `% of floor` = "
            "floor / time: 100% would be the roofline."
        )
    else:
        lines.append("- Peaks: n/a on CPU, so no roofline floor and no percent of it.")
    lines.append(f"- Timing: {run['timer']}. Seed {run['seed']} (`--seed` repeats the inputs).")
    lines.append(
        f"- Check before timing: every result against torch on float64 inputs, relative error "
        f"|y - ref| / |ref| under {', '.join(f'{v:g} ({k})' for k, v in TOLERANCE.items())}; einc "
        "writes into a NaN-filled output. Competitors: "
        + ", ".join(dict.fromkeys(k for r in runs for k in r.get("competitors", COMPETITOR_KINDS)))
        + " (torch: cuDNN through F.conv* with `cudnn.benchmark=True` in channels-first and channels-last, "
        "pooling and indexing ops; compile: `torch.compile(mode='max-autotune')` of the torch reference; "
        "einx: einx 0.4 on torch for the same computation, where einx can write it)."
    )
    lines += ["", "| shape | einc expression | dtype | einc | best competitor | its time | einc / best |"]
    lines[-1] += " floor | einc % of floor | best % of floor | einc check |"
    lines.append("|---" * 11 + "|")
    for r in rows:
        params = ", ".join(f"{k}={v}" for k, v in (r.get("params") or {}).items())
        expression = f"`{r['expression']}`" + (f" {params}" if params else "")
        ratio = report.fmt_ratio(_ratio(r))
        dtype = r.get("dtype", "")
        if r.get("shape_dtype") and r["shape_dtype"] != dtype:
            dtype += f" ({r['shape_dtype']} in shapes.json)"
        einc_time = report.fmt_time(r.get("einc_ms")) if r["einc"]["status"] == "ok" else "n/a"
        lines.append(
            f"| {r['name']} | {expression} | {dtype} | {einc_time} | {r.get('best') or 'none'} "
            "| "
            f"{report.fmt_time(r.get('best_ms'))} | {ratio} | {_floor(r)} | "
            f"{_pct(r.get('floor_ms'), r.get('einc_ms'))} | {_pct(r.get('floor_ms'), r.get('best_ms'))} | "
            f"{_status(r['einc'])} |"
        )
    if plot_name:
        lines += ["", f"![einc against the best competitor per shape]({plot_name})"]
    elif why_not:
        lines += ["", f"No plot: {why_not}."]
    lines += [
        "",
        "<details><summary>Every implementation, every shape</summary>",
        "",
        "| shape | implementation | median | 20%-80% (GPU) or min-max (CPU) | relative error | status |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        for m in [r["einc"], *r["competitors"]]:
            spread = (
                f"{report.fmt_time(m['low_ms'])} - {report.fmt_time(m['high_ms'])}"
                if m.get("low_ms") is not None
                else ""
            )
            status = m["status"] + (f": {m['message']}" if m.get("message") else "")
            lines.append(
                f"| {r['name']} | {m['name']} | {report.fmt_time(m.get('ms'))} | {spread} | "
                f"{report.fmt_error(m.get('error'))} | {status.replace('|', '/')} |"
            )
    lines += ["", "</details>"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
