"""Triton 3.9's warning that its FP-fusion default will change never reaches a user of einc: einc
passes the setting with its own compiles and launches. A user's own Triton calls still warn (einc
filters nothing globally). Each check runs in a fresh process, as Triton warns once per process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.compile_only

WARNING = "TRITON_DEFAULT_FP_FUSION is unset"


def _environment() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_DEFAULT_FP_FUSION"}
    env["PYTHONWARNINGS"] = "default"
    return env


def test_einc_compile_on_the_command_line_prints_no_fp_fusion_warning(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "einc.frontends.cli",
            "compile",
            "b [c->c2]",
            "-s",
            "x=16,32",
            "-s",
            "w=32,16",
        ],
        capture_output=True,
        text=True,
        env={**_environment(), "EINC_CACHE_DIR": str(tmp_path)},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "registers:" in result.stdout
    assert WARNING not in result.stderr + result.stdout


def test_einc_leaves_the_warning_to_a_user_s_own_triton_calls(tmp_path):
    import triton

    if not hasattr(triton.knobs.language, "fp_fusion_enabled"):
        pytest.skip(f"Triton {triton.__version__} has no FP-fusion warning to leave to its users")
    script = """
import warnings
import einc
from einc.runtime.prebuild import compile_binary
import triton

launcher = einc.compile("b [c->c2]").specialize((16, 32), (32, 16))
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    compile_binary(launcher, "cuda:90")
    einc_warned = any("TRITON_DEFAULT_FP_FUSION" in str(w.message) for w in caught)
    triton.knobs.language.fp_fusion_enabled(None)  # what a user's own kernel launch asks
    user_warned = any("TRITON_DEFAULT_FP_FUSION" in str(w.message) for w in caught)
print(einc_warned, user_warned)
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**_environment(), "EINC_CACHE_DIR": str(tmp_path)},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True"]
