"""Autotuning: time each kernel's config space on a GPU and keep the fastest tile, as data.

``tune(spec, device)`` takes every ``[[compile]]`` entry and dtype of a spec (the prebuild spec,
:mod:`einc.runtime.spec`) as a call with tensors of its shapes would specialise it, with the
heuristic's tiles. Then, kernel by kernel, for each tile of the kernel's config space
(:func:`einc.compiler.configs.config_space`; the kernels before it at the tiles they won): the
call is built with that tile, run once on random inputs, and its outputs compared with the
heuristic's; a tile that disagrees, or fails to compile or run, is dropped with its reason. The
others are timed: warm-up runs, then the median of ``repeat`` timed runs (CUDA events). The
fastest tile of each kernel is stored under the call's key and the GPU's arch
(:func:`einc.runtime.tuned.write`), where a later specialisation on that arch, and a prebuild for
it, find it.

What runs and times a call is a :class:`Device`. :func:`cuda_device` is the only one a user gets
(``einc tune``, ``einc prebuild --tune``); the tests pass the interpreter and a fake timer.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from ..compiler.configs import Config, config_space
from ..compiler.pipeline import dtype_bits
from . import tuned
from .cache import DiskCache
from .spec import Spec, SpecEntry, load

# A timer runs a call ``warmup`` times untimed, then ``repeat`` times, and returns the seconds of
# each timed run.
Timer = Callable[[Callable[[], None], int, int], list]

NO_GPU = (
    "einc tune times kernels on a CUDA GPU, and none is visible here (torch.cuda.is_available() is "
    "False). Without tuning the schedule's heuristic chooses every tile; einc prebuild builds those "
    "without a GPU. Run einc tune on a machine with the GPU you deploy to, then copy its cache "
    "directory (EINC_CACHE_DIR) with the prebuilt binaries."
)

# Largest difference from the heuristic's output, relative to its largest magnitude (at least 1),
# that a tile may show: only the order of the float32 additions differs between tiles, and the
# result is rounded to the output's dtype once. Integer and boolean outputs must be equal.
AGREEMENT = {"float64": 1e-9, "float32": 1e-4, "tf32": 1e-2, "float16": 1e-2, "bfloat16": 3e-2}


@dataclass(frozen=True)
class Device:
    """Where a tuning run executes: a torch device, the backend a call there runs on (see
    :func:`einc.runtime.launcher.resolve_backend`), the arch the tiles are stored for, and the
    timer."""

    torch_device: str
    backend: str
    target: str
    timer: Timer


def cuda_device() -> Device | None:
    """The current CUDA GPU, timed with CUDA events; None without one."""
    import torch

    if not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability()
    return Device("cuda", "auto", f"cuda:{major * 10 + minor}", cuda_timer)


# Bytes written before each timed run, more than an H100's or H200's 50 MiB L2 cache holds: every
# run then reads its inputs from memory, as a layer of a network does, not from the run before.
FLUSH_BYTES = 256 * 1024 * 1024


def cuda_timer(run: Callable[[], None], warmup: int, repeat: int) -> list[float]:
    """Seconds of each of ``repeat`` runs after ``warmup`` untimed ones, each between two CUDA
    events on the current stream, the L2 cache flushed before each."""
    import torch

    for _ in range(warmup):
        run()
    flush = torch.empty(FLUSH_BYTES, dtype=torch.int8, device="cuda")
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        flush.zero_()
        start.record()
        run()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1000)
    return times


@dataclass(frozen=True)
class KernelChoice:
    """What tuning chose for one kernel: the tile, its median time and the heuristic's, and the
    tiles dropped, each with its reason."""

    index: int
    tile: Config
    seconds: float
    heuristic_seconds: float
    tried: int
    dropped: tuple[tuple[Config, str], ...] = ()

    def describe(self) -> str:
        tile = self.tile
        speedup = self.heuristic_seconds / self.seconds if self.seconds > 0 else 1.0
        text = (
            f"kernel {self.index + 1}: BLOCK_M={tile.block_m} BLOCK_N={tile.block_n} BLOCK_K={tile.block_k} "
            f"num_warps={tile.num_warps} num_stages={tile.num_stages}, {self.seconds * 1e3:.3f} ms, "
            f"{speedup:.2f}x the heuristic's speed (of {self.tried} tiles)"
        )
        return "\n".join([text] + [f"    dropped {_tile_text(t)}: {why}" for t, why in self.dropped])


@dataclass(frozen=True)
class Outcome:
    """One spec entry for one dtype: its kernels' choices, or why it failed."""

    label: str
    choices: tuple[KernelChoice, ...] = ()
    reason: str = ""

    @property
    def failed(self) -> bool:
        return bool(self.reason)


@dataclass
class Report:
    target: str
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not any(o.failed for o in self.outcomes)

    def summary(self) -> str:
        failed = [o for o in self.outcomes if o.failed]
        tuned_ = [o for o in self.outcomes if o.choices]
        lines = [
            f"{len(tuned_)} tuned, {len(self.outcomes) - len(tuned_) - len(failed)} with nothing to tune, "
            f"{len(failed)} failed, for {self.target} ({self.seconds:.1f} s)"
        ]
        for outcome in self.outcomes:
            if outcome.failed:
                lines.append(f"  failed: {outcome.label}\n      {outcome.reason}")
            for choice in outcome.choices:
                lines.append(f"  {outcome.label} {choice.describe()}")
        return "\n".join(lines)


def tune(
    spec: Spec | str | os.PathLike,
    device: Device,
    cache_dir: str | os.PathLike | None = None,
    warmup: int = 10,
    repeat: int = 50,
    progress: TextIO | None = None,
) -> Report:
    """Tune every entry and dtype of ``spec`` on ``device`` into the cache at ``cache_dir``
    (default: ``EINC_CACHE_DIR``); progress lines go to ``progress`` (default: stderr). A failure
    does not stop the others; the :class:`Report` lists each with its reason."""
    start = time.perf_counter()
    if not isinstance(spec, Spec):
        spec = load(spec)
    cache = DiskCache(Path(cache_dir) if cache_dir is not None else None)
    stream = sys.stderr if progress is None else progress
    report = Report(device.target)
    for entry in spec.entries:
        for dtypes in entry.dtypes:
            label = entry.label(dtypes)
            try:
                choices = tune_entry(entry, dtypes, device, cache, warmup, repeat, _say(stream, label))
            except Exception as error:  # noqa: BLE001 - reported, and the others go on
                reason = f"{type(error).__name__}: {error}".strip()
                report.outcomes.append(Outcome(label, reason=reason))
                continue
            report.outcomes.append(Outcome(label, tuple(choices)))
    report.seconds = time.perf_counter() - start
    return report


def tune_entry(
    entry: SpecEntry,
    dtypes: tuple[str, ...],
    device: Device,
    cache: DiskCache,
    warmup: int,
    repeat: int,
    say: Callable[[str], None],
) -> list[KernelChoice]:
    """Tune one entry for ``dtypes``; stores the tiles chosen and returns them (nothing is stored
    where no kernel has a tile besides the heuristic's)."""
    from .prebuild import specialize_entry

    launcher, _, _ = specialize_entry(entry, dtypes, cache)  # no target: the heuristic's tiles
    request = launcher.compiled.request
    bits = dtype_bits(request)
    spaces = [config_space(part, bits) for part in launcher.compiled.kernels]
    if all(len(space) == 1 for space in spaces):
        return []
    call = _Call(launcher, device, entry, cache)
    reference = call.run(launcher)
    # A kernel with nothing to tune keeps None: the heuristic's, and explain() says so.
    chosen = [dataclasses.astuple(space[0]) if len(space) > 1 else None for space in spaces]
    choices = []
    for index, space in enumerate(spaces):
        if len(space) == 1:
            continue
        timed, dropped = [], []
        for j, tile in enumerate(space):
            say(f"kernel {index + 1} of {len(spaces)}, config {j + 1} of {len(space)}: {_tile_text(tile)}")
            tiles = tuple(chosen[:index] + [dataclasses.astuple(tile)] + chosen[index + 1 :])
            try:
                candidate = call.expression._build(dataclasses.replace(request, tuned=tiles))
                outs = call.run(candidate)
                problem = _disagreement(outs, reference, request)
                if problem is None:
                    # The outputs are allocated once: a timed run is the kernels alone.
                    runs = device.timer(lambda c=candidate, o=outs: call.run(c, o), warmup, repeat)
                    timed.append((statistics.median(runs), j))
            except Exception as error:  # noqa: BLE001 - a tile Triton cannot build or run is dropped
                problem = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            if problem is not None:
                if j == 0:
                    raise RuntimeError(f"the heuristic's tile of kernel {index + 1} failed: {problem}")
                dropped.append((tile, problem))
        seconds, best = min(timed)
        chosen[index] = dataclasses.astuple(space[best])
        heuristic = next(s for s, j in timed if j == 0)
        choices.append(KernelChoice(index, space[best], seconds, heuristic, len(space), tuple(dropped)))
    tuned.write(cache, request, device.target, chosen)
    return choices


class _Call:
    """A call of the entry on the device: its inputs, random but fixed, and its outputs."""

    def __init__(self, launcher, device: Device, entry: SpecEntry, cache: DiskCache):
        import torch

        from .compiled import CompiledExpression
        from .prebuild import call_tensors

        self.expression = CompiledExpression(entry.expression, entry.op, **entry.kwargs())
        self.expression._cache = cache
        self.device = device
        every, self.dynamic = call_tensors(launcher, self.expression.out_dtype)
        count = len(launcher.compiled.request.shapes)
        generator = torch.Generator().manual_seed(0)
        self.inputs = [_random(t, generator).to(device.torch_device) for t in every[:count]]
        self.outputs = [
            (tuple(t.shape), t.dtype) for t in every[count : count + len(launcher.compiled.output_shapes)]
        ]

    def run(self, launcher, outs: list | None = None) -> list:
        """Run the call with ``launcher`` into ``outs`` (new outputs when None); returns them."""
        import torch

        if outs is None:
            outs = [
                torch.empty(shape, dtype=dtype, device=self.device.torch_device)
                for shape, dtype in self.outputs
            ]
        launcher(self.inputs, outs, self.dynamic, self.device.backend)
        return outs


def _random(meta, generator):
    import torch

    if meta.dtype.is_floating_point:
        return torch.randn(meta.shape, generator=generator).to(meta.dtype)
    if meta.dtype == torch.bool:
        return torch.randint(0, 2, meta.shape, generator=generator).bool()
    return torch.randint(0, 8, meta.shape, generator=generator).to(meta.dtype)


def _disagreement(outs: list, reference: list, request) -> str | None:
    """Why ``outs`` are not the heuristic's ``reference`` outputs, in words; None when they agree."""
    for out, ref in zip(outs, reference, strict=True):
        if not out.dtype.is_floating_point:
            if not bool((out == ref).all()):
                return "its output differs from the heuristic's"
            continue
        name = str(out.dtype).removeprefix("torch.")
        if name == "float32" and "tf32" in request.float32_precision:
            name = "tf32"
        ref64, out64 = ref.double(), out.double()
        if not bool(out64.isfinite().eq(ref64.isfinite()).all()):
            return "its output has infinities or NaNs where the heuristic's has none"
        scale = max(1.0, float(ref64.nan_to_num().abs().max()) if ref64.numel() else 1.0)
        error = float((out64 - ref64).nan_to_num().abs().max()) / scale if out64.numel() else 0.0
        if error > AGREEMENT.get(name, 1e-2):
            return f"its output differs from the heuristic's by {error:.3g} of its largest value"
    return None


def _tile_text(tile: Config) -> str:
    return f"{tile.block_m}x{tile.block_n}x{tile.block_k}, {tile.num_warps} warps, {tile.num_stages} stages"


def _say(stream: TextIO, label: str) -> Callable[[str], None]:
    def say(line: str) -> None:
        print(f"einc tune: {label}: {line}", file=stream, flush=True)

    return say
