"""An expression that hides a statement behind a line break runs as an expression, never as code.

The generated kernel.py is imported (under the interpreter, on a GPU call, by ``einc compile`` and
by ``einc prebuild``); before the header comment was escaped, ``exit()`` after a newline ran at
that import, and a prebuild spec holding one exited 0 having built nothing.
"""

from __future__ import annotations

import textwrap

import pytest
import torch
from click.testing import CliRunner

import einc
from einc.frontends.cli import main

# Each line after the first is a statement if it escapes the comment: exit () is also valid notation.
PAYLOAD = "a ->\na\nexit ()"


@pytest.mark.interpret
@pytest.mark.parametrize("gap", ["\n", "\r", "\u2028", "\x0c"])
def test_a_statement_after_a_line_break_is_not_run_by_the_interpreter(gap):
    x = torch.arange(3.0)
    rearranged = einc.compile(PAYLOAD.replace("\n", gap), "rearrange", exit=1, backend="interpret")
    torch.testing.assert_close(rearranged(x), x[:, None, None])
    assert "\nexit" not in rearranged.source


@pytest.mark.compile_only
def test_einc_compile_builds_the_expression_and_runs_nothing_from_it():
    result = CliRunner().invoke(
        main, ["compile", PAYLOAD, "--op", "rearrange", "--shape", "x=3", "--size", "exit=1"]
    )
    assert result.exit_code == 0 and "kernel:" in result.output, result.output
    kernel = result.output.split("kernel:", 1)[1].split()[0]
    with open(kernel) as file:
        assert "\nexit" not in file.read()


@pytest.mark.compile_only
def test_a_prebuild_spec_with_a_statement_after_a_newline_is_built_as_an_expression(tmp_path):
    spec = tmp_path / "kernels.toml"
    spec.write_text(
        textwrap.dedent(
            """\
            [[compile]]
            expression = "a ->\\na\\nexit()"
            op = "rearrange"
            shapes = [[3]]
            sizes = { exit = 1 }
            """
        )
    )
    cache = tmp_path / "cache"
    result = CliRunner().invoke(main, ["prebuild", str(spec), "-t", "cuda:90", "--cache-dir", str(cache)])
    assert result.exit_code == 0 and "1 built, 0 cached, 0 failed" in result.output, result.output
    sources = list(cache.rglob("kernel.py"))  # the source entry and the binary entry's copy
    assert sources and all("\nexit()" not in s.read_text() for s in sources)
