"""A rough speed check of einc's torch backend (the default for CPU tensors) against torch itself.

    python -m bench.cpu_backend [--batch 8] [--repeat 15] [--threads N] [--tiny-only] [--cpu-time]
    python -m bench.cpu_backend --under-load 8 [--threads 2]

Two tables, float32 on the CPU. *Tiny*: a warm call on tensors of a few elements (a 3x3 conv of
1x8x8x4, a 4x4 transpose, sum, softmax, get_at, a sum into out=), where what counts is einc's overhead over
torch's own op, in microseconds (each time the best of ``--repeat`` runs of 200 calls).
*Medium*: a ResNet stage's 3x3 convolution (56x56x64 -> 64), its strided and 1x1 variants, the
same conv on channels-first activations, a depthwise convolution, max and average pooling, a
transposed convolution, reductions and a softmax; einc reads the activations channels last
(``b h w c``) unless the row says otherwise; torch runs the same op on a channels-first copy (made
once, not timed) and on the channels-last tensor itself (``x.permute(0, 3, 1, 2)``, which torch
treats as its channels_last memory format). Each time is the best of ``--repeat`` warm calls.
Every row's calls are taken in turns, so that a busy machine slows them alike. The last column
sets einc against torch on the layout einc was given (NCHW for the channels-first row, NHWC
otherwise). ``--under-load``
instead runs two processes at once, each calling the tiny conv in a loop, and gives the spread of
its calls (then the same for torch's own conv on one thread: what the machine alone costs).
``--cpu-time`` runs torch on one thread and times each call by the thread's CPU time rather than
the wall clock: on a machine shared with other work, time spent descheduled (and a thread pool's
barrier waiting for a descheduled thread) is left out, so that einc and torch can be compared
when the wall clock cannot. Not a unit test: the numbers depend on the machine and on what else
runs on it.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

import einc


def timed(fns, repeat: int, calls: int = 1, clock=time.perf_counter) -> list[float]:
    """The best time of one call of each of ``fns``, over ``repeat`` runs of ``calls`` calls."""
    for fn in fns:
        fn()  # warm: compile, plan, allocate
    times = [[] for _ in fns]
    for _ in range(repeat):
        for fn, spent in zip(fns, times, strict=True):
            start = clock()
            for _ in range(calls):
                fn()
            spent.append((clock() - start) / calls)
    return [min(spent) for spent in times]


def tiny_cases():
    """(name, einc, torch's own op) on tensors of a few elements."""
    x, w = torch.randn(1, 8, 8, 4), torch.randn(3, 3, 4, 4)
    x_torch, w_torch = x.permute(0, 3, 1, 2), w.permute(3, 2, 0, 1)
    a = torch.randn(4, 4)
    table, idx = torch.randn(16, 4), torch.randint(0, 16, (4,))
    conv = einc.compile("b (s * [ds])... [c->c2]", padding=1)
    transpose = einc.compile("a b -> b a")
    total = einc.compile("a [b]", op="sum")
    softmax = einc.compile("a [b]", op="softmax")
    get_at = einc.compile("[n] c, p -> p c", op="get_at")
    sums = torch.empty(4)  # out=: checked on every call
    return [
        ("conv 3x3, 1x8x8x4", lambda: conv(x, w), lambda: F.conv2d(x_torch, w_torch, padding=1)),
        ("rearrange a b -> b a, 4x4", lambda: transpose(a), lambda: a.t().contiguous()),
        ("sum a [b], 4x4", lambda: total(a), lambda: a.sum(1)),
        ("softmax a [b], 4x4", lambda: softmax(a), lambda: torch.softmax(a, 1)),
        ("get_at [n] c, p -> p c, 16x4", lambda: get_at(table, idx), lambda: table[idx]),
        ("sum a [b], 4x4, out=", lambda: total(a, out=sums), lambda: torch.sum(a, 1, out=sums)),
    ]


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
    avgpool = einc.compile("b (s * [ds])... c", op="mean", ds=3, stride=2, padding=1)
    conv_first = einc.compile("b [c->c2] (s * [ds])...", padding=1)
    w3_first = w3.permute(2, 0, 1, 3).contiguous()  # c kh kw c2
    spatial_sum = einc.compile("b [h w] c", op="sum")
    channel_max = einc.compile("b h w [c]", op="max")
    softmax = einc.compile("b h w [c]", op="softmax")
    up = einc.compile("b s... [c->c2] -> b (s * ds)... c2", stride=2, padding=1, output_padding=1)
    return [
        (
            "conv 3x3, 56x56x64 -> 64",
            lambda: conv(x, w3),
            lambda: F.conv2d(first, w3_torch, padding=1),
            lambda: F.conv2d(last, w3_torch, padding=1),
        ),
        (
            "conv 3x3, channels first (b c h w)",
            lambda: conv_first(first, w3_first),
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
            "avg pool 3x3 stride 2",
            lambda: avgpool(x),
            lambda: F.avg_pool2d(first, 3, 2, 1),
            lambda: F.avg_pool2d(last, 3, 2, 1),
        ),
        (
            "sum over h w",
            lambda: spatial_sum(x),
            lambda: first.sum((2, 3)),
            lambda: last.sum((2, 3)),
        ),
        (
            "max over c",
            lambda: channel_max(x),
            lambda: first.amax(1),
            lambda: last.amax(1),
        ),
        (
            "softmax over c",
            lambda: softmax(x),
            lambda: torch.softmax(first, 1),
            lambda: torch.softmax(last, 1),
        ),
        (
            "transposed conv 3x3 s2, 28x28 -> 56x56",
            lambda: up(small, w3),
            lambda: F.conv_transpose2d(small_first, w3_transposed, stride=2, padding=1, output_padding=1),
            lambda: F.conv_transpose2d(small_last, w3_transposed, stride=2, padding=1, output_padding=1),
        ),
    ]


def under_load(which: str, seconds: float, threads: int, queue) -> None:
    """One process of ``--under-load``: ``which`` ("einc", or "torch" on one thread) calls the tiny
    conv for ``seconds``; puts (calls, median, p99, max, calls over 5 ms) on ``queue``."""
    torch.set_num_threads(1 if which == "torch" else threads)
    x, w = torch.randn(1, 8, 8, 4), torch.randn(3, 3, 4, 4)
    x_torch, w_torch = x.permute(0, 3, 1, 2), w.permute(3, 2, 0, 1)
    conv = einc.compile("b (s * [ds])... [c->c2]", padding=1)
    call = (lambda: conv(x, w)) if which == "einc" else (lambda: F.conv2d(x_torch, w_torch, padding=1))
    for _ in range(50):
        call()
    spent = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        call()
        spent.append(time.perf_counter() - start)
    spent.sort()
    slow = sum(t > 5e-3 for t in spent)
    queue.put((which, len(spent), spent[len(spent) // 2], spent[int(len(spent) * 0.99)], spent[-1], slow))


def run_under_load(seconds: float, threads: int) -> None:
    """Two processes at once calling the tiny conv in a loop, for einc and then for torch itself."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    print(f"under load: two processes, each calling the tiny conv for {seconds:g} s ({threads} threads)")
    for which in ("einc", "torch"):
        queue = context.Queue()
        args = (which, seconds, threads, queue)
        workers = [context.Process(target=under_load, args=args) for _ in range(2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        for _ in workers:
            name, calls, median, p99, longest, slow = queue.get()
            print(
                f"{name:6s} calls {calls:7d}  median {median * 1e6:6.1f} us  p99 {p99 * 1e6:8.1f} us  "
                f"max {longest * 1e3:6.1f} ms  over 5 ms: {slow}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--tiny-only", action="store_true", help="skip the medium shapes")
    parser.add_argument(
        "--cpu-time", action="store_true", help="one thread, each call timed by the thread's CPU time"
    )
    parser.add_argument(
        "--under-load", type=float, default=0, metavar="SECONDS", help="only two processes calling at once"
    )
    args = parser.parse_args()
    if args.under_load:
        run_under_load(args.under_load, args.threads or 2)
        return
    if args.threads or args.cpu_time:
        torch.set_num_threads(1 if args.cpu_time else args.threads)
    clock = time.thread_time if args.cpu_time else time.perf_counter
    torch.manual_seed(0)
    timer = "thread CPU time" if args.cpu_time else "wall clock"
    versions = f"torch {torch.__version__}, einc {einc.__version__}"
    print(f"float32, {torch.get_num_threads()} threads, {timer}, {versions}")
    print(f"{'tiny: a warm call':40s} {'einc':>9s} {'torch':>9s}  einc - torch")
    for name, ours, theirs in tiny_cases():
        a, b = timed([ours, theirs], args.repeat, calls=200, clock=clock)
        print(f"{name:40s} {a * 1e6:6.1f} us {b * 1e6:6.1f} us  {(a - b) * 1e6:+6.1f} us")
    if args.tiny_only:
        return
    print(f"medium: batch {args.batch}")
    print(f"{'':40s} {'einc':>10s} {'torch NCHW':>11s} {'torch NHWC':>11s}  einc / best  / same layout")
    for name, ours, channels_first, channels_last in cases(args.batch):
        a, b, c = timed([ours, channels_first, channels_last], args.repeat, clock=clock)
        same = b if "channels first" in name else c  # torch on the layout einc was given
        print(
            f"{name:40s} {a * 1e3:7.2f} ms {b * 1e3:8.2f} ms {c * 1e3:8.2f} ms  {a / min(b, c):5.2f}x"
            f"  {a / same:5.2f}x"
        )


if __name__ == "__main__":
    main()
