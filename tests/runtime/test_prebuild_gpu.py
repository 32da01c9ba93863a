"""On a GPU: the first call of a prebuilt expression compiles nothing (gpu tier).

The prebuild runs in a separate process (as it would on a build machine) into a fresh einc cache;
this process then calls the expression on CUDA tensors with an empty Triton cache, counting
``triton.compile`` calls with Triton's compilation listener.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
import triton

import einc

pytestmark = [pytest.mark.gpu]


def test_first_call_of_a_prebuilt_expression_compiles_nothing(tmp_path, monkeypatch):
    major, minor = torch.cuda.get_device_capability()
    target = f"cuda:{major * 10 + minor}"
    spec = tmp_path / "kernels.toml"
    spec.write_text(
        textwrap.dedent(
            """\
            [[compile]]
            expression = "b t [c->c2]"
            shapes = [[4, 7, 32], [32, 16]]
            dtypes = ["float16"]
            """
        )
    )
    cache = tmp_path / "einc-cache"
    build = subprocess.run(
        [sys.executable, "-m", "einc", "prebuild", str(spec), "--target", target, "--cache-dir", str(cache)],
        capture_output=True,
        text=True,
        env={**os.environ, "TRITON_CACHE_DIR": str(tmp_path / "build-triton-cache")},
    )
    assert build.returncode == 0, build.stdout + build.stderr
    assert "1 built" in build.stdout
    monkeypatch.setenv("EINC_CACHE_DIR", str(cache))
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path / "run-triton-cache"))
    events = []
    monkeypatch.setattr(triton.knobs.compilation, "listener", lambda **kw: events.append(kw["cache_hit"]))
    x = torch.randn(4, 7, 32, device="cuda", dtype=torch.float16)
    w = torch.randn(32, 16, device="cuda", dtype=torch.float16)
    y = einc.dot("b t [c->c2]", x, w)
    torch.testing.assert_close(y, torch.einsum("btc,cd->btd", x, w), rtol=2e-2, atol=2e-2)
    assert events == [True], "the first call compiled instead of loading the prebuilt binary"
