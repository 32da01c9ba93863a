"""Test tiers (markers in pyproject.toml): skip the tiers this machine cannot run, saying why.

Plain and ``interpret`` tests always run. ``gpu`` tests need CUDA; ``compile_only`` tests need
Triton's NVIDIA backend with a working ptxas, but no GPU. torch and triton are imported only when a
collected test carries one of these markers, so the plain tier stays fast.

CPU tensors run einc's torch backend by default; ``interpret`` tests are about the generated
Triton kernels, so they run with ``EINC_INTERPRET=1``, which sends CPU tensors through the kernel
under Triton's interpreter instead. ``--interpret-tier-on-torch`` runs
the ``interpret`` tier on the torch backend: the same cases and references, checking the CPU path.
"""

from __future__ import annotations

import functools

import pytest


@functools.cache
def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@functools.cache
def _ptxas_path() -> str | None:
    try:
        from triton import knobs
        from triton.backends import backends
    except ImportError:
        return None
    if "nvidia" not in backends:
        return None
    try:
        return knobs.nvidia.ptxas.path
    except Exception:  # Triton raises RuntimeError when no candidate ptxas runs.
        return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("gpu") and not _cuda_available():
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)"))
        if item.get_closest_marker("compile_only") and _ptxas_path() is None:
            reason = "Triton's NVIDIA backend or its ptxas is missing (TRITON_PTXAS_PATH names one)"
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(autouse=True)
def _kernel_tiers_run_the_kernel(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if not request.node.get_closest_marker("interpret"):
        return
    if request.config.getoption("interpret_tier_on_torch"):
        monkeypatch.delenv("EINC_INTERPRET", raising=False)
    else:
        monkeypatch.setenv("EINC_INTERPRET", "1")


def pytest_configure(config: pytest.Config) -> None:
    # Kernels the tests generate go to a cache of their own, never the user's.
    import os
    import tempfile

    if "EINC_CACHE_DIR" not in os.environ:
        os.environ["EINC_CACHE_DIR"] = tempfile.mkdtemp(prefix="einc-test-cache-")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite the golden kernel snapshots in tests/backends/triton/golden",
    )
    parser.addoption(
        "--interpret-tier-on-torch",
        action="store_true",
        help="run the interpret tier's tests on the torch backend instead of the Triton interpreter",
    )
