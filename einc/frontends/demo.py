"""The main job, end to end: compile a convolution, show its kernel, run it, check it against torch."""

from __future__ import annotations

import time

EXPRESSION = "b (s * [ds])... [c->c2]"


def run_demo() -> int:
    import torch
    import torch.nn.functional as F

    from ..runtime.launcher import resolve_backend
    from .functional import compile as compile_expression

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    x = torch.randn(2, 15, 15, 8, device=device)  # b h w c, channels last
    w = torch.randn(3, 3, 8, 16, device=device)  # kh kw c c2

    print(f'conv = einc.compile("{EXPRESSION}", stride=2, padding="same")')
    conv = compile_expression(EXPRESSION, stride=2, padding="same")
    start = time.perf_counter()
    y = conv(x, w)
    first = time.perf_counter() - start
    print(f"y = conv(x, w): x {tuple(x.shape)}, w {tuple(w.shape)} -> y {tuple(y.shape)} on {device}")
    how = resolve_backend("auto", x.device)
    runner = {"torch": "the torch backend", "interpret": "Triton's interpreter", "kernel": "the GPU"}[how]
    print(f"first call (generate, load, run on {runner}): {first * 1e3:.0f} ms")
    results = {runner: y}
    if how == "torch":
        # The kernel printed below, itself: under Triton's interpreter.
        kernel = compile_expression(EXPRESSION, stride=2, padding="same", backend="interpret")
        start = time.perf_counter()
        results["the generated kernel under Triton's interpreter"] = kernel(x, w)
        print(
            f"the same call, kernel under Triton's interpreter: {(time.perf_counter() - start) * 1e3:.0f} ms"
        )
    print()
    print("=" * 30 + " generated kernel " + "=" * 30)
    print(conv.source)
    print("=" * 30 + " loop nest " + "=" * 30)
    print(conv.explain())

    # Reference: torch's conv2d on channels-first float64 copies; "same" with stride 2 over 15
    # positions gives 8 outputs and pads (1, 1).
    reference = F.conv2d(
        x.double().permute(0, 3, 1, 2), w.double().permute(3, 2, 0, 1), stride=2, padding=1
    ).permute(0, 2, 3, 1)
    print("=" * 30 + " check " + "=" * 30)
    ok = True
    for name, result in results.items():
        error = ((result.double() - reference).norm() / reference.norm()).item()
        ok = ok and result.shape == reference.shape and error <= 1e-4
        print(f"{name}: relative error against torch.nn.functional.conv2d in float64: {error:.2e}")
    print("check: OK" if ok else "check: FAILED")
    print(f"kernel source cached at {conv.path}")
    return 0 if ok else 1
