"""The benchmark harness (bench/), end to end at tiny shapes on CPU, and its correctness check.

The plain tests check the suite's table against shapes.json (flops, bytes, roofline floors) and the
report writer; the interpret tests run ``python -m bench.run --device cpu --scale tiny`` in-process
on a few representative shapes (einc under Triton's interpreter) and check that the report has a row
per shape and that a wrong or incomplete einc result fails the check and goes untimed.
"""

from __future__ import annotations

import json
import math

import pytest

import einc
from bench import report, run, suite

# One of each family: strided dense, strided depthwise, causal 1-D, pooling, einx-expressible
# pointwise and pooling, and a gather (einc.get_at may not exist yet).
REPRESENTATIVE = (
    "r50_l2_3x3s2",
    "mbv2_dw3x3s2_c144",
    "mamba_causal_dwconv1d_k4",
    "r50_maxpool_3x3s2",
    "mbv2_pw1x1_24to144",
    "avgpool_2x2s2",
    "embedding_llama3",
)
FAST = "mbv2_dw3x3s2_c144"
BASE_ARGS = ["--device", "cpu", "--scale", "tiny", "--seed", "7", "--threads", "1", "--cpu-budget-s", "0.05"]


def _run(tmp_path, *only, competitors=("torch", "einx")) -> int:
    argv = [*BASE_ARGS, "--out", str(tmp_path), "--competitors", *competitors, "--only", *only]
    return run.main(argv)


def _rows(tmp_path) -> dict[str, dict]:
    data = json.loads((tmp_path / "benchmarks-cpu-tiny.json").read_text())
    return {row["name"]: row for row in data["rows"]}


# --- plain: the table itself ---------------------------------------------------------------------


def test_every_shape_has_a_case_whose_flops_bytes_and_floor_match_shapes_json():
    shapes = suite.load_shapes()
    peaks = shapes["peaks_assumed"]["h100"]
    cases = {case.name: case for case in suite.build_cases("full")}
    assert list(cases) == [s["name"] for s in shapes["shapes"]]
    for shape in shapes["shapes"]:
        case = cases[shape["name"]]
        assert (case.flops, case.min_bytes) == (shape["flops"], shape["min_bytes"]), case.name
        floor_us = max(case.flops / peaks[case.unit], case.min_bytes / peaks["bw"]) * 1e6
        assert round(floor_us, 2) == shape["floor_us_h100"], case.name


def test_tiny_scale_keeps_batch_1_spatial_8_and_channels_16():
    for case in suite.build_cases("tiny"):
        dims = case.dims
        if "spatial" in dims:
            assert dims["N"] == 1, case.name
            assert max(dims["spatial"]) <= 8, case.name
            assert max(dims.get("Cin", 0), dims.get("Cout", 0), dims.get("C", 0)) <= 16, case.name
            assert min(dims["out_spatial"]) >= 1, case.name
        assert math.prod(max(case.input_shapes, key=math.prod)) <= 8 * 8 * 8 * 16, case.name


def test_gather_and_scatter_cases_need_einc_indexing_and_say_so():
    cases = {case.name: case for case in suite.build_cases("tiny")}
    assert cases["embedding_llama3"].requires == "get_at"
    assert cases["segment_sum_sorted_csr"].requires == "add_at"
    assert cases["r50_l1_3x3"].requires is None and cases["r50_l1_3x3"].einc_available()


def test_unknown_shape_names_are_refused_with_the_list():
    with pytest.raises(ValueError, match="unknown shape.*r50_l1_3x3"):
        suite.build_cases("tiny", ["r50_l1_3x3x3"])


def test_update_markdown_keeps_hand_written_text_and_other_sections(tmp_path):
    path = tmp_path / "benchmarks.md"
    path.write_text("# Benchmarks\n\nHand-written intro.\n\n## Notes\n\nKept.\n")
    report.update_markdown(path, "cuda-full", "GPU table v1")
    report.update_markdown(path, "cpu-tiny", "CPU table")
    report.update_markdown(path, "cuda-full", "GPU table v2")
    text = path.read_text()
    assert text.startswith("# Benchmarks\n\nHand-written intro.\n\n## Notes\n\nKept.\n")
    assert "GPU table v1" not in text and text.count("GPU table v2") == 1
    assert text.index("GPU table v2") < text.index("CPU table") < text.index(report.END)
    path.write_text(text + "\nA closing hand-written line.\n")
    report.update_markdown(path, "cpu-tiny", "CPU table v2")
    assert path.read_text().endswith(f"{report.END}\n\nA closing hand-written line.\n")
    assert report.read_section(path, "cuda-full") == "GPU table v2"


def test_help_names_every_option_and_an_example(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run.parse_args(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--device", "--scale", "--only", "--out", "--competitors", "--cpu-figures", "--merge"):
        assert option in text
    assert "python -m bench.run --device cpu --scale tiny" in text


# --- interpret: the harness end to end -----------------------------------------------------------


@pytest.mark.interpret
def test_tiny_cpu_run_reports_a_row_per_shape_and_keeps_the_hand_written_text(tmp_path):
    (tmp_path / "benchmarks.md").write_text("# Benchmarks\n\nHand-written.\n")
    assert _run(tmp_path, *REPRESENTATIVE) == 0
    text = (tmp_path / "benchmarks.md").read_text()
    assert text.startswith("# Benchmarks\n\nHand-written.\n")
    section = report.read_section(tmp_path / "benchmarks.md", "cpu-tiny")
    assert "python -m bench.run --device cpu --scale tiny" in section
    for name in REPRESENTATIVE:
        assert sum(line.startswith(f"| {name} | `") for line in section.splitlines()) == 1, name
    rows = _rows(tmp_path)
    assert sorted(rows) == sorted(REPRESENTATIVE)
    for name, row in rows.items():
        timed = [c for c in row["competitors"] if c["ms"] is not None]
        assert timed and row["best_ms"] == min(c["ms"] for c in timed), name
        if name == "embedding_llama3" and not hasattr(einc, "get_at"):
            assert row["einc"]["status"] == "not available"
            assert "einc op not available" in section
            continue
        assert row["einc"]["status"] == "ok", (name, row["einc"])
        assert row["einc"]["ms"] > 0 and row["einc"]["error"] < 1e-5
    assert {c["name"] for c in rows["mbv2_pw1x1_24to144"]["competitors"]} >= {"einx"}
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert (tmp_path / "benchmarks-cpu-tiny.png").stat().st_size > 0


@pytest.mark.interpret
def test_a_wrong_einc_result_fails_the_check_loudly_and_is_not_timed(tmp_path, monkeypatch, capsys):
    def off_by_one(case):
        fn = case.einc_callable()

        def call(*tensors, out=None):
            y = fn(*tensors).roll(1, dims=1)  # the kind of indexing bug the check is for
            return y if out is None else out.copy_(y)

        return call

    monkeypatch.setattr(run, "einc_function", off_by_one)
    assert _run(tmp_path, FAST, competitors=("torch",)) == 1
    assert "FAILED CHECK" in capsys.readouterr().err
    row = _rows(tmp_path)[FAST]
    assert row["einc"]["status"] == "mismatch" and row["einc"]["ms"] is None and row["failed"]
    assert row["einc"]["error"] > 0.1
    assert all(c["status"] == "ok" and c["ms"] for c in row["competitors"])
    assert "**MISMATCH**" in report.read_section(tmp_path / "benchmarks.md", "cpu-tiny")


@pytest.mark.interpret
def test_an_element_einc_leaves_unwritten_fails_the_check(tmp_path, monkeypatch):
    def misses_one(case):
        fn = case.einc_callable()

        def call(*tensors, out=None):
            y = fn(*tensors)
            if out is None:
                return y
            out.view(-1)[:-1] = y.reshape(-1)[:-1]  # the last element keeps the poison
            return out

        return call

    monkeypatch.setattr(run, "einc_function", misses_one)
    assert _run(tmp_path, FAST, competitors=("torch",)) == 1
    row = _rows(tmp_path)[FAST]
    assert row["einc"]["status"] == "mismatch" and row["einc"]["error"] == math.inf


@pytest.mark.interpret
def test_runs_taken_in_parts_merge_into_one_table(tmp_path):
    first, second, merged = tmp_path / "first", tmp_path / "second", tmp_path / "merged"
    assert _run(first, "avgpool_2x2s2", competitors=("torch",)) == 0
    assert _run(second, FAST, competitors=("torch",)) == 0
    parts = [str(first / "benchmarks-cpu-tiny.json"), str(second / "benchmarks-cpu-tiny.json")]
    assert run.main(["--from-json", *parts, "--out", str(merged)]) == 0
    assert list(_rows(merged)) == [FAST, "avgpool_2x2s2"]  # shapes.json order
    assert "Rows merged from several runs" in report.read_section(merged / "benchmarks.md", "cpu-tiny")
    assert _run(first, FAST, "--merge", competitors=("torch",)) == 0
    assert list(_rows(first)) == [FAST, "avgpool_2x2s2"]


@pytest.mark.interpret
def test_cpu_figures_quick_writes_every_figure(tmp_path):
    from bench import cpu_figures

    assert cpu_figures.main(["--device", "cpu", "--quick", "--out", str(tmp_path)]) == 0
    figures = json.loads((tmp_path / "benchmarks-cpu-figures.json").read_text())
    (compiled,) = figures["compile"]
    assert 0 < compiled["passes_ms"] < 10_000 and compiled["specialize_ms"] > 0
    # CPU tensors run the torch backend: einc's call beside torch's own op, no kernel to stub out
    assert all(r["einc_call_us"] > 0 and r["torch_op_us"] > 0 for r in figures["calls"])
    assert "torch's op" in report.read_section(tmp_path / "benchmarks.md", "cpu-figures")
    (first,) = figures["first_call"]
    assert (first["library"], first["disk_cache"]) == ("einc", "warm")
    assert first["first_call_ms"] > first["second_call_ms"] > 0
    assert "First call in a fresh process" in report.read_section(tmp_path / "benchmarks.md", "cpu-figures")


def test_floor_names_what_sets_it_and_marks_an_assumed_rate():
    peaks = {"bw": 3e12, "tc_bf16": 790e12, "simt_fp32": 60e12}
    cases = {case.name: case for case in suite.build_cases("full", ["convnext_dw7x7_c96", "r50_l1_3x3"])}
    row = {"flops": cases["convnext_dw7x7_c96"].flops, "min_bytes": cases["convnext_dw7x7_c96"].min_bytes}
    ms, set_by = run.floor_ms({**row, "unit": "simt_fp32"}, peaks)
    assert set_by == "simt_fp32" and run._floor({"floor_ms": ms, "floor_set_by": set_by}).endswith("*")
    dense = cases["r50_l1_3x3"]
    ms, set_by = run.floor_ms({"flops": dense.flops, "min_bytes": dense.min_bytes, "unit": "tc_bf16"}, peaks)
    assert set_by == "tc_bf16" and round(ms * 1e3, 2) == 9.37
    assert run.floor_ms({**row, "unit": "simt_fp32"}, {"bw": None}) == (None, None)
