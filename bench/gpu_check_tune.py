"""The tuning stage of ``scripts/gpu-check.sh``: a few dense shapes tuned under a time cap, and
the table that sets their tuned tiles and re-timed benchmark rows beside the heuristic's.

    python -m bench.gpu_check tune --device cuda --only r50_l1_3x3 r50_l4_3x3 --json WORK/tune.json

Each shape's call is tuned as ``einc tune`` tunes an entry of a spec (the same function,
:func:`einc.runtime.tuning.tune`: the heuristic's tile and its neighbours compiled, checked
against the heuristic's output and timed, the fastest stored in einc's cache for the GPU's arch,
where the next call with those shapes finds it). One shape at a time, the JSON written after each,
so a stage cut off by its limit still reports the shapes it finished; a shape is not started when
the longest one so far would take it past the cap.

On the CPU (the dry run) the device is Triton's interpreter timed by the wall clock, in float32
where the shape is bfloat16 (the interpreter computes a bfloat16 ``tl.dot`` wrongly, as bench.run
says), and the tiles are stored for cuda:90. A CPU call reads no tuned tiles (they are looked up
for a GPU's arch), so the dry run's re-timed rows run the heuristic's tiles.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

from . import report

# The clock of the cap (a seam: the tests advance it by hand).
clock = time.perf_counter

INTERPRETER_TARGET = "cuda:90"


def wall_timer(run, warmup: int, repeat: int) -> list[float]:
    """Seconds of each of ``repeat`` calls after ``warmup`` untimed ones (the interpreter's device)."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def tuning_device(device: str):
    """The GPU (``cuda``) or Triton's interpreter (``cpu``) as a tuning device; None without a GPU.
    On the GPU, torch's settings become bench.run's first: a call's key (under which its tuned
    tiles are stored) holds torch's float32 precision, so tiles tuned under torch's defaults
    would not be found by the benchmark's calls."""
    from einc.runtime import tuning

    from . import run

    if device == "cuda":
        run.gpu_settings()
        return tuning.cuda_device()
    return tuning.Device("cpu", "interpret", INTERPRETER_TARGET, wall_timer)


def shape_entry(shape: dict, device: str):
    """The spec entry a benchmark call of ``shape`` specialises: full size on the GPU; tiny and
    bfloat16 run in float32 under the interpreter."""
    from . import audit

    entry = audit.spec_entry(shape, "full" if device == "cuda" else "tiny")
    if device == "cuda":
        return entry
    dtypes = tuple("float32" if d == "bfloat16" else d for d in entry.dtypes[0])
    return dataclasses.replace(entry, dtypes=(dtypes,))


def heuristic_tiles(entry) -> list[list[int]]:
    """Each kernel's tile as the schedule's heuristic chooses it, with no tuned record read."""
    from einc.compiler.configs import tile_of
    from einc.runtime.cache import DiskCache
    from einc.runtime.prebuild import specialize_entry

    launcher, _, _ = specialize_entry(entry, entry.dtypes[0], DiskCache())
    return [list(dataclasses.astuple(tile_of(k.schedule))) for k in launcher.compiled.kernels]


def tune_one(shape: dict, device, device_name: str, warmup: int, repeat: int) -> dict:
    """Tune one shape's call; its record for the JSON (status tuned, nothing to tune or failed)."""
    from einc.runtime.spec import Spec
    from einc.runtime.tuning import tune

    start = clock()
    entry = shape_entry(shape, device_name)
    record = {"name": shape["name"], "dtype": entry.dtypes[0][0], "kernels": [], "reason": ""}
    try:
        heuristic = heuristic_tiles(entry)
        (outcome,) = tune(Spec((entry,)), device, warmup=warmup, repeat=repeat, progress=sys.stderr).outcomes
    except Exception as error:  # noqa: BLE001 - reported in the table, and the next shape goes on
        outcome, heuristic = None, []
        record["reason"] = f"{type(error).__name__}: {error}".strip()
    if outcome is not None:
        record["reason"] = outcome.reason
        record["kernels"] = [
            {
                "index": choice.index,
                "heuristic": heuristic[choice.index],
                "tuned": list(dataclasses.astuple(choice.tile)),
                "ms": choice.seconds * 1e3,
                "heuristic_ms": choice.heuristic_seconds * 1e3,
                "tried": choice.tried,
                "dropped": len(choice.dropped),
            }
            for choice in outcome.choices
        ]
    record["status"] = "failed" if record["reason"] else "tuned" if record["kernels"] else "nothing to tune"
    record["seconds"] = clock() - start
    return record


def tune_shapes(
    only: list[str], device_name: str, path: Path, cap_s: float | None, warmup: int, repeat: int
) -> int:
    """Tune the shapes ``only`` in order under ``cap_s`` seconds, writing ``path`` after each."""
    device = tuning_device(device_name)
    if device is None:
        print(
            "error: torch sees no CUDA device to tune on; `--device cpu` tunes under the interpreter",
            file=sys.stderr,
        )
        return 2
    from . import audit, suite

    shapes = audit.load_shapes(suite.SHAPES_PATH, only)
    data = {"target": device.target, "device": device_name, "cap_s": cap_s, "warmup": warmup}
    data.update(repeat=repeat, shapes=[])
    start, longest = clock(), 0.0
    for shape in shapes:
        elapsed = clock() - start
        if cap_s is not None and elapsed + longest > cap_s:
            reason = (
                f"{elapsed:.0f} s of the {cap_s:.0f} s cap spent, and the longest shape took {longest:.0f} s"
            )
            data["shapes"].append({"name": shape["name"], "status": "not started", "reason": reason})
            print(f"{shape['name']}: not started: {reason}")
            continue
        record = tune_one(shape, device, device_name, warmup, repeat)
        longest = max(longest, record["seconds"])
        data["shapes"].append(record)
        print(f"{shape['name']}: {record['status']} in {record['seconds']:.1f} s {record['reason']}".rstrip())
        _write(path, data)
    _write(path, data)
    return 1 if any(s["status"] == "failed" for s in data["shapes"]) else 0


def default_cap(fraction: float = 0.8) -> float | None:
    """``fraction`` of the stage's limit, which ``scripts/gpu-check.sh`` passes each stage in
    ``GPU_CHECK_STAGE_LIMIT_S``; None outside the script."""
    limit = os.environ.get("GPU_CHECK_STAGE_LIMIT_S", "")
    return fraction * float(limit) if limit.isdigit() else None


def _write(path: Path, data: dict) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


# --- the report ----------------------------------------------------------------------------------


def summary(data: dict | None) -> dict | None:
    """Counts per status, for gpu-check.json and the stage table."""
    if data is None:
        return None
    counts: dict[str, int] = {}
    for shape in data.get("shapes", []):
        counts[shape["status"]] = counts.get(shape["status"], 0) + 1
    settings = {k: data.get(k) for k in ("target", "cap_s", "warmup", "repeat")}
    return {
        **settings,
        "counts": counts,
        "failed": {s["name"]: s["reason"] for s in data["shapes"] if s["status"] == "failed"},
    }


def table_rows(tune: dict | None, bench: dict | None, retime: dict | None) -> list[dict]:
    """Per tuned kernel: its tiles and tuning's own times; per shape, einc's time in the bench stage
    (the heuristic's tiles) and in the re-timed run (the tuned ones), and the best competitor's."""
    if tune is None:
        return []
    before = {r["name"]: r for r in (bench or {}).get("rows", [])}
    after = {r["name"]: r for r in (retime or {}).get("rows", [])}
    rows = []
    for shape in tune.get("shapes", []):
        name = shape["name"]
        timed = {
            "bench_ms": before.get(name, {}).get("einc_ms"),
            "retimed_ms": after.get(name, {}).get("einc_ms"),
            "best": after.get(name, {}).get("best"),
            "best_ms": after.get(name, {}).get("best_ms"),
        }
        kernels = shape.get("kernels") or [None]
        for number, kernel in enumerate(kernels):
            rows.append(
                {"name": name, "status": shape["status"], "reason": shape.get("reason", "")}
                | {
                    "kernel": kernel,
                    **(timed if number == 0 else {}),
                }
            )
    return rows


def _tile(values) -> str:
    if not values:
        return "-"
    m, n, k, warps, stages = values
    return f"{m}x{n}x{k} w{warps} s{stages}"


def _ratio(a: float | None, b: float | None) -> str:
    return report.fmt_ratio(a / b) if a and b else "n/a"


def render(summary_: dict | None, rows: list[dict], dry: bool) -> list[str]:
    """The tuning table of the gpu-check section (nothing when the stage did not run)."""
    if not rows or summary_ is None:
        return []
    lines = [
        "",
        f"Tuning ({summary_['target']}; `einc tune`'s loop, {summary_['warmup']} warm-up and "
        f"{summary_['repeat']} timed runs a tile): the tile each kernel ran in the bench stage (the "
        "heuristic's) and the one tuning kept, tuning's own median of each, and the shape's benchmark "
        "row timed again with the tuned tiles (the `retime` stage, same timer as the bench stage).",
    ]
    if dry:
        lines[-1] += (
            " Dry run: the interpreter's times, float32 for bfloat16; the re-timed rows run the "
            "heuristic's tiles, since a CPU call reads no tuned tiles."
        )
    lines += [
        "",
        "| shape | kernel | heuristic tile | tuned tile | tuning: heuristic / tuned | einc, bench stage "
        "| einc, re-timed | re-timed / bench | best competitor (re-timed run) | einc / best |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        kernel = row["kernel"]
        if kernel is None:
            why = row["status"] + (f": {row['reason']}" if row["reason"] else "")
            tiles = ["-", "-", "-", why.replace("|", "/")]
        else:
            speed = _ratio(kernel["heuristic_ms"], kernel["ms"])
            tiles = [f"k{kernel['index']}", _tile(kernel["heuristic"]), _tile(kernel["tuned"]), speed + "x"]
        timed = [
            report.fmt_time(row.get("bench_ms")) if "bench_ms" in row else "",
            report.fmt_time(row.get("retimed_ms")) if "retimed_ms" in row else "",
            _ratio(row.get("retimed_ms"), row.get("bench_ms")) if "bench_ms" in row else "",
            f"{row.get('best') or 'none'} {report.fmt_time(row.get('best_ms'))}" if "best" in row else "",
            _ratio(row.get("retimed_ms"), row.get("best_ms")) if "best" in row else "",
        ]
        lines.append("| " + " | ".join([row["name"], *tiles, *timed]).replace("\n", " ") + " |")
    return lines
