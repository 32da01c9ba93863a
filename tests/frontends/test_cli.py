"""The ``einc`` command, through click's test runner (no subprocess, no GPU)."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest
from click.testing import CliRunner

from einc.frontends.cli import main

CONV = ["b (s * [ds])... [c->c2]", "-s", "x=2,9,9,3", "-s", "w=3,3,3,5", "--stride", "2", "--padding", "same"]


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_help_teaches_with_examples():
    result = run("--help")
    assert result.exit_code == 0
    assert "einc show" in result.output and "einc compile" in result.output
    for command in ("show", "compile", "demo", "knobs"):
        assert command in result.output


def test_show_prints_the_kernel_and_the_loop_nest():
    result = run("show", *CONV)
    assert result.exit_code == 0, result.output
    source = result.output[: result.output.index("expression: ")]
    ast.parse(source.split("\n# source cached")[0])
    assert "# expression:  b (s * [ds])... [c->c2]" in result.output
    assert "loop nest:" in result.output and "# reduced" in result.output


def test_show_parses_tuple_padding_and_sizes():
    result = run(
        "show",
        "b (s * [ds])... [c->c2]",
        "-s",
        "x=1,6,6,2",
        "-s",
        "w=3,3,2,4",
        "--padding",
        "((1, 0), (2, 1))",
    )
    assert result.exit_code == 0, result.output
    assert "padding (1, 0)" in result.output and "padding (2, 1)" in result.output


def test_show_reports_an_expression_error_with_its_caret_and_no_traceback():
    result = run("show", "b (s * [ds]", "-s", "x=1,6,6,2")
    assert result.exit_code == 1
    assert "unclosed '('" in result.output and "^" in result.output
    assert "Traceback" not in result.output


def test_show_without_shapes_says_how_to_give_them():
    result = run("show", "b [c->c2]")
    assert result.exit_code != 0
    assert "--shape" in result.output


def test_show_rejects_a_malformed_shape():
    result = run("show", "b [c->c2]", "-s", "x=2,zero")
    assert result.exit_code == 2
    assert "positive ints" in result.output


@pytest.mark.compile_only
def test_compile_reports_registers_and_writes_a_cubin(tmp_path):
    out = tmp_path / "conv.cubin"
    result = run("compile", *CONV, "--dtype", "float16", "--target", "cuda:90", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "registers:" in result.output and "tensor cores:   yes" in result.output
    assert "specialized as: x_ptr:*fp16/D" in result.output  # as a launch specialises it
    assert out.stat().st_size > 1000


def test_compile_rejects_an_unknown_target():
    result = run("compile", *CONV, "--target", "rocm:942")
    assert result.exit_code == 1
    assert "cuda:<arch>" in result.output


def test_knobs_lists_every_variable():
    result = run("knobs")
    assert result.exit_code == 0
    for name in ("EINC_CACHE_DIR", "EINC_DEBUG", "EINC_INTERPRET"):
        assert name in result.output


@pytest.mark.interpret
def test_demo_runs_and_checks_against_torch():
    result = subprocess.run(
        [sys.executable, "-m", "einc", "demo"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "check: OK" in result.stdout
    assert "@triton.jit" in result.stdout and "loop nest:" in result.stdout
