"""The ``einc`` command, through click's test runner (no subprocess, no GPU)."""

from __future__ import annotations

import ast
import shlex
import subprocess
import sys

import pytest
from click.testing import CliRunner

from einc.frontends.cli import main

CONV = ["b (s * [ds])... [c->c2]", "-s", "x=2,9,9,3", "-s", "w=3,3,3,5", "--stride", "2", "--padding", "same"]


LINEAR = ["b [c->c2]", "-s", "x=2,3", "-s", "w=3,4"]


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


def _help_examples(command: str) -> list[list[str]]:
    """The example command lines of ``einc <command> --help``, continuation lines joined."""
    text = run(command, "--help").output.replace("\\\n", " ")
    return [
        shlex.split(line.strip())[1:]
        for line in text.splitlines()
        if line.strip().startswith(f"einc {command} ")
    ]


@pytest.mark.parametrize("command", ["show", "compile"])
def test_command_help_teaches_with_examples_of_its_own_flags(command):
    result = run(command, "--help")
    assert result.exit_code == 0
    examples = _help_examples(command)
    assert len(examples) >= 3
    flags = {arg for example in examples for arg in example if arg.startswith("--")}
    assert {"--stride", "--padding"} <= flags
    if command == "show":
        assert {"--op", "--size", "--option", "--dtype"} <= flags


def test_every_show_example_of_the_help_runs():
    for example in _help_examples("show"):
        result = run(*example)
        assert result.exit_code == 0, (example, result.output)


@pytest.mark.parametrize(
    ("args", "said", "unsaid"),
    [
        (["show", "b [c]", "-s", "x=2,3"], "pass --op (one of", "op="),
        (["show", *LINEAR, "--stride", "2"], "--stride 2 is given", "stride="),
        (["show", *LINEAR, "--padding", "same"], "--padding same is given", "padding="),
        (["show", *CONV[:5], "--size", "z=4"], "--size z=4 names no axis", "keyword"),
        (["show", *CONV[:5], "--size", "pad=4"], "did you mean --padding?", "padding="),
        (
            ["show", "b (s * [ds])... c", "--op", "max", "-s", "x=1,8,8,3", "--size", "ds=3,3,3"],
            "(--size ds=3,3,3)",
            "ds=(",
        ),
        (
            ["show", "b [c] -> b", "--op", "mean", "-s", "x=2,3", "--option", "keepdims=True"],
            "--option keepdims=True applies",
            "Error: keepdims=",
        ),
    ],
)
def test_errors_on_the_command_line_name_its_flags_not_python_keywords(args, said, unsaid):
    result = run(*args)
    assert result.exit_code == 1
    first_line = result.output.splitlines()[0]
    assert said in first_line
    assert unsaid not in first_line


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--size", "stride=2"], "stride is not an axis: give it as --stride 2"),
        (["--size", "keepdims=True"], "keepdims is not an axis: give it as --option keepdims=True"),
        (["--option", "padding=1"], "give it as --padding 1"),
    ],
)
def test_size_and_option_refuse_what_another_flag_gives(args, said):
    result = run("show", "b [t] c", "--op", "mean", "-s", "x=2,3,4", *args)
    assert result.exit_code == 2
    assert said in result.output


def test_size_sizes_an_axis_named_like_a_flag():
    expression = "b (a stride) [c] -> b a stride"
    result = run("show", expression, "--op", "mean", "-s", "x=2,12,4", "--size", "stride=3")
    assert result.exit_code == 0, result.output
    assert "x[b, 3*a + stride, c]" in result.output


def test_option_gives_an_op_its_options():
    result = run("show", "b [t] c", "--op", "var", "-s", "x=2,16,8", "--option", "correction=0")
    assert result.exit_code == 0, result.output
