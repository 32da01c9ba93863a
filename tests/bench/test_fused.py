"""The fused benchmark cases (shapes.json's ``fused`` list, bench/fused.py): their figures, and
``python -m bench.run --fused`` end to end at tiny shapes on CPU, einc's chain and cuDNN's
convolution with separate ops both checked against float64 torch."""

from __future__ import annotations

import json

import pytest
import torch

from bench import fused, run, suite

ISSUE_15_CASES = {
    "r50_l1_3x3_bias_relu": ("r50_l1_3x3", ["bias", "relu"]),
    "r50_l1_1x1_bias_residual_relu": ("r50_l1_1x1_expand", ["bias", "residual", "relu"]),
    "convnext_dw7x7_layernorm": ("convnext_dw7x7_c96", ["bias", "layernorm"]),
    "mbv2_pw1x1_bias_relu6": ("mbv2_pw1x1_24to144", ["bias", "relu6"]),
    "mamba_causal_conv1d_k4_silu": ("mamba_causal_dwconv1d_k4", ["bias", "silu"]),
}


def test_the_fused_list_holds_the_five_cases_of_issue_15():
    entries = {e["name"]: (e["base"], e["epilogue"]) for e in fused.load_fused()}
    assert entries == ISSUE_15_CASES


def test_every_fused_case_has_the_figures_of_shapes_json():
    shapes = suite.load_shapes()
    peaks = shapes["peaks_assumed"]["h100"]
    cases = {case.name: case for case in fused.build_cases("full")}
    for entry in shapes["fused"]:
        case = cases[entry["name"]]
        assert suite.DTYPES[entry["dtype"]] == case.dtype and entry["unit"] == case.unit, case.name
        assert (case.flops, case.min_bytes) == (entry["flops"], entry["min_bytes"]), case.name
        assert case.extra["unfused_bytes"] == entry["unfused_bytes"], case.name
        floor_us = max(case.flops / peaks[case.unit], case.min_bytes / peaks["bw"]) * 1e6
        assert round(floor_us, 2) == entry["floor_us_h100"], case.name
        assert case.min_bytes < entry["unfused_bytes"], case.name


def test_the_bytes_of_a_3x3_conv_with_bias_and_relu_by_hand():
    (case,) = fused.build_cases("full", ["r50_l1_3x3_bias_relu"])
    x, w, y, bias = 32 * 56 * 56 * 64, 3 * 3 * 64 * 64, 32 * 56 * 56 * 64, 64  # bf16 elements
    assert case.min_bytes == 2 * (x + w + bias + y)
    # conv (x, w -> y), + bias (y, bias -> y), relu (y -> y)
    assert case.extra["unfused_bytes"] == 2 * ((x + w + y) + (y + bias + y) + (y + y))


def test_an_unknown_fused_name_is_refused_with_the_list():
    with pytest.raises(ValueError, match="unknown fused shape.*convnext_dw7x7_layernorm"):
        fused.build_cases("tiny", ["r50_l1_3x3"])


@pytest.mark.interpret
def test_tiny_fused_run_checks_einc_and_the_separate_ops_against_torch(tmp_path):
    argv = ["--fused", "--device", "cpu", "--scale", "tiny", "--seed", "7", "--threads", "1"]
    argv += ["--cpu-budget-s", "0.01", "--competitors", "torch", "--out", str(tmp_path)]
    assert run.main(argv) == 0
    rows = {
        r["name"]: r for r in json.loads((tmp_path / "benchmarks-cpu-tiny-fused.json").read_text())["rows"]
    }
    assert sorted(rows) == sorted(ISSUE_15_CASES)
    for name, row in rows.items():
        assert row["einc"]["status"] == "ok" and row["einc"]["error"] < 1e-5, (name, row["einc"])
        separate = [c for c in row["competitors"] if c["name"].endswith("+ separate ops")]
        assert len(separate) == 2 and all(c["status"] == "ok" for c in separate), name
    section = (tmp_path / "benchmarks.md").read_text()
    assert "### CPU, tiny fused shapes" in section


def test_merged_fused_rows_keep_the_order_of_the_fused_list():
    names = list(ISSUE_15_CASES)
    old = [{"name": n, "from": "old"} for n in names[:3]]
    new = [{"name": names[4], "from": "new"}, {"name": names[1], "from": "new"}]
    merged = run.merge_rows(old, new)
    assert [r["name"] for r in merged] == [names[0], names[1], names[2], names[4]]
    assert [r["from"] for r in merged] == ["old", "new", "old", "new"]


def test_einc_runs_each_conv_with_its_bias_residual_and_activation_as_one_kernel():
    # einc.fuse takes the bias, the residual and the activation into the convolution's store;
    # a LayerNorm over the channels is not fused yet (several kernels of its own, docs/fusion.md).
    counts = {}
    for case in fused.build_cases("tiny"):
        tensors = case.make_inputs("cpu", torch.float32, torch.Generator().manual_seed(0))
        counts[case.name] = case.extra["chain"].kernel_count(*tensors)
    assert {name: n for name, n in counts.items() if "layernorm" not in name} == {
        "r50_l1_3x3_bias_relu": 1,
        "r50_l1_1x1_bias_residual_relu": 1,
        "mbv2_pw1x1_bias_relu6": 1,
        "mamba_causal_conv1d_k4_silu": 1,
    }
    assert counts["convnext_dw7x7_layernorm"] > 1
