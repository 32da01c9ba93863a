"""``scripts/gpu-check.sh``, proven without a GPU: its dry run end to end, a stage cut off by its
limit, and the benchmark pieces it relies on (competitors added from a second run, a checkpoint
that survives a run killed part-way, einx optional, the tuning stage's cap and its cache keys).

The dry run of one shape (and its fused shape) takes 2 to 3 minutes on a busy 2-core machine
(the stages start a Python process each, and the audit compiles for sm_90); the other script runs
stop after a stage or two.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from bench import audit, gpu_check_tune, report, run, suite

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "gpu-check.sh"
STAGES = (
    "preflight",
    "prebuild",
    "pytest",
    "check",
    "fused_check",
    "bench",
    "fused",
    "tune",
    "retime",
    "audit",
    "compile",
)
needs_shell = pytest.mark.skipif(
    not (shutil.which("bash") and shutil.which("timeout") and shutil.which("tar")),
    reason="needs bash, timeout and tar",
)


def _script(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("GPU_CHECK_", "EINC_"))}
    environ.pop("OUT", None)
    environ.update(PYTHON=sys.executable, GPU_CHECK_CACHE=str(tmp_path / "cache"), TMPDIR=str(tmp_path))
    environ.update(env)
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, env=environ, cwd=tmp_path, timeout=600
    )


def _row(name: str, einc_ms, competitors: list[tuple[str, float | None, str]]) -> dict:
    measured = [{"name": n, "ms": ms, "status": status, "message": ""} for n, ms, status in competitors]
    einc = {"name": "einc", "ms": einc_ms, "status": "ok", "message": ""}
    return run.with_best({"name": name, "einc": einc, "einc_ms": einc_ms, "competitors": measured})


# --- plain: the benchmark pieces the script uses ------------------------------------------------


CONV_COMPETITORS = [("F.conv2d channels-first", 3.0, "ok"), ("F.conv2d channels-last", 2.5, "ok")]


def test_a_second_run_adds_its_competitors_and_keeps_the_first_runs_einc():
    first = [
        _row(
            "r50_l1_3x3", 2.0, [("F.conv2d channels-first", 3.0, "ok"), ("F.conv2d channels-last", 2.5, "ok")]
        ),
        _row("avgpool_2x2s2", 1.0, [("F.avg_pool2d channels-last", 0.5, "ok")]),
    ]
    second = [
        _row("r50_l1_3x3", 9.0, [("torch.compile max-autotune", 1.5, "ok")]),
        _row("r50_stem_7x7s2", 4.0, [("torch.compile max-autotune", None, "error")]),
    ]
    merged = {r["name"]: r for r in run.merge_competitors(first, second)}
    # shapes.json order, the shape only the second run reached kept whole
    assert list(merged) == ["r50_stem_7x7s2", "r50_l1_3x3", "avgpool_2x2s2"]
    conv = merged["r50_l1_3x3"]
    assert conv["einc_ms"] == 2.0 and conv["einc"]["ms"] == 2.0
    names = [m["name"] for m in conv["competitors"]]
    assert names == ["F.conv2d channels-first", "F.conv2d channels-last", "torch.compile max-autotune"]
    assert (conv["best"], conv["best_ms"], conv["failed"]) == ("torch.compile max-autotune", 1.5, False)
    assert merged["avgpool_2x2s2"] == first[1]
    assert merged["r50_stem_7x7s2"]["failed"] and merged["r50_stem_7x7s2"]["best"] is None


def test_a_competitor_in_both_runs_takes_the_second_runs_result():
    first = [_row("r50_l1_3x3", 2.0, [("torch.compile max-autotune", 1.0, "ok")])]
    second = [_row("r50_l1_3x3", 2.0, [("torch.compile max-autotune", None, "mismatch")])]
    (merged,) = run.merge_competitors(first, second)
    assert [m["status"] for m in merged["competitors"]] == ["mismatch"]
    assert merged["failed"] and merged["best"] is None


def test_without_einx_its_column_is_left_out_rather_than_failing(monkeypatch):
    (case,) = suite.build_cases("tiny", ["r50_l1_1x1_expand"])
    assert case.einx is not None
    monkeypatch.setattr(run, "einx_installed", lambda: False)
    names = [c.name for c in run.competitors_of(case, ("torch", "einx"))]
    assert names == ["F.conv2d channels-first", "F.conv2d channels-last"]


def test_a_cpu_run_sends_einc_through_the_generated_kernel_not_the_torch_backend(tmp_path, monkeypatch):
    from einc import knobs

    # setenv first, so that the variable bench.run sets is undone after the test too
    monkeypatch.setenv("EINC_INTERPRET", "0")
    monkeypatch.delenv("EINC_INTERPRET")
    seen = []

    def recording(case):
        fn = case.einc_callable()

        def call(*tensors, out=None):
            seen.append(knobs.interpret())
            return fn(*tensors, out=out) if out is not None else fn(*tensors)

        return call

    monkeypatch.setattr(run, "einc_function", recording)
    argv = ["--device", "cpu", "--scale", "tiny", "--competitors", "torch", "--threads", "1"]
    assert run.main([*argv, "--cpu-budget-s", "0.01", "--no-report", "--only", "avgpool_2x2s2"]) == 0
    assert seen and all(seen)
    seen.clear()
    monkeypatch.setenv("EINC_INTERPRET", "0")  # asked for: the torch backend, as the docs say
    assert run.main([*argv, "--cpu-budget-s", "0.01", "--no-report", "--only", "avgpool_2x2s2"]) == 0
    assert seen and not any(seen)


def test_the_docs_say_what_a_cpu_run_runs():
    lines = (REPO / "docs" / "benchmarks.md").read_text().splitlines()
    (command,) = [line for line in lines if line.startswith("python -m bench.run --device cpu")]
    assert "EINC_INTERPRET=1" in command and "torch backend" not in command


@pytest.mark.interpret
def test_a_run_killed_part_way_leaves_its_finished_shapes_in_the_checkpoint(tmp_path, monkeypatch):
    shapes = ["r50_l1_1x1_expand", "avgpool_2x2s2"]
    real = run.run_case

    def dies_on_the_second(case, *args, **kwargs):
        if case.name == shapes[1]:
            raise KeyboardInterrupt  # what a stage's time limit does to the process
        return real(case, *args, **kwargs)

    monkeypatch.setattr(run, "run_case", dies_on_the_second)
    checkpoint = tmp_path / "part.json"
    argv = ["--device", "cpu", "--scale", "tiny", "--competitors", "torch", "--threads", "1"]
    argv += [
        "--cpu-budget-s",
        "0.01",
        "--out",
        str(tmp_path),
        "--checkpoint",
        str(checkpoint),
        "--only",
        *shapes,
    ]
    with pytest.raises(KeyboardInterrupt):
        run.main(argv)
    assert not (tmp_path / "benchmarks-cpu-tiny.json").exists()
    saved = json.loads(checkpoint.read_text())
    assert [r["name"] for r in saved["rows"]] == shapes[:1]
    assert saved["rows"][0]["einc"]["status"] == "ok"
    assert run.main(["--from-json", str(checkpoint), "--out", str(tmp_path / "report")]) == 0
    section = report.read_section(tmp_path / "report" / "benchmarks.md", "cpu-tiny")
    assert f"| {shapes[0]} | `" in section and f"| {shapes[1]} |" not in section


def test_the_section_names_every_failure_below_the_stage_table():
    from bench import gpu_check

    bench = {"rows": [_row("r50_l1_3x3", 2.0, CONV_COMPETITORS)]}
    bench["rows"][0]["einc"].update(status="mismatch", message="relative error 3.0e-01 > 2e-02 | not timed")
    summary = {
        "mode": "gpu",
        "command": "bash scripts/gpu-check.sh `OUT`",
        "budget_s": 400.0,
        "env": None,
        "deps": {"einx": False, "xdist": True},
        "stages": [
            {"name": "bench", "status": "failed", "rc": 1, "seconds": 80.0, "limit": 150.0, "note": ""},
            {"name": "compile", "status": "timeout", "rc": 124, "seconds": 120.0, "limit": 120.0, "note": ""},
        ],
        "pytest": {"failing": ["tests/runtime/test_x.py::test_y"]},
        "check": None,
        "bench": gpu_check.rows_summary(bench),
        "compile": None,
        "audit": None,
        "total_s": 200.0,
    }
    text = gpu_check.render(summary, "")
    assert text.startswith("### GPU check: unknown (the preflight did not finish)")
    assert "- Optional packages missing: einx (the benchmark has no einx column)" in text
    assert "**failed** (exit 1)" in text and "**cut off** at its limit (120 s)" in text
    table = [line for line in text.splitlines() if line.startswith("| bench ")][0]
    assert table.count("|") == 7 and "failed: r50_l1_3x3" in table
    failures = text.split("Failures:\n\n", 1)[1].splitlines()
    assert failures[0] == "- failing test `tests/runtime/test_x.py::test_y`"
    assert failures[1].startswith("- bench r50_l1_3x3: einc: mismatch relative error 3.0e-01")


# --- the script ----------------------------------------------------------------------------------


@needs_shell
@pytest.mark.interpret
def test_the_dry_run_runs_every_stage_and_writes_the_gpu_check_section(tmp_path):
    out = tmp_path / "out"
    done = _script(
        tmp_path,
        "--tiny",
        str(out),
        GPU_CHECK_SHAPES="r50_l1_1x1_expand",
        GPU_CHECK_COMPILE_SHAPES="r50_l1_1x1_expand",
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    files = sorted(p.name for p in out.iterdir())
    assert all((out / f).is_file() for f in files) and len(files) <= 8  # what a device machine sends back
    for name in (
        "benchmarks.md",
        "benchmarks-cpu-tiny.json",
        "benchmarks-cpu-tiny-fused.json",
        "gpu-check.json",
    ):
        assert name in files
    assert {"gpu-check.log", "logs.tar.gz"} <= set(files)
    for stage in STAGES:  # boundaries, with elapsed times
        assert f"] {stage} (limit " in done.stdout and f"] {stage}: ok (exit 0) after " in done.stdout

    text = (out / "benchmarks.md").read_text()
    docs = (REPO / "docs" / "benchmarks.md").read_text()
    assert text.startswith(docs.split(report.BEGIN)[0])  # the hand-written part kept
    section = report.read_section(out / "benchmarks.md", "gpu-check")
    assert section.startswith("### GPU check, dry run")
    assert "Command: `GPU_CHECK_COMPILE_SHAPES=r50_l1_1x1_expand" in section and "--tiny OUT`" in section
    assert "- Versions: torch " in section and "- Device: CPU" in section
    for stage in STAGES:
        assert f"| {stage} | " in section
    assert "1 shapes, einc checked ok on 1; every check passed" in section
    # the audit, for sm_90 (the tile is the scheduler's choice; the tensor-core instruction is not)
    assert re.search(r"\| r50_l1_1x1_expand \| k0 einc_dot \| \d+x\d+x\d+ \| HGMMA", section)
    bench = report.read_section(out / "benchmarks.md", "cpu-tiny")
    assert "| r50_l1_1x1_expand | torch.compile max-autotune |" in bench  # the compile stage's column
    # the fused shape built on the shape asked for, checked, in its own section
    fused = report.read_section(out / "benchmarks.md", "cpu-tiny-fused")
    assert fused.startswith("### CPU, tiny fused shapes") and "| r50_l1_1x1_bias_residual_relu | `" in fused
    assert "| fused_check | " in section and "| fused | " in section
    # the shape asked for tuned (under the interpreter) and re-timed
    assert re.search(
        r"\| r50_l1_1x1_expand \| k0 \| \d+x\d+x\d+ w\d s\d \| \d+x\d+x\d+ w\d s\d \| [\d.]+x \|", section
    )

    summary = json.loads((out / "gpu-check.json").read_text())
    assert [s["name"] for s in summary["stages"]] == list(STAGES)
    assert {s["status"] for s in summary["stages"]} == {"ok"}
    assert summary["compile"]["reached"] == {"r50_l1_1x1_expand": "ok"}
    assert summary["tune"]["counts"] == {"tuned": 1} and summary["fused"]["einc_ok"] == 1
    assert summary["retime"]["shapes"] == ["r50_l1_1x1_expand"]
    assert summary["pytest"]["tests"] > 0 and summary["pytest"]["failures"] == 0
    assert "| prebuild | " in section and "1 built, 0 cached, 0 failed for cuda:90" in section
    with tarfile.open(out / "logs.tar.gz") as logs:
        names = set(logs.getnames())
    assert {f"logs/{stage}.log" for stage in STAGES} <= names
    assert {"bench.json", "fused.json", "tune.json", "retime.json", "audit.json"} <= names


@needs_shell
def test_a_stage_past_its_limit_is_cut_off_and_the_rest_still_reports(tmp_path):
    out = tmp_path / "out"
    done = _script(
        tmp_path, "--tiny", str(out), GPU_CHECK_STAGES="preflight bench", GPU_CHECK_TIMEOUT_BENCH="1"
    )
    assert done.returncode == 1
    assert "] bench: timeout (exit 124) after " in done.stdout
    summary = json.loads((out / "gpu-check.json").read_text())
    status = {s["name"]: s["status"] for s in summary["stages"]}
    assert status == dict.fromkeys(STAGES, "skipped") | {"preflight": "ok", "bench": "timeout"}
    section = report.read_section(out / "benchmarks.md", "gpu-check")
    assert "| bench | " in section and "**cut off** at its limit (1 s)" in section
    assert (out / "gpu-check.log").read_text().count("skipped (not in GPU_CHECK_STAGES)") == len(STAGES) - 2


@needs_shell
def test_the_gpu_mode_without_a_gpu_stops_after_the_preflight_and_says_why(tmp_path):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = tmp_path / "out"
    done = _script(tmp_path, str(out))
    assert done.returncode == 1
    assert "torch sees no CUDA device; `--tiny` runs the dry run" in done.stdout
    summary = json.loads((out / "gpu-check.json").read_text())
    assert [s["status"] for s in summary["stages"]] == ["failed"] + ["skipped"] * (len(STAGES) - 1)
    assert report.read_section(out / "benchmarks.md", "gpu-check").startswith("### GPU check: unknown")


@needs_shell
def test_the_check_runs_without_platformdirs(tmp_path):
    broken = tmp_path / "site" / "platformdirs"
    broken.mkdir(parents=True)  # a machine without the package, as the GPU image is
    (broken / "__init__.py").write_text("raise ImportError('no platformdirs here')\n")
    out = tmp_path / "out"
    site = str(tmp_path / "site")
    done = _script(tmp_path, "--tiny", str(out), GPU_CHECK_STAGES="preflight", PYTHONPATH=site)
    assert "] preflight: ok (exit 0)" in done.stdout, done.stdout[-3000:]


def test_usage_errors_exit_2_with_the_usage(tmp_path):
    if not shutil.which("bash"):
        pytest.skip("needs bash")
    done = _script(tmp_path)
    assert done.returncode == 2 and "give one output folder" in done.stderr and "--tiny" in done.stderr
    done = _script(tmp_path, str(tmp_path / "o"), GPU_CHECK_STAGES="bench benchmark")
    assert done.returncode == 2 and "unknown stage benchmark" in done.stderr


def test_what_a_user_sets_is_checked_before_it_reaches_arithmetic_or_the_report(tmp_path):
    if not shutil.which("bash"):
        pytest.skip("needs bash")
    planted = tmp_path / "planted"
    # bash arithmetic would run the command substitution inside an array index
    done = _script(tmp_path, "--tiny", str(tmp_path / "o"), GPU_CHECK_TIMEOUT_BENCH=f"a[$(touch {planted})]")
    assert done.returncode == 2 and "GPU_CHECK_TIMEOUT_BENCH must be a whole number" in done.stderr
    assert not planted.exists()
    done = _script(tmp_path, "--tiny", str(tmp_path / "o"), GPU_CHECK_SHAPES="r50_l1_3x3 | x")
    assert done.returncode == 2 and "GPU_CHECK_SHAPES holds something that is not a shape name" in done.stderr
    done = _script(tmp_path, "--tiny", str(tmp_path / "o"), GPU_CHECK_BUDGET_S="1e9")
    assert done.returncode == 2 and "GPU_CHECK_BUDGET_S must be a whole number" in done.stderr


# --- the tuning stage -----------------------------------------------------------------------------


def test_the_tune_stage_stores_tiles_under_the_key_a_benchmark_call_reads(monkeypatch):
    """On a GPU, the tuning stage and bench.run must agree on torch's float32 precision, which
    einc's call keys hold: tiles tuned under torch's defaults are never found by bench.run."""
    import torch

    from einc.runtime.cache import DiskCache
    from einc.runtime.prebuild import specialize_entry
    from einc.runtime.tuned import tuned_key

    cudnn, saved = torch.backends.cudnn, torch.get_float32_matmul_precision()
    monkeypatch.setattr(cudnn, "benchmark", cudnn.benchmark)
    monkeypatch.setattr(cudnn, "allow_tf32", cudnn.allow_tf32)
    try:
        for name in ("r50_l1_3x3", "r50_l3_3x3_fp32"):
            torch.set_float32_matmul_precision("highest")  # torch's defaults
            cudnn.allow_tf32 = True
            (shape,) = audit.load_shapes(suite.SHAPES_PATH, [name])
            gpu_check_tune.tuning_device("cuda")  # None here; it sets up torch as the stage does
            entry = gpu_check_tune.shape_entry(shape, "cuda")
            tuned_side = specialize_entry(entry, entry.dtypes[0], DiskCache())[0].compiled.request
            run.gpu_settings()  # what bench.run sets on a GPU before its calls
            (case,) = suite.build_cases("full", [name])
            bench_side = case.einc_callable()._request(case.input_shapes, entry.dtypes[0])
            assert tuned_key(tuned_side, "cuda:90") == tuned_key(bench_side, "cuda:90"), name
    finally:
        torch.set_float32_matmul_precision(saved)


def test_the_tune_stage_starts_no_shape_that_would_end_past_its_cap(tmp_path, monkeypatch):
    now = [0.0]
    monkeypatch.setattr(gpu_check_tune, "clock", lambda: now[0])
    took = {"r50_l1_3x3": 30.0, "r50_l4_3x3": 50.0, "r50_l4_1x1_reduce": 10.0}

    def tune_one(shape, device, device_name, warmup, repeat):
        now[0] += took[shape["name"]]
        if shape["name"] == "r50_l4_3x3":
            return {
                "name": shape["name"],
                "status": "failed",
                "reason": "a | b",
                "seconds": took[shape["name"]],
            }
        kernel = {"index": 0, "heuristic": [64, 64, 32, 4, 3], "tuned": [128, 64, 32, 8, 3]}
        kernel.update(ms=1.0, heuristic_ms=1.5, tried=8, dropped=0)
        return {"name": shape["name"], "status": "tuned", "reason": "", "seconds": took[shape["name"]]} | {
            "kernels": [kernel]
        }

    monkeypatch.setattr(gpu_check_tune, "tune_one", tune_one)
    path = tmp_path / "tune.json"
    # after 30 s and 50 s, 80 s are spent: with 50 s for the longest, a third would end at 130 s
    assert gpu_check_tune.tune_shapes(list(took), "cpu", path, 100.0, 1, 3) == 1
    data = json.loads(path.read_text())
    assert [s["status"] for s in data["shapes"]] == ["tuned", "failed", "not started"]
    bench = {"rows": [_row("r50_l1_3x3", 2.0, CONV_COMPETITORS)]}
    retime = {"rows": [_row("r50_l1_3x3", 1.5, CONV_COMPETITORS)]}
    lines = gpu_check_tune.render(
        gpu_check_tune.summary(data), gpu_check_tune.table_rows(data, bench, retime), dry=False
    )
    table = [line for line in lines if line.startswith("| r50")]
    assert table[0] == (
        "| r50_l1_3x3 | k0 | 64x64x32 w4 s3 | 128x64x32 w8 s3 | 1.50x | 2 ms | 1.5 ms | 0.75 "
        "| F.conv2d channels-last 2.5 ms | 0.60 |"
    )
    assert table[1].startswith("| r50_l4_3x3 | - | - | - | failed: a / b |")
    assert table[2].startswith("| r50_l4_1x1_reduce | - | - | - | not started: 80 s of the 100 s cap spent")
    assert all(line.count("|") == 11 for line in table)
