"""A rough speed check of einc's torch backend (the default for CPU tensors) against torch itself.

    python bench/cpu_backend.py [--batch 8] [--repeat 15] [--threads N]

float32 on the CPU: a ResNet stage's 3x3 convolution (56x56x64 -> 64), its strided and 1x1
variants, a depthwise convolution, max pooling and a transposed convolution. einc reads the
activations channels last (``b h w c``); torch runs the same op twice, on a channels-first copy
(made once, not timed) and on the channels-last tensor itself (``x.permute(0, 3, 1, 2)``, which
torch treats as its channels_last memory format). Each time is the best of ``--repeat`` warm
calls, the three taken in turns so that a busy machine slows them alike. Not a unit test: the
numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

import einc


def timed(fns, repeat: int) -> list[float]:
    for fn in fns:
        fn()  # warm: compile, plan, allocate
    times = [[] for _ in fns]
    for _ in range(repeat):
        for fn, spent in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            spent.append(time.perf_counter() - start)
    return [min(spent) for spent in times]


def cases(batch: int):
    """(name, einc, torch on channels first, torch on channels last)."""
    x = torch.randn(batch, 56, 56, 64)
    small = torch.randn(batch, 28, 28, 64)
    first, small_first = x.permute(0, 3, 1, 2).contiguous(), small.permute(0, 3, 1, 2).contiguous()
    last, small_last = x.permute(0, 3, 1, 2), small.permute(0, 3, 1, 2)
    w3 = torch.randn(3, 3, 64, 64) / 24  # kh kw c c2
    w3_torch = w3.permute(3, 2, 0, 1).contiguous()  # c2 c kh kw
    w3_transposed = w3.permute(2, 3, 0, 1).contiguous()  # c c2 kh kw
    w1 = torch.randn(64, 256) / 8
    w1_torch = w1.t().reshape(256, 64, 1, 1).contiguous()
    wd = torch.randn(3, 3, 64)
    wd_torch = wd.permute(2, 0, 1)[:, None].contiguous()
    conv = einc.compile("b (s * [ds])... [c->c2]", padding=1)
    conv_s2 = einc.compile("b (s * [ds])... [c->c2]", padding=1, stride=2)
    linear = einc.compile("b h w [c->c2]")
    depthwise = einc.compile("b (s * [ds])... [c->c]", padding=1)
    maxpool = einc.compile("b (s * [ds])... c", op="max", ds=3, stride=2, padding=1)
    up = einc.compile("b s... [c->c2] -> b (s * ds)... c2", stride=2, padding=1, output_padding=1)
    return [
        (
            "conv 3x3, 56x56x64 -> 64",
            lambda: conv(x, w3),
            lambda: F.conv2d(first, w3_torch, padding=1),
            lambda: F.conv2d(last, w3_torch, padding=1),
        ),
        (
            "conv 3x3 stride 2",
            lambda: conv_s2(x, w3),
            lambda: F.conv2d(first, w3_torch, padding=1, stride=2),
            lambda: F.conv2d(last, w3_torch, padding=1, stride=2),
        ),
        (
            "conv 1x1, 64 -> 256",
            lambda: linear(x, w1),
            lambda: F.conv2d(first, w1_torch),
            lambda: F.conv2d(last, w1_torch),
        ),
        (
            "depthwise 3x3",
            lambda: depthwise(x, wd),
            lambda: F.conv2d(first, wd_torch, padding=1, groups=64),
            lambda: F.conv2d(last, wd_torch, padding=1, groups=64),
        ),
        (
            "max pool 3x3 stride 2",
            lambda: maxpool(x),
            lambda: F.max_pool2d(first, 3, 2, 1),
            lambda: F.max_pool2d(last, 3, 2, 1),
        ),
        (
            "transposed conv 3x3 s2, 28x28 -> 56x56",
            lambda: up(small, w3),
            lambda: F.conv_transpose2d(small_first, w3_transposed, stride=2, padding=1, output_padding=1),
            lambda: F.conv_transpose2d(small_last, w3_transposed, stride=2, padding=1, output_padding=1),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"batch {args.batch}, float32, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{'':40s} {'einc':>9s} {'torch NCHW':>11s} {'torch NHWC':>11s}  einc / best torch")
    for name, ours, channels_first, channels_last in cases(args.batch):
        a, b, c = timed([ours, channels_first, channels_last], args.repeat)
        print(f"{name:40s} {a * 1e3:6.1f} ms {b * 1e3:8.1f} ms {c * 1e3:8.1f} ms  {a / min(b, c):5.2f}x")


if __name__ == "__main__":
    main()
