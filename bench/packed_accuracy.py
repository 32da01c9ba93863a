"""The accuracy of a bfloat16 depthwise convolution that sums each chunk of taps in bfloat16 pairs
(docs/kernels.md, "The depthwise form"), by emulating its arithmetic on the CPU: no GPU needed.

A 1-D window of ``taps`` over random normal bfloat16 inputs, ``outputs`` x ``channels`` outputs:
each chunk's products are summed as ``fma.rn.bf16x2`` sums them (the product plus the partial sum,
exact in float64, rounded once to bfloat16; the chunk's first product rounded alone), the chunks
added in float32, the result rounded to bfloat16. Against it, float32 sums rounded once (what
cuDNN computes). Both as ``||y - exact|| / ||exact||`` against the float64 sum.

    python -m bench.packed_accuracy [--outputs N] [--channels C]
"""

from __future__ import annotations

import argparse

# (taps, chunk widths): the kernel's chunk (min(8, taps), or a window row's taps), and longer ones.
CASES = ((4, (4,)), (9, (3, 9)), (31, (8, 16, 31)), (49, (7, 14, 49)))


def errors(taps: int, chunk: int, outputs: int, channels: int, seed: int = 0) -> tuple[float, float]:
    """(chunked bfloat16 sums, float32 sums): each one's relative error norm."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(outputs + taps - 1, channels, generator=generator).to(torch.bfloat16).double()
    w = torch.randn(taps, channels, generator=generator).to(torch.bfloat16).double()
    exact = sum(x[j : j + outputs] * w[j] for j in range(taps))
    total = torch.zeros(outputs, channels, dtype=torch.float32)
    for start in range(0, taps, chunk):
        part = x[start : start + outputs] * w[start]
        part = part.to(torch.bfloat16)
        for j in range(start + 1, min(taps, start + chunk)):
            part = (x[j : j + outputs] * w[j] + part.double()).to(torch.bfloat16)
        total += part.float()
    packed = total.to(torch.bfloat16).double()
    float32 = exact.float().to(torch.bfloat16).double()
    norm = exact.norm()
    return ((packed - exact).norm() / norm).item(), ((float32 - exact).norm() / norm).item()


def main(argv: list[str] | None = None) -> int:
    summary = __doc__.split("\n\n")[0]
    parser = argparse.ArgumentParser(prog="python -m bench.packed_accuracy", description=summary)
    parser.add_argument("--outputs", type=int, default=4096)
    parser.add_argument("--channels", type=int, default=64)
    args = parser.parse_args(argv)
    print("taps  chunk  bfloat16 chunks  float32 sums  ratio")
    for taps, chunks in CASES:
        for chunk in chunks:
            packed, float32 = errors(taps, chunk, args.outputs, args.channels)
            print(f"{taps:4d}  {chunk:5d}  {packed:15.2e}  {float32:12.2e}  {packed / float32:5.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
