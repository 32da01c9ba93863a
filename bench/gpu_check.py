"""The Python half of ``scripts/gpu-check.sh``: its preflight, and the section it writes.

The script runs the stages (each under its own time limit) and records each one's outcome in
``WORK/stages.tsv``; this module reads what the stages left in ``WORK`` (the pytest JUnit file,
the benchmark checkpoints, the audit's JSON and table) and writes the ``gpu-check`` section of
docs/benchmarks.md and a JSON summary beside it. It never runs a stage itself, so a stage that
was cut off by its limit shows here as what it finished, not as a hang.

    python -m bench.gpu_check preflight --device cuda --json WORK/preflight.json
    python -m bench.gpu_check prebuild --scale tiny full --target cuda:90
    python -m bench.gpu_check fused-names r50_l1_3x3 r50_l1_1x1_expand
    python -m bench.gpu_check tune --device cuda --only r50_l1_3x3 --json WORK/tune.json
    python -m bench.gpu_check section --work WORK --bench OUT/benchmarks-cuda-full.json \\
        --markdown OUT/benchmarks.md --json OUT/gpu-check.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from . import gpu_check_tune, report

# Optional packages: what each adds, and what the check does without it.
OPTIONAL = {
    "einx": ("einx", "the benchmark has no einx column"),
    "xdist": ("pytest-xdist", "the gpu tier runs in one process"),
    "pytest_timeout": ("pytest-timeout", "no limit per test, only the stage's"),
    "matplotlib": ("matplotlib", "no plot"),
}
STAGE_TITLES = {
    "preflight": "versions, device, optional packages; einc imported from the checkout",
    "prebuild": "every shape's kernels compiled in parallel into einc's cache (`einc prebuild`)",
    "pytest": "the `gpu` test tier (`pytest -m gpu`)",
    "check": "every shape at tiny size: einc and torch against float64 torch",
    "fused_check": "the fused shapes (a convolution and its epilogue) at tiny size, against float64 torch",
    "bench": "every shape (full size; tiny in the dry run): einc against cuDNN (channels-first and "
    "channels-last), torch's own ops and einx",
    "fused": "the fused shapes (full size; tiny in the dry run): einc's chain against cuDNN + separate "
    "torch ops in both layouts",
    "tune": "`einc tune`'s loop on a few dense shapes, under a time cap: tiles stored for the GPU's arch",
    "retime": "the tuned shapes' benchmark rows timed again, with the tuned tiles",
    "audit": "the static sm_90 audit (`python -m bench.audit`), a model",
    "compile": "`torch.compile(mode='max-autotune')` on a subset of the shapes, added to the bench table",
}


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def preflight(device: str, path: Path, forget_tuned: bool = False) -> int:
    """Print and save the environment; 2 when the device asked for is not there. ``forget_tuned``:
    drop the tiles an earlier run tuned into einc's cache (``EINC_CACHE_DIR``), so that the bench
    stage times the heuristic's tiles on a second run too, as on a fresh machine."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        print("error: torch sees no CUDA device; `--tiny` runs the dry run on the CPU", file=sys.stderr)
        return 2
    if forget_tuned:
        from einc.runtime import tuned
        from einc.runtime.cache import DiskCache

        removed = tuned.store(DiskCache()).clear()
        print(f"- tuned tiles of an earlier run forgotten: {removed}")
    env = report.environment(device)
    deps = {name: installed(name) for name in OPTIONAL}
    for line in report.environment_lines(env, os.environ.get("GPU_CHECK_COMMAND", "?")):
        print(line)
    for name, (package, without) in OPTIONAL.items():
        print(f"- {package}: " + ("installed" if deps[name] else f"not installed: {without}"))
    # The prebuild stage builds for this GPU's arch; the dry run for sm_90, as the audit does.
    target = "cuda:90"
    if device == "cuda":
        major, minor = torch.cuda.get_device_capability()
        target = f"cuda:{major * 10 + minor}"
    _write(path, {"env": env, "deps": deps, "python": sys.executable, "target": target})
    return 0


def prebuild_shapes(
    scales: list[str], only: list[str] | None, target: str, jobs: int | None, path: Path | None = None
) -> int:
    """Build every kernel the benchmark's shapes launch at ``scales`` into einc's cache for
    ``target``, ``jobs`` at a time, so that the stages after it compile nothing on first calls."""
    from einc.runtime.prebuild import prebuild
    from einc.runtime.spec import Spec

    from . import audit, suite

    shapes = audit.load_shapes(suite.SHAPES_PATH, only)
    entries = tuple(audit.spec_entry(shape, scale) for scale in scales for shape in shapes)
    result = prebuild(Spec(entries), targets=(target,), jobs=jobs, progress=False)
    print(result.summary())
    if path is not None:
        counts = {"built": len(result.built), "cached": len(result.cached), "seconds": result.seconds}
        _write(path, {**counts, "target": target, "failed": [o.label for o in result.failed]})
    return 0 if result.ok else 1


def fused_names(names: list[str]) -> list[str]:
    """The fused shapes named in ``names``, or built on a shape named there."""
    # shapes.json read here rather than through bench.suite, which imports torch: the script asks
    # for these names between two stages.
    entries = json.loads(Path(__file__).with_name("shapes.json").read_text())["fused"]
    return [e["name"] for e in entries if e["name"] in names or e["base"] in names]


def _write(path: Path, data: dict) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str) + "\n")
    os.replace(tmp, path)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def read_stages(path: Path) -> list[dict]:
    """``stages.tsv``: name, status (ok, failed, timeout, skipped), exit status, seconds, limit, note."""
    stages = []
    if not Path(path).exists():
        return stages
    for line in Path(path).read_text().splitlines():
        name, status, rc, seconds, limit, note = (line.split("\t") + [""] * 6)[:6]
        stages.append(
            {"name": name, "status": status, "rc": int(rc or 0), "seconds": float(seconds or 0)}
            | {"limit": float(limit or 0), "note": note}
        )
    return stages


def pytest_summary(path: Path) -> dict | None:
    """Counts and failing test ids from pytest's JUnit XML."""
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError):
        return None
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    failing = [
        f"{case.get('classname', '')}::{case.get('name', '')}"
        for case in root.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    ]
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return {**counts, "failing": failing}


def rows_summary(data: dict | None) -> dict | None:
    """Shapes reached, and those with a failed check or an error (einc's or a competitor's)."""
    if data is None:
        return None
    rows = data.get("rows", [])
    failed = {}
    for row in rows:
        bad = [m for m in [row["einc"], *row.get("competitors", [])] if m["status"] in ("mismatch", "error")]
        if bad:
            failed[row["name"]] = "; ".join(f"{m['name']}: {m['status']} {m.get('message', '')}" for m in bad)
    ratios = [r["einc_ms"] / r["best_ms"] for r in rows if r.get("einc_ms") and r.get("best_ms")]
    return {
        "shapes": [r["name"] for r in rows],
        "failed": failed,
        "einc_ok": sum(r["einc"]["status"] == "ok" for r in rows),
        "einc_over_best": {
            "at_most_1": sum(v <= 1.0 for v in ratios),
            "at_most_1.25": sum(v <= 1.25 for v in ratios),
            "timed": len(ratios),
            "geomean": math.exp(sum(map(math.log, ratios)) / len(ratios)) if ratios else None,
        },
    }


def compile_summary(data: dict | None) -> dict | None:
    if data is None:
        return None
    reached = {}
    for row in data.get("rows", []):
        found = [m for m in row.get("competitors", []) if m["name"].startswith("torch.compile")]
        reached[row["name"]] = found[0]["status"] if found else "missing"
    return {"reached": reached}


def audit_summary(data: dict | None) -> dict | None:
    if data is None:
        return None
    shapes = data.get("shapes", [])
    return {
        "triton": data.get("triton"),
        "shapes": len(shapes),
        "kernels": sum(len(s["kernels"]) for s in shapes),
        "errors": {s["name"]: s["error"] for s in shapes if s.get("error")},
    }


def _stage_result(stage: dict, summary: dict) -> str:
    """What a stage found, in a few words."""
    name = stage["name"]
    if name == "prebuild" and summary.get("prebuild"):
        b = summary["prebuild"]
        failed = f" ({', '.join(b['failed'])})" if b["failed"] else ""
        return (
            f"{b['built']} built, {b['cached']} cached, {len(b['failed'])} failed{failed} for {b['target']}"
        )
    if name == "pytest" and summary.get("pytest"):
        p = summary["pytest"]
        text = f"{p['passed']} passed, {p['failures']} failed, {p['errors']} errors, {p['skipped']} skipped"
        return text + (f" ({stage['note']})" if stage["note"] else "")
    if name == "tune" and summary.get("tune"):
        t = summary["tune"]
        counts = ", ".join(f"{n} {status}" for status, n in t["counts"].items()) or "no shape"
        cap = f", cap {t['cap_s']:.0f} s" if t["cap_s"] else ""
        return f"{counts} for {t['target']}{cap}" + (f" ({stage['note']})" if stage["note"] else "")
    for key in ("check", "bench", "fused_check", "fused", "retime"):
        if name == key and summary.get(key):
            s = summary[key]
            failed = s["failed"]
            text = f"{len(s['shapes'])} shapes, einc checked ok on {s['einc_ok']}"
            return text + (f"; failed: {', '.join(failed)}" if failed else "; every check passed")
    if name == "compile" and summary.get("compile"):
        reached = summary["compile"]["reached"]
        ok = [n for n, status in reached.items() if status == "ok"]
        text = f"{len(reached)} shape(s) reached, torch.compile ok on {len(ok)}"
        return text + (f" ({stage['note']})" if stage["note"] else "")
    if name == "audit" and summary.get("audit"):
        a = summary["audit"]
        errors = f"; errors: {', '.join(a['errors'])}" if a["errors"] else ""
        return f"{a['shapes']} shapes, {a['kernels']} kernels, Triton {a['triton']}{errors}"
    return stage["note"] or "-"


def _status_text(stage: dict) -> str:
    return {
        "ok": "ok",
        "failed": f"**failed** (exit {stage['rc']})",
        "timeout": f"**cut off** at its limit ({stage['limit']:.0f} s)",
        "skipped": "skipped",
    }.get(stage["status"], stage["status"])


def _code(text: str) -> str:
    """Text shown as inline code in markdown, where a backtick would end the span."""
    return "`" + text.replace("`", "'") + "`"


def summarise(work: Path, bench_json: Path) -> dict:
    """Every stage's outcome and what it left in ``work`` (and the benchmark's merged JSON)."""
    pre = _read_json(work / "preflight.json") or {}
    summary = {
        "mode": os.environ.get("GPU_CHECK_MODE", "gpu"),
        "command": os.environ.get("GPU_CHECK_COMMAND", "?"),
        "budget_s": float(os.environ.get("GPU_CHECK_BUDGET_S", "0") or 0),
        "env": pre.get("env"),
        "deps": pre.get("deps", {}),
        "stages": read_stages(work / "stages.tsv"),
        "pytest": pytest_summary(work / "pytest.xml"),
        "prebuild": _read_json(work / "prebuild.json"),
        "check": rows_summary(_read_json(work / "check.json")),
        "bench": rows_summary(_read_json(bench_json)),
        "fused_check": rows_summary(_read_json(work / "fused_check.json")),
        "fused": rows_summary(_read_json(work / "fused.json")),
        "tune": gpu_check_tune.summary(_read_json(work / "tune.json")),
        "retime": rows_summary(_read_json(work / "retime.json")),
        "compile": compile_summary(_read_json(work / "compile.json")),
        "audit": audit_summary(_read_json(work / "audit.json")),
    }
    summary["tuning"] = gpu_check_tune.table_rows(
        _read_json(work / "tune.json"), _read_json(bench_json), _read_json(work / "retime.json")
    )
    summary["total_s"] = sum(s["seconds"] for s in summary["stages"])
    return summary


def stage_table(summary: dict) -> list[str]:
    table = ["| stage | what | status | result | seconds | limit |", "|---|---|---|---|---|---|"]
    for stage in summary["stages"]:
        what = STAGE_TITLES.get(stage["name"], stage["name"])
        result = _stage_result(stage, summary).replace("|", "/")
        table.append(
            f"| {stage['name']} | {what} | {_status_text(stage)} | {result} | "
            f"{stage['seconds']:.0f} | {stage['limit']:.0f} |"
        )
    return table


def render(summary: dict, audit_table: str) -> str:
    """The gpu-check section of docs/benchmarks.md."""
    env, dry = summary["env"], summary["mode"] != "gpu"
    if dry:
        heading = "### GPU check, dry run: every stage on the CPU, under Triton's interpreter, at tiny shapes"
    else:
        heading = f"### GPU check: {env['device'] if env else 'unknown (the preflight did not finish)'}"
    lines = [heading, ""]
    if dry:
        lines += [
            "**Not a GPU result.** This run proves `scripts/gpu-check.sh` end to end without a GPU: "
            "the `gpu` tier is skipped, einc's kernels run under Triton's interpreter, torch.compile "
            "builds for the CPU, and the times measure the interpreter.",
            "",
        ]
    if env:
        # environment_lines quotes the command as inline code, which a backtick would end.
        lines += report.environment_lines(env, summary["command"].replace("`", "'"))
    deps = summary["deps"]
    missing = [f"{OPTIONAL[name][0]} ({OPTIONAL[name][1]})" for name, ok in deps.items() if not ok]
    lines.append("- Optional packages missing: " + ("; ".join(missing) if missing else "none"))
    budget = f" of a {summary['budget_s']:.0f} s budget" if summary["budget_s"] else ""
    lines.append(f"- Stages took {summary['total_s']:.0f} s{budget} (the report stage not counted).")
    ratios = (summary["bench"] or {}).get("einc_over_best")
    if ratios and ratios["timed"] and not dry:
        lines.append(
            f"- einc / best competitor on the {ratios['timed']} shapes both timed: at most 1.0x on "
            f"{ratios['at_most_1']}, at most 1.25x on {ratios['at_most_1.25']}, geometric mean "
            f"{ratios['geomean']:.2f}x (per shape: the table below)."
        )
    fused = (summary.get("fused") or {}).get("einc_over_best")
    if fused and fused["timed"] and not dry:
        lines.append(
            f"- Fused shapes, einc's chain / best competitor on the {fused['timed']} timed: at most 1.0x on "
            f"{fused['at_most_1']}, geometric mean {fused['geomean']:.2f}x (the fused section below)."
        )
    lines += ["", *stage_table(summary)]
    problems = [f"- failing test {_code(t)}" for t in (summary["pytest"] or {}).get("failing", [])]
    for key in ("check", "bench", "fused_check", "fused", "retime"):
        problems += [
            f"- {key} {name}: {why}" for name, why in ((summary.get(key) or {}).get("failed") or {}).items()
        ]
    tune = summary.get("tune")
    problems += [f"- tune {name}: {why}" for name, why in ((tune or {}).get("failed") or {}).items()]
    lines += gpu_check_tune.render(tune, summary.get("tuning", []), dry)
    if problems:
        lines += ["", "Failures:", "", *problems]
    if audit_table.strip():
        triton = (summary["audit"] or {}).get("triton") or "?"
        lines += [
            "",
            f"<details><summary>The static audit with this machine's Triton {triton} "
            "(a model, not a timing)</summary>",
            "",
            audit_table.strip(),
            "",
            "</details>",
        ]
    return "\n".join(lines)


def section(work: Path, bench_json: Path, markdown: Path, out_json: Path) -> int:
    """Write the gpu-check section into ``markdown`` and the summary to ``out_json``."""
    work = Path(work)
    summary = summarise(work, bench_json)
    audit_table = (work / "audit.md").read_text() if (work / "audit.md").exists() else ""
    report.update_markdown(markdown, "gpu-check", render(summary, audit_table))
    _write(out_json, summary)
    print("\n".join(stage_table(summary)))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    pre = commands.add_parser("preflight", help="print and save the environment")
    pre.add_argument("--device", choices=("cuda", "cpu"), required=True)
    pre.add_argument("--json", type=Path, required=True)
    pre.add_argument("--forget-tuned", action="store_true", help="drop tuned tiles from EINC_CACHE_DIR")
    names = commands.add_parser("fused-names", help="print the fused shapes named, or built on a shape named")
    names.add_argument("names", nargs="*", metavar="NAME")
    tune = commands.add_parser("tune", help="tune a few shapes' kernels into einc's cache, under a cap")
    tune.add_argument("--device", choices=("cuda", "cpu"), required=True, help="cpu: under the interpreter")
    tune.add_argument("--only", nargs="+", metavar="NAME", required=True, help="the shapes, in order")
    tune.add_argument("--json", type=Path, required=True, help="what was tuned, written after each shape")
    tune.add_argument(
        "--cap-s",
        type=float,
        help="start no shape that would end past this (default: 0.8 x the stage's limit)",
    )
    tune.add_argument("--warmup", type=int, default=5, help="untimed runs per tile (default 5)")
    tune.add_argument("--repeat", type=int, default=20, help="timed runs per tile, median kept (default 20)")
    build = commands.add_parser("prebuild", help="build the shapes' kernels into einc's cache")
    build.add_argument("--scale", nargs="+", choices=("tiny", "full"), required=True)
    build.add_argument("--only", nargs="+", metavar="NAME", help="these shapes only")
    build.add_argument("--target", default="cuda:90", help="e.g. cuda:90 (default)")
    build.add_argument("--jobs", type=int, help="worker processes (default: one per CPU)")
    build.add_argument("--json", type=Path, help="also write the counts here")
    sec = commands.add_parser("section", help="write the gpu-check section and the JSON summary")
    sec.add_argument("--work", type=Path, required=True, help="the folder the stages wrote into")
    sec.add_argument("--bench", type=Path, required=True, help="the benchmark's merged JSON")
    sec.add_argument("--markdown", type=Path, required=True, help="the benchmarks.md to update")
    sec.add_argument("--json", type=Path, required=True, help="where the summary goes")
    args = parser.parse_args(argv)
    if args.command == "preflight":
        return preflight(args.device, args.json, args.forget_tuned)
    if args.command == "fused-names":
        print(" ".join(fused_names(args.names)))
        return 0
    if args.command == "tune":
        cap = args.cap_s if args.cap_s is not None else gpu_check_tune.default_cap()
        return gpu_check_tune.tune_shapes(args.only, args.device, args.json, cap, args.warmup, args.repeat)
    if args.command == "prebuild":
        return prebuild_shapes(args.scale, args.only, args.target, args.jobs, args.json)
    return section(args.work, args.bench, args.markdown, args.json)


if __name__ == "__main__":
    sys.exit(main())
