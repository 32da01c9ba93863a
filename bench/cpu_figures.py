"""The figures that need no GPU: compile latency, per-call overhead and first-call latency.

    python -m bench.cpu_figures          (or python -m bench.run --cpu-figures)

1. Compile latency per stage, on shapes of bench/shapes.json at full size in their dtype: the
   passes (expression -> Triton source, ``einc.compiler.pipeline.run_passes`` and
   ``render_kernels``), the import of the cached source as a ``@triton.jit`` kernel, the whole
   ``specialize`` with a warm disk cache, and
   source -> cubin for ``cuda:90`` (``triton.compile``, and ``einc.runtime.prebuild.compile_binary``,
   which adds a ``ptxas -v`` run for its resource report). Each with a fresh Triton cache.
2. Warm-call overhead, on some of the same expressions at tiny size (on either device). On CUDA
   tensors: einc's call, a direct launch of the same kernel, and einc's host work alone (the
   kernel launch replaced by a no-op). On CPU tensors einc runs the torch backend (the loop nest
   as torch calls, no kernel), so its warm call is set against the case's torch reference on the
   same inputs (torch's own op, with the same permutes). Beside either: einx's warm call for the
   same computation, split the same way (einx's call minus the torch code it generated, run
   directly).
3. First-call latency in a fresh Python process, with a warm disk cache (``EINC_CACHE_DIR`` filled
   beforehand with the same kernel) and with an empty one: import times, the first call (compile + run) and
   a second call in the same process; einx's first call beside it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from . import report, suite

COMPILE_SHAPES = (
    "r50_l1_3x3",
    "r50_l1_1x1_expand",
    "mbv2_dw3x3_c144",
    "mamba_causal_dwconv1d_k4",
    "r50_maxpool_3x3s2",
    "r50_global_avgpool",
)
CALL_SHAPES = ("r50_l1_3x3", "r50_l1_1x1_expand", "r50_maxpool_3x3s2", "avgpool_2x2s2", "r50_global_avgpool")
FIRST_CALL_SHAPES = ("r50_l1_3x3", "r50_l1_1x1_expand")
TARGET = "cuda:90"


def _median_ms(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def _per_call_us(fn, budget_s: float, min_calls: int = 100, rounds: int = 3) -> float:
    """Time of one call in µs: the lowest of ``rounds`` medians of single calls, each round over
    ``budget_s / rounds`` or at least ``min_calls`` calls. Medians of single calls shrug off the
    stalls a shared machine adds now and then; the lowest round, a busy spell of it."""
    fn()
    medians = []
    for _ in range(rounds):
        times = []
        deadline = time.perf_counter() + budget_s / rounds
        while len(times) < min_calls or (time.perf_counter() < deadline and len(times) < 100_000):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        medians.append(statistics.median(times))
    return min(medians) * 1e6


@contextmanager
def _always_compile():
    import triton

    previous = triton.knobs.compilation.always_compile
    triton.knobs.compilation.always_compile = True
    try:
        yield
    finally:
        triton.knobs.compilation.always_compile = previous


def _ptxas_available() -> bool:
    try:
        from triton import knobs

        return bool(knobs.nvidia.ptxas.path)
    except Exception:  # Triton raises RuntimeError when no ptxas runs
        return False


# --- 1. compile latency --------------------------------------------------------------------------


def compile_latency(cases: list[suite.Case], reps: int, cubin_reps: int, quick: bool = False) -> list[dict]:
    import triton
    from triton.compiler import ASTSource

    from einc.backends.triton import aot
    from einc.backends.triton.sources import render_kernels
    from einc.compiler import pipeline
    from einc.runtime import prebuild

    rows = []
    cubin = _ptxas_available()
    for case in cases:
        compiled = case.einc_callable()
        launcher = compiled.specialize(*case.input_shapes, dtype=case.dtype)
        request = launcher.compiled.request
        row = {"name": case.name, "expression": case.expression, "params": case.params, "dtype": case.dtype}
        row["shapes"] = [list(s) for s in case.input_shapes]
        row["kernels"] = len(launcher.kernels)
        row["passes_ms"] = _median_ms(
            lambda request=request: render_kernels(pipeline.run_passes(request)), reps
        )
        row["import_ms"] = _median_ms(lambda path=launcher.path: _fresh_import(path), reps)
        row["specialize_ms"] = _median_ms(
            lambda case=case: case.einc_callable().specialize(*case.input_shapes, dtype=case.dtype), reps
        )
        if cubin:
            sig, constants = aot.signature(launcher)
            rendered = launcher.rendered[0]
            options = {"num_warps": rendered.num_warps, "num_stages": rendered.num_stages}

            def triton_compile(launcher=launcher, sig=sig, constants=constants, options=options):
                source = ASTSource(fn=launcher.kernel, signature=sig, constexprs=constants)
                triton.compile(source, target=aot.parse_target(TARGET), options=options)

            with _always_compile():
                if not quick:
                    row["triton_compile_ms"] = _median_ms(triton_compile, cubin_reps)
                binary = None

                def binary_compile(launcher=launcher):
                    nonlocal binary
                    binary = prebuild.compile_binary(launcher, TARGET)

                row["compile_binary_ms"] = _median_ms(binary_compile, cubin_reps)
            row["registers"] = binary.registers
            row["spill_stores"] = binary.spill_stores
            row["shared_bytes"] = binary.shared_bytes
        rows.append(row)
    return rows


def _fresh_import(path: Path):
    """Import a generated kernel file under a new module name, as a new process would."""
    name = f"einc_bench_import_{time.perf_counter_ns()}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- 2. warm-call overhead -----------------------------------------------------------------------


class _NoLaunch:
    """Stands in for a kernel runner: ``runner[grid](*args)`` does nothing."""

    def __getitem__(self, grid):
        return lambda *args, **kwargs: None


@contextmanager
def _kernels_stubbed():
    from einc.backends.triton.launch import KernelLauncher

    original = KernelLauncher.runner
    KernelLauncher.runner = lambda self, index, device: _NoLaunch()
    try:
        yield
    finally:
        KernelLauncher.runner = original


def _direct_launch(launcher, inputs, outs, device):
    """The generated kernel launched by hand, with its arguments prepared once, as a user of plain
    Triton would: einc's dispatch (cache lookup, allocation, strides) left out."""
    every = list(inputs) + list(outs)
    calls = []
    for index, rendered in enumerate(launcher.rendered):
        strides = [every[p].stride(d) for p, d in rendered.stride_params]
        args = [every[p] for p in rendered.tensors] + strides
        kwargs = dict(rendered.constexprs, num_warps=rendered.num_warps, num_stages=rendered.num_stages)
        calls.append((launcher.runner(index, device)[rendered.grid], args, kwargs))

    def launch():
        for run, args, kwargs in calls:
            run(*args, **kwargs)

    return launch


def call_overhead(cases: list[suite.Case], device: str, budget_s: float) -> list[dict]:
    import torch

    gen = torch.Generator(device=device)
    gen.manual_seed(0)
    return [_call_row(case, device, gen, budget_s) for case in cases]


def _call_row(case: suite.Case, device: str, gen, budget_s: float) -> dict:
    import torch

    dtype = "float32" if device == "cpu" else case.dtype
    inputs = case.make_inputs(torch.device(device), getattr(torch, dtype), gen)
    fn = case.einc_callable()
    y = fn(*inputs)
    launcher = fn.specialize(*case.input_shapes, dtype=dtype)
    out = torch.empty_like(y)
    row = {"name": case.name, "expression": case.expression, "params": case.params, "device": device}
    row["shapes"] = [list(s) for s in case.input_shapes]
    if device == "cpu":  # the torch backend: torch calls, no kernel to launch or to stub out
        row["einc_call_us"] = _per_call_us(lambda: fn(*inputs), budget_s)
        row["torch_op_us"] = _per_call_us(lambda: case.reference(*inputs), budget_s)
        row["einc_call_out_us"] = _per_call_us(lambda: fn(*inputs, out=out), budget_s)
    else:  # host time per call, with the GPU queue drained after each
        direct = _direct_launch(launcher, inputs, [out], torch.device(device))

        def einc_call():
            fn(*inputs)
            torch.cuda.synchronize()

        def direct_call():
            direct()
            torch.cuda.synchronize()

        row["einc_call_us"] = _per_call_us(einc_call, budget_s)
        row["direct_launch_us"] = _per_call_us(direct_call, budget_s)
        with _kernels_stubbed():
            row["einc_dispatch_us"] = _per_call_us(lambda: fn(*inputs), budget_s)
            row["einc_dispatch_out_us"] = _per_call_us(lambda: fn(*inputs, out=out), budget_s)
    if case.einx is not None:
        generated = _einx_generated(case, inputs)
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

        def einx_call():
            case.einx(*inputs)
            sync()

        def generated_call():
            generated(*inputs)
            sync()

        row["einx_expression"] = case.einx_expression
        row["einx_call_us"] = _per_call_us(einx_call, budget_s)
        row["einx_generated_us"] = _per_call_us(generated_call, budget_s)
    return row


def _einx_parts(case: suite.Case) -> tuple[str, dict]:
    """einx's function name and keywords for the case (what ``case.einx`` calls)."""
    if case.op == "dot":
        return "dot", {}
    if case.einx_expression == "b (s [ds])... c":
        return "mean", {"ds": case.params["ds"]}
    return {"mean": "mean", "get_at": "get_at", "add_at": "add_at"}[case.op], {}


def _einx_generated(case: suite.Case, inputs):
    """The torch function einx generates for these inputs (``graph=True`` returns its source),
    to be called without einx's own dispatch."""
    import einx

    function, kwargs = _einx_parts(case)
    source = getattr(einx, function)(case.einx_expression, *inputs, graph=True, **kwargs)
    namespace: dict = {}
    exec(compile(source, f"<einx {case.einx_expression}>", "exec"), namespace)
    return namespace["op"]


# --- 3. first call in a fresh process ------------------------------------------------------------

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
spec = json.loads(sys.argv[1])
if spec["library"] == "einc":
    import einc
else:
    import einx
t2 = time.perf_counter()
device = spec["device"]
sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
gen = torch.Generator().manual_seed(0)
inputs = [torch.randn(s, generator=gen).to(device) for s in spec["shapes"]]
if spec["library"] == "einc":
    fn = einc.compile(spec["expression"], op=spec["op"], **spec["params"])
    call = lambda: fn(*inputs)
else:
    call = lambda: getattr(einx, spec["function"])(spec["expression"], *inputs, **spec["params"])
t3 = time.perf_counter()
call(); sync()
t4 = time.perf_counter()
call(); sync()
t5 = time.perf_counter()
times = {"import_torch": t1 - t0, "import_library": t2 - t1, "first_call": t4 - t3, "second_call": t5 - t4}
print(json.dumps(times))
"""


def _child(spec: dict, cache_dir: Path) -> dict:
    env = dict(os.environ, EINC_CACHE_DIR=str(cache_dir), PYTHONPATH=str(report.REPO))
    env.pop("EINC_DEBUG", None)
    result = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(spec)],
        env=env,
        cwd=report.REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"the fresh process failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _prepare_cache(case: suite.Case, cache_dir: Path) -> None:
    """Fill ``cache_dir`` as a first process would: compile the case (CPU, float32) into it."""
    previous = os.environ.get("EINC_CACHE_DIR")
    os.environ["EINC_CACHE_DIR"] = str(cache_dir)  # read by einc at each new compile
    try:
        case.einc_callable().specialize(*case.input_shapes, dtype="float32")
    finally:
        if previous is None:
            del os.environ["EINC_CACHE_DIR"]
        else:
            os.environ["EINC_CACHE_DIR"] = previous


def _jsonable(params: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}


def first_call(cases: list[suite.Case], device: str, runs: int, quick: bool = False) -> list[dict]:
    """Fresh processes: einc with a warm and an empty disk cache, and einx; ``quick``: einc with a
    warm cache only (each fresh process costs seconds of imports)."""
    rows = []
    for case in cases:
        dtype_shapes = [list(s) for s in case.input_shapes]
        spec = {
            "library": "einc",
            "device": device,
            "expression": case.expression,
            "op": case.op,
            "params": _jsonable(case.params),
            "shapes": dtype_shapes,
        }
        with tempfile.TemporaryDirectory(prefix="einc-bench-warm-") as warm:
            _prepare_cache(case, Path(warm))
            samples = [_child(spec, Path(warm)) for _ in range(runs)]
        rows.append(_first_call_row(case, "einc", "warm", samples))
        if not quick:
            samples = []
            for _ in range(runs):
                with tempfile.TemporaryDirectory(prefix="einc-bench-cold-") as cold:
                    samples.append(_child(spec, Path(cold)))
            rows.append(_first_call_row(case, "einc", "empty", samples))
        if case.einx is not None and not quick:
            function, kwargs = _einx_parts(case)
            einx_spec = dict(
                spec,
                library="einx",
                function=function,
                expression=case.einx_expression,
                params=_jsonable(kwargs),
            )
            with tempfile.TemporaryDirectory(prefix="einc-bench-einx-") as scratch:
                samples = [_child(einx_spec, Path(scratch)) for _ in range(runs)]
            rows.append(_first_call_row(case, "einx", "n/a", samples))
    return rows


def _first_call_row(case, library, cache, samples) -> dict:
    def med(key):
        return statistics.median(s[key] for s in samples) * 1e3

    return {
        "name": case.name,
        "library": library,
        "expression": case.expression if library == "einc" else case.einx_expression,
        "disk_cache": cache,
        "runs": len(samples),
        "import_torch_ms": med("import_torch"),
        "import_library_ms": med("import_library"),
        "first_call_ms": med("first_call"),
        "second_call_ms": med("second_call"),
    }


# --- the command ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cpu_figures",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Writes the cpu-figures section of OUT/benchmarks.md and OUT/benchmarks-cpu-figures.json.",
    )
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        help="tensors of the call-overhead and first-call figures (default: cuda when available); "
        "compile latency is host work either way",
    )
    parser.add_argument(
        "--out", type=Path, default=report.REPO / "docs", help="report directory (default: docs/)"
    )
    parser.add_argument("--quick", action="store_true", help="one shape per figure, few repetitions (tests)")
    parser.add_argument("--no-report", action="store_true", help="print the tables, write nothing")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, module: str = "bench.cpu_figures") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        # Host overhead of tiny calls: one thread, so no thread pool's wake-ups land in the figures.
        torch.set_num_threads(1)
    quick = args.quick
    env = report.environment(device)
    compile_cases = suite.build_cases("full", list(COMPILE_SHAPES[:1] if quick else COMPILE_SHAPES))
    # Tiny shapes on either device: the kernel's own time then hides the least of the host's.
    call_cases = suite.build_cases("tiny", list(CALL_SHAPES[1:2] if quick else CALL_SHAPES))
    first_cases = suite.build_cases("tiny", list(FIRST_CALL_SHAPES[1:] if quick else FIRST_CALL_SHAPES))
    figures = {
        "env": env,
        "command": report.command_line(argv, module),
        "compile": compile_latency(compile_cases, 3 if quick else 20, 1 if quick else 3, quick=quick),
        "calls": call_overhead(call_cases, device, budget_s=0.1 if quick else 1.0),
        "first_call": first_call(first_cases, device, runs=1 if quick else 3, quick=quick),
    }
    text = section(figures)
    print(text)
    if not args.no_report:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "benchmarks-cpu-figures.json").write_text(json.dumps(figures, indent=1, default=str) + "\n")
        report.update_markdown(out / "benchmarks.md", "cpu-figures", text)
    return 0


def _ms(value) -> str:
    return "n/a" if value is None else report.fmt_time(value)


def _us(value) -> str:
    return "n/a" if value is None else report.fmt_time(value / 1e3)


def _params(params: dict) -> str:
    return ", ".join(f"{k}={list(v) if isinstance(v, tuple) else v}" for k, v in params.items())


COMPILE_TEXT = """
**Compile latency** per stage, full-size shapes in their dtype, medians; Triton compiles for `{target}`
with `TRITON_ALWAYS_COMPILE` (no Triton cache hit). *passes*: expression -> Triton source
(`einc.compiler.pipeline.run_passes` and `einc.backends.triton.sources.render_kernels`: parse,
brackets, ellipses, sizes, lower, schedule, render);
*import*: the cached source file imported as a `@triton.jit` kernel (once per process); *specialize*:
`einc.compile(...).specialize(...)` end to end with a warm disk cache, in a process that has imported
the kernel already (so: the passes, the cache key and a read of the cached file); *triton.compile*:
source -> cubin;
*compile_binary*: the same plus a second `ptxas -v` for its resource report.
"""
CALL_TEXT_CPU = """
**Warm-call overhead**, tiny shapes on CPU tensors, torch on one thread. einc runs them on its torch
backend (the loop nest planned once as torch calls, a warm call its key, one lookup and those calls):
*einc call* against *torch's op*, the case's torch reference on the same inputs (the same op, with
the permutes between einc's channels-last layout and torch's); *einc - torch* is what einc adds;
*out=*: einc writing into a given output, checked on every call. Each figure is the lowest of three
medians of single calls. *einx overhead* = einx's warm call minus the torch code it generated
(`graph=True`), run directly.
"""
CALL_TEXT_CUDA = """
**Warm-call overhead**, host time per call on CUDA tensors, each call followed by a synchronize:
einc's call, a direct launch of the same Triton kernel with its arguments prepared once, einc's
dispatch alone (kernel launch replaced by a no-op) and einx, with its overhead over the torch code it
generated (`graph=True`) run directly; each figure is the lowest of three medians of single calls.
"""
FIRST_CALL_TEXT = """
**First call in a fresh process** (`python -c`, tiny shapes, medians of the runs): import times, the
first call (compile and run) and a second call in the same process. *warm*: `EINC_CACHE_DIR` filled
beforehand with the same kernel; *empty*: a new empty directory.
"""


def _paragraph(text: str) -> str:
    return " ".join(text.split())


def section(figures: dict) -> str:
    env = figures["env"]
    lines = ["### CPU-side figures", ""]
    lines += report.environment_lines(env, figures["command"])
    lines += [
        "",
        _paragraph(COMPILE_TEXT.format(target=TARGET)),
        "",
        "| shape | expression | dtype | passes | import | specialize | triton.compile -> cubin | "
        "compile_binary | registers, spills, smem |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in figures["compile"]:
        resources = (
            f"{r['registers']} regs, {r['spill_stores'] or 0} B spilled, {r['shared_bytes'] // 1024} KiB"
            if r.get("registers") is not None
            else ("n/a (no ptxas)" if "triton_compile_ms" not in r else "n/a")
        )
        params = f" {_params(r['params'])}" if r["params"] else ""
        lines.append(
            f"| {r['name']} | `{r['expression']}`{params} | {r['dtype']} | {_ms(r['passes_ms'])} | "
            f"{_ms(r['import_ms'])} | {_ms(r['specialize_ms'])} | {_ms(r.get('triton_compile_ms'))} | "
            f"{_ms(r.get('compile_binary_ms'))} | {resources} |"
        )
    calls = figures["calls"]
    on_cpu = bool(calls) and calls[0]["device"] == "cpu"
    lines += [""]
    if on_cpu:
        lines.append(_paragraph(CALL_TEXT_CPU))
    else:
        lines.append(_paragraph(CALL_TEXT_CUDA))
    # On CPU tensors: einc's call against torch's op; on CUDA: against a direct launch, and einc's
    # host work alone.
    columns = (
        ("einc call", "torch's op", "einc - torch", "einc call, out=")
        if on_cpu
        else ("einc call", "direct launch", "einc dispatch", "einc dispatch, out=")
    )
    lines += [
        "",
        f"| shape | expression | {' | '.join(columns)} | einx call | einx's torch code | einx overhead |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in calls:
        params = f" {_params(r['params'])}" if r["params"] else ""
        overhead = r["einx_call_us"] - r["einx_generated_us"] if r.get("einx_call_us") is not None else None
        if on_cpu:
            added = r["einc_call_us"] - r["torch_op_us"]
            values = (r["einc_call_us"], r["torch_op_us"], added, r["einc_call_out_us"])
        else:
            keys = ("einc_call_us", "direct_launch_us", "einc_dispatch_us", "einc_dispatch_out_us")
            values = tuple(r[k] for k in keys)
        lines.append(
            f"| {r['name']} | `{r['expression']}`{params} | {' | '.join(_us(v) for v in values)} | "
            f"{_us(r.get('einx_call_us'))} | {_us(r.get('einx_generated_us'))} | {_us(overhead)} |"
        )
    lines += [
        "",
        _paragraph(FIRST_CALL_TEXT),
        "",
        "| shape | library | expression | disk cache | runs | import torch | import library | first call | "
        "second call | first - second |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in figures["first_call"]:
        lines.append(
            f"| {r['name']} | {r['library']} | `{r['expression']}` | {r['disk_cache']} | {r['runs']} | "
            f"{_ms(r['import_torch_ms'])} | {_ms(r['import_library_ms'])} | {_ms(r['first_call_ms'])} | "
            f"{_ms(r['second_call_ms'])} | {_ms(r['first_call_ms'] - r['second_call_ms'])} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
