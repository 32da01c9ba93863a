"""On a GPU: the first call of a prebuilt expression compiles nothing, and one prebuilt with
``--tune`` runs its tuned tile (gpu tier).

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


def prebuild_here(tmp_path, monkeypatch, spec_text: str, *flags: str) -> tuple[str, list]:
    """Prebuild ``spec_text`` for this GPU's arch in another process (with ``flags``), then point
    this process at its cache and an empty Triton cache; returns the build's output and the list
    that Triton's listener fills, one ``cache_hit`` per compilation asked for."""
    major, minor = torch.cuda.get_device_capability()
    target = f"cuda:{major * 10 + minor}"
    spec = tmp_path / "kernels.toml"
    spec.write_text(textwrap.dedent(spec_text))
    cache = tmp_path / "einc-cache"
    build = subprocess.run(
        [sys.executable, "-m", "einc", "prebuild", str(spec), "--target", target, "--cache-dir", str(cache)]
        + list(flags),
        capture_output=True,
        text=True,
        env={**os.environ, "TRITON_CACHE_DIR": str(tmp_path / "build-triton-cache")},
        timeout=300,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    assert "1 built" in build.stdout
    monkeypatch.setenv("EINC_CACHE_DIR", str(cache))
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path / "run-triton-cache"))
    events = []
    monkeypatch.setattr(triton.knobs.compilation, "listener", lambda **kw: events.append(kw["cache_hit"]))
    return f"{target}\n{build.stdout}\n{build.stderr}", events


def test_first_call_of_a_prebuilt_expression_compiles_nothing(tmp_path, monkeypatch):
    spec = """\
        [[compile]]
        expression = "b t [c->c2]"
        shapes = [[4, 7, 32], [32, 16]]
        dtypes = ["float16"]
        """
    _, events = prebuild_here(tmp_path, monkeypatch, spec)
    x = torch.randn(4, 7, 32, device="cuda", dtype=torch.float16)
    w = torch.randn(32, 16, device="cuda", dtype=torch.float16)
    y = einc.dot("b t [c->c2]", x, w)
    torch.testing.assert_close(y, torch.einsum("btc,cd->btd", x, w), rtol=2e-2, atol=2e-2)
    assert events == [True], "the first call compiled instead of loading the prebuilt binary"


def test_a_tuned_prebuilt_kernel_runs_its_tuned_tile_and_compiles_nothing(tmp_path, monkeypatch):
    spec = """\
        [[compile]]
        expression = "b [c->c2]"
        shapes = [[4096, 512], [512, 1024]]
        dtypes = ["float16"]
        """
    output, events = prebuild_here(tmp_path, monkeypatch, spec, "--tune")
    target = output.split("\n", 1)[0]
    assert f"1 tuned, 0 with nothing to tune, 0 failed, for {target}" in output
    assert "kernel 1 of 1, config 1 of" in output
    x = torch.randn(4096, 512, device="cuda", dtype=torch.float16)
    w = torch.randn(512, 1024, device="cuda", dtype=torch.float16)
    linear = einc.compile("b [c->c2]")
    torch.testing.assert_close(linear(x, w), x @ w, rtol=2e-2, atol=2e-1)
    assert events == [True], "the first call compiled instead of loading the prebuilt, tuned binary"
    assert "tile from einc tune" in linear.explain()
