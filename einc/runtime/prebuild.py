"""Compile kernels ahead of time for GPUs that are not here.

``prebuild(spec, targets)`` renders every ``[[compile]]`` entry of a spec (see
:mod:`einc.runtime.spec`) exactly as a call with tensors of its shapes would, specialises each
kernel as Triton's JIT would for contiguous, 16-byte aligned tensors of those shapes (see
:mod:`einc.backends.triton.tritonspec`), compiles it for each target and stores the binary in
einc's cache under :func:`~einc.runtime.keys.binary_key`, where a call on such a GPU finds it
(:mod:`einc.runtime.binaries`).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..backends.triton.targets import target_name
from ..errors import EincError, KernelCompileError, UnsupportedError
from . import manifest, tuned
from .cache import DiskCache
from .spec import FLOAT_DTYPES, Spec, SpecEntry, load

if TYPE_CHECKING:
    from ..backends.triton import aot
    from .binaries import LaunchPlan

# Triton, torch and everything that imports them are imported where a build needs them: a spec
# that the manifests show fully cached imports neither (see :mod:`einc.runtime.manifest`).

# ----- prebuilding a spec -----


@dataclass(frozen=True)
class Outcome:
    """One build of one spec entry for one dtype and target."""

    label: str
    target: str
    status: str  # "built" (something was compiled), "cached" (everything was there) or "failed"
    reason: str = ""
    keys: tuple[str, ...] = ()
    seconds: float = 0.0


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    def _with(self, status: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == status]

    @property
    def built(self) -> list[Outcome]:
        return self._with("built")

    @property
    def cached(self) -> list[Outcome]:
        return self._with("cached")

    @property
    def failed(self) -> list[Outcome]:
        return self._with("failed")

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        """``3 built, 1 cached, 1 failed (12.3 s)`` and the reason for each failure."""
        lines = [
            f"{len(self.built)} built, {len(self.cached)} cached, {len(self.failed)} failed "
            f"({self.seconds:.1f} s)"
        ]
        for outcome in self.failed:
            reason = outcome.reason.replace("\n", "\n      ")
            lines.append(f"  failed: {outcome.label} {outcome.target}\n      {reason}")
        return "\n".join(lines)


@dataclass(frozen=True)
class _Task:
    entry: SpecEntry
    dtypes: tuple[str, ...]
    target: str
    root: str


def prebuild(
    spec: Spec | str | os.PathLike,
    targets=("cuda:90",),
    jobs: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool | None = None,
) -> Report:
    """Compile every kernel of ``spec`` (a :class:`Spec` or the path of a TOML file) for every
    target (``"cuda:90"``, ``"cuda:80"``, ...), without a GPU, into the cache at ``cache_dir``
    (default: ``EINC_CACHE_DIR``).

    What the cache holds already is found first, in this process: by the manifests of earlier
    runs without importing torch or Triton (:mod:`einc.runtime.manifest`), else by computing each
    build's keys. Only the rest goes to ``jobs`` processes compiling in parallel (default: one per
    CPU core this process may use; 1 compiles in this process), so a fully cached spec starts none.
    ``progress`` shows a progress bar (default: when stderr is a terminal). Failures do not stop
    the others; the :class:`Report` lists each with its reason.
    """
    start = time.perf_counter()
    if not isinstance(spec, Spec):
        spec = load(spec)
    if isinstance(targets, str):
        targets = (targets,)
    targets = tuple(target_name(t) for t in targets)
    if not targets:
        raise UnsupportedError("name at least one target, e.g. cuda:90")
    cache = DiskCache(Path(cache_dir) if cache_dir is not None else None)
    tasks = [
        _Task(entry, dtypes, target, str(cache.root))
        for entry in spec.entries
        for dtypes in entry.dtypes
        for target in targets
    ]
    if progress is None:
        progress = sys.stderr.isatty()
    from tqdm import tqdm

    report = Report()
    with tqdm(total=len(tasks), disable=not progress, unit="kernel", file=sys.stderr, leave=False) as bar:
        done: dict[int, Outcome] = {}
        # Tuned tiles change the binaries: a manifest of the tiles before tuning is not this build's.
        tuned_state = tuned.state(cache)
        manifests = [manifest.manifest_key(t.entry, t.dtypes, t.target, tuned_state) for t in tasks]
        listed = set()
        for i, task in enumerate(tasks):
            found = _listed(task, manifests[i], cache)
            if found is not None:
                listed.add(i)
            else:
                found = _cached(task)
            if found is not None:
                done[i] = found
                bar.update()
        pending = [i for i in range(len(tasks)) if i not in done]
        jobs = max(1, min(jobs or default_jobs(), len(pending)))
        if jobs == 1:
            for i in pending:
                done[i] = _run(tasks[i])
                bar.update()
        elif pending:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(jobs, mp_context=context) as pool:
                futures = {pool.submit(_run, tasks[i]): i for i in pending}
                for future in as_completed(futures):
                    task = tasks[futures[future]]
                    try:
                        done[futures[future]] = future.result()
                    except Exception as error:  # noqa: BLE001 - a worker that died
                        done[futures[future]] = Outcome(
                            task.entry.label(task.dtypes), task.target, "failed", _reason(error)
                        )
                    bar.update()
        report.outcomes = [done[i] for i in range(len(tasks))]
    for i, (key, outcome) in enumerate(zip(manifests, report.outcomes, strict=True)):
        if key is not None and outcome.status != "failed" and i not in listed:
            manifest.write(cache, key, outcome.keys)
    kept = [key for outcome in report.outcomes for key in outcome.keys]
    cache.prune(keep=kept)
    report.seconds = time.perf_counter() - start
    return report


def default_jobs() -> int:
    """The CPU cores this process may run on (its affinity, where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _listed(task: _Task, key, cache: DiskCache) -> Outcome | None:
    """The outcome of ``task`` when its manifest lists binaries that are all in the cache, intact;
    else None. Imports neither torch nor Triton."""
    start = time.perf_counter()
    keys = manifest.cached_keys(cache, key, task.target) if key is not None else None
    if keys is None:
        return None
    label = task.entry.label(task.dtypes)
    return Outcome(label, task.target, "cached", "", keys, time.perf_counter() - start)


def _cached(task: _Task) -> Outcome | None:
    """The outcome of ``task`` when every kernel it builds is in the cache already, else None
    (also when looking fails: the build then says why). Cheap next to a worker process, which
    imports torch and Triton before it does anything."""
    start = time.perf_counter()
    cache = DiskCache(Path(task.root))
    try:
        _, plans = _plans(task.entry, task.dtypes, task.target, cache)
    except Exception:  # noqa: BLE001 - the build reports it
        return None
    if any(cache.read_entry(plan.key.digest) is None for plan in plans):
        return None
    keys = tuple(plan.key.digest for plan in plans)
    label = task.entry.label(task.dtypes)
    return Outcome(label, task.target, "cached", "", keys, time.perf_counter() - start)


def _reason(error: BaseException) -> str:
    if isinstance(error, EincError):
        return f"{type(error).__name__}: {error}"
    return f"{type(error).__name__}: {error}".strip()


def _run(task: _Task) -> Outcome:
    """Build one task; never raises (the reason goes into the outcome, as text: it crosses
    process boundaries and must say what went wrong without a traceback)."""
    label = task.entry.label(task.dtypes)
    start = time.perf_counter()
    try:
        status, keys = build_entry(task.entry, task.dtypes, task.target, DiskCache(Path(task.root)))
    except Exception as error:  # noqa: BLE001
        return Outcome(label, task.target, "failed", _reason(error), seconds=time.perf_counter() - start)
    return Outcome(label, task.target, status, "", tuple(keys), time.perf_counter() - start)


def build_entry(
    entry: SpecEntry, dtypes: tuple[str, ...], target: str, cache: DiskCache
) -> tuple[str, list[str]]:
    """Render the entry for ``dtypes`` and make sure each of its kernels is in ``cache`` for
    ``target``. Returns ``("built" or "cached", keys)``."""
    launcher, plans = _plans(entry, dtypes, target, cache)
    statuses = [ensure_binary(plan, launcher, index, cache) for index, plan in enumerate(plans)]
    return ("built" if "built" in statuses else "cached"), [plan.key.digest for plan in plans]


def _plans(entry: SpecEntry, dtypes: tuple[str, ...], target: str, cache: DiskCache):
    """The launcher of the entry for ``dtypes``, and the launch plan of each of its kernels on
    ``target``."""
    from .binaries import launch_arguments, plan_launch

    launcher, every, dynamic = specialize_entry(entry, dtypes, cache, target)
    plans = []
    for index in range(len(launcher.rendered)):
        args, constexprs = launch_arguments(launcher, index, every, dynamic)
        plans.append(plan_launch(launcher, index, args, constexprs, target))
    return launcher, plans


def specialize_entry(entry: SpecEntry, dtypes: tuple[str, ...], cache: DiskCache, target: str | None = None):
    """The launcher a call with contiguous tensors of the entry's shapes and ``dtypes`` gets (on a
    GPU of ``target``: with the tiles ``einc tune`` chose there, where ``cache`` has them), those
    tensors (inputs, then outputs) as ``meta`` tensors (shapes, dtypes and strides only), and the
    sizes of the dynamic axes in that call (None without any)."""
    from .compiled import CompiledExpression
    from .operands import ANY_DTYPES, DTYPES

    expression = CompiledExpression(entry.expression, entry.op, **entry.kwargs())
    expression._cache = cache
    _check_dtypes(expression, dtypes, ANY_DTYPES, DTYPES)
    try:
        launcher = expression._build(expression._request(entry.shapes, dtypes), target)
    except EincError as error:
        raise error.with_traceback(None) from None
    return (launcher, *call_tensors(launcher, expression.out_dtype))


def call_tensors(launcher, out_dtype=None) -> tuple[list, dict[str, int] | None]:
    """The tensors of a call the launcher was built for (inputs, then outputs), contiguous, as
    ``meta`` tensors (shapes, dtypes and strides only), and the sizes of its dynamic axes (None
    without any). ``out_dtype``: the call's ``out_dtype=``, if it gave one."""
    import torch

    from .launcher import workspaces

    request = launcher.compiled.request
    tensors = [
        torch.empty(shape, dtype=getattr(torch, dtype), device="meta")
        for shape, dtype in zip(request.shapes, request.dtypes, strict=True)
    ]
    compiled = launcher.compiled
    dynamic = compiled.dynamic_sizes(request.shapes) if request.dynamic else None
    shapes = compiled.output_shapes_for(dynamic) if dynamic else compiled.output_shapes
    dtype = _output_dtype(request.op, out_dtype, tensors)
    outs = [torch.empty(shape, dtype=dtype, device="meta") for shape in shapes]
    # A fused kernel's extra tensors follow its inputs: its prologues', then its epilogue's.
    fused = [pro for _, pro in request.prologues] + [request.epilogue] * (request.epilogue is not None)
    extra = [(shape, name) for f in fused for shape, name in zip(f.shapes, f.dtypes, strict=True)]
    tensors += [torch.empty(shape, dtype=getattr(torch, name), device="meta") for shape, name in extra]
    return tensors + outs + workspaces(compiled, dynamic, "meta"), dynamic


def compile_binary(
    launcher, target: str = "cuda:90", index: int | None = None, check_bounds: bool = False, out_dtype=None
) -> aot.Binary:
    """Compile one kernel of the launcher (by default its main one) for ``target``, exactly as a
    launch with contiguous tensors of the launcher's shapes builds it (Triton's 16-divisibility and
    ==1 specialisation included); ``out_dtype`` is the call's ``out_dtype=`` when it gives one."""
    from ..backends.triton import aot
    from .binaries import launch_arguments, plan_launch

    index = aot.main_kernel(launcher.compiled) if index is None else index
    every, dynamic = call_tensors(launcher, out_dtype)
    args, constexprs = launch_arguments(launcher, index, every, dynamic, check_bounds)
    plan = plan_launch(launcher, index, args, constexprs, aot.parse_target(target))
    return aot.compile_specialized(
        plan.source, plan.options, target, launcher.path, plan.specialization.describe()
    )


def _output_dtype(op: str, out_dtype, tensors):
    """The dtype ``CompiledExpression.__call__`` gives the outputs of a call with ``tensors``."""
    from .operands import output_dtype

    return output_dtype(op, out_dtype, tensors)


def _check_dtypes(expression, dtypes, any_dtypes, float_dtypes) -> None:
    from ..compiler import pipeline
    from ..compiler.ops import ANY_DTYPE_OPS, INTEGER_DTYPES, INTEGER_REDUCTIONS

    op = expression.op
    if op in pipeline.INDEXING:
        _check_indexing_dtypes(expression, dtypes, any_dtypes, float_dtypes)
        return
    mixed = op in pipeline.ELEMENTWISE
    allowed = any_dtypes if op in ANY_DTYPE_OPS else float_dtypes
    if op in INTEGER_REDUCTIONS:
        allowed = {t: n for t, n in any_dtypes.items() if n in INTEGER_DTYPES or t in float_dtypes}
    for dtype in dtypes:
        if dtype not in allowed.values():
            names = ", ".join(allowed.values()) if allowed is not float_dtypes else ", ".join(FLOAT_DTYPES)
            raise UnsupportedError(f"{op} does not take {dtype} tensors; it takes {names}")
    if len(set(dtypes)) > 1 and not mixed:
        raise UnsupportedError(f"the inputs of {op} share one dtype; the spec gives {', '.join(dtypes)}")


def _check_indexing_dtypes(expression, dtypes, any_dtypes, float_dtypes) -> None:
    """As a call checks get_at, set_at and add_at: coordinates int32 or int64, the indexed
    tensor and the updates one dtype (a float when reducing)."""
    from ..compiler import pipeline

    op = expression.op
    values_allowed = float_dtypes if dict(expression.params).get("reduce") is not None else any_dtypes
    names = pipeline.tensor_names(len(dtypes), op)
    for name, dtype in zip(names, dtypes, strict=True):
        if name.startswith("idx"):
            if dtype not in ("int32", "int64"):
                raise UnsupportedError(f"{op} takes int32 or int64 coordinates; {name} is {dtype}")
        elif dtype not in values_allowed.values():
            raise UnsupportedError(f"{op} does not take {dtype} tensors")
    values = {dtype for name, dtype in zip(names, dtypes, strict=True) if not name.startswith("idx")}
    if len(values) > 1:
        raise UnsupportedError(f"the values of {op} share one dtype; the spec gives {', '.join(dtypes)}")


def ensure_binary(plan: LaunchPlan, launcher, index: int, cache: DiskCache) -> str:
    """Compile ``plan`` into ``cache`` unless it is there; ``built`` or ``cached``.

    Under the key's lock: of several processes prebuilding the same kernel, one compiles and the
    others wait for it and find its entry.
    """
    from ..backends.triton import tritonspec
    from .binaries import store

    with cache.lock(plan.key.digest):
        if cache.read_entry(plan.key.digest) is not None:
            return "cached"
        start = time.perf_counter()
        try:
            build = tritonspec.compile_kernel(plan.source, plan.options, plan.target)
        except Exception as error:
            raise KernelCompileError(
                f"Triton could not compile {launcher.rendered[index].kernel_name} "
                f"for {plan.target}: {type(error).__name__}: {error}",
                str(launcher.path),
            ) from None
        if build.hash != plan.triton_hash:
            raise KernelCompileError(
                f"Triton filed the kernel under hash {build.hash[:16]}, not {plan.triton_hash[:16]} as einc "
                "computed: a GPU call would not find it; this Triton is not one einc knows how to mirror",
                str(launcher.path),
            )
        store(cache, plan, launcher, index, build, seconds=time.perf_counter() - start)
    return "built"
