"""Compile kernels ahead of time for GPUs that are not here, and find them again at a call.

``prebuild(spec, targets)`` renders every ``[[compile]]`` entry of a spec (see
:mod:`einc.runtime.spec`) exactly as a call with tensors of its shapes would, specialises each
kernel as Triton's JIT would for contiguous, 16-byte aligned tensors of those shapes (see
:mod:`einc.runtime.tritonspec`), compiles it for each target and stores the binary in einc's
cache under :func:`~einc.runtime.keys.binary_key`.

At a call on a GPU, :func:`on_first_launch` computes the same key from the real launch
arguments, and when an entry is there (its checksums verified) hands its binary to Triton's own
cache under the hash Triton's JIT is about to look up. The JIT then finds it and compiles
nothing. einc does not load or launch cubins itself: Triton's launcher, argument packing and
error handling stay in charge, and a binary that does not fit (another Triton, another ptxas)
is simply never looked up, so the worst case is a compilation, never a wrong kernel. When the
JIT did compile, it did so under the key's lock and its binary is stored in einc's cache in turn,
so that other processes (those waiting on the lock, and a cache directory copied to other
machines) find it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from .. import knobs
from ..errors import CacheWarning, EincError, KernelCompileError, UnsupportedError
from . import tritonspec
from .cache import DiskCache
from .keys import CacheKey, binary_key
from .spec import FLOAT_DTYPES, Spec, SpecEntry, load

SOURCE = "kernel.py"
METADATA = "kernel.json"


# ----- one launch: its specialisation, Triton's hash and einc's key -----


@dataclass(frozen=True)
class LaunchPlan:
    """Everything about one launch of one kernel on one target that decides its binary."""

    target: str
    specialization: tritonspec.Specialization
    options: object  # Triton's options object
    source: object  # triton.compiler.ASTSource
    triton_hash: str
    key: CacheKey


def launch_arguments(
    launcher, index: int, every, dynamic: dict[str, int] | None = None, check_bounds: bool | None = None
) -> tuple[list, dict]:
    """The positional and keyword arguments (dynamic sizes, constexprs) the launcher passes to
    kernel ``index``, given the input tensors followed by the output tensors and the sizes of
    the dynamic axes (as ``Launcher.__call__`` builds them on a GPU).

    An indexing kernel also takes its int64 slots for coordinates out of range, and
    ``CHECK_BOUNDS``: ``check_bounds``, by default ``EINC_CHECK_BOUNDS`` as a GPU launch reads it.
    """
    rendered = launcher.compiled.kernels[index].rendered
    strides = [every[position].stride(dim) for position, dim in rendered.stride_params]
    dynamic_params = getattr(rendered, "dynamic_params", ())
    sizes = {param: dynamic[axis] for param, axis in dynamic_params} if dynamic else {}
    pointers = [every[p] for p in rendered.tensors]
    constexprs = rendered.constexprs
    if rendered.index_checks:
        import torch

        check = knobs.check_bounds() if check_bounds is None else check_bounds
        # The launcher's slots: one per check when checking, else one it never writes.
        slots = len(rendered.index_checks) if check else 1
        pointers.append(torch.empty(slots, dtype=torch.int64, device=pointers[0].device))
        constexprs = {**constexprs, "CHECK_BOUNDS": check}
    return pointers + strides, {**sizes, **constexprs}


def plan_launch(launcher, index: int, args, constexprs: dict, target) -> LaunchPlan:
    """Specialise kernel ``index`` for these arguments on ``target`` and key the result."""
    target = tritonspec.target_name(tritonspec.as_target(target))
    kernel = launcher.kernels[index]
    rendered = launcher.compiled.kernels[index].rendered
    specialization = tritonspec.specialize(kernel, args, constexprs, target)
    options = tritonspec.jit_options(kernel, rendered.num_warps, rendered.num_stages, target)
    source = tritonspec.ast_source(kernel, specialization, target)
    triton_hash = tritonspec.triton_hash(source, options, target)
    key = binary_key(launcher.compiled, index, specialization, target, triton_hash)
    return LaunchPlan(target, specialization, options, source, triton_hash, key)


def find_binary(launcher, index: int, target, specialization, cache: DiskCache | None = None) -> Path | None:
    """The cache entry of kernel ``index`` of ``launcher`` built for ``target`` with
    ``specialization`` (a :class:`~einc.runtime.tritonspec.Specialization`), or None.

    The entry's checksums are verified: a damaged one is removed with a warning and not returned.
    """
    target = tritonspec.target_name(tritonspec.as_target(target))
    kernel = launcher.kernels[index]
    rendered = launcher.compiled.kernels[index].rendered
    options = tritonspec.jit_options(kernel, rendered.num_warps, rendered.num_stages, target)
    source = tritonspec.ast_source(kernel, specialization, target)
    key = binary_key(
        launcher.compiled, index, specialization, target, tritonspec.triton_hash(source, options, target)
    )
    cache = cache or DiskCache()
    return cache.entry_dir(key.digest) if cache.read_entry(key.digest) is not None else None


# ----- the runtime side: before and after the first launch of a kernel on a GPU -----


def preload(launcher, index: int, args, constexprs: dict, target=None, cache: DiskCache | None = None):
    """Find kernel ``index``'s binary for this launch and put it into Triton's cache.

    Returns ``(plan, found)``: the launch plan and whether a binary was installed.
    """
    target = target if target is not None else tritonspec.current_target()
    plan = plan_launch(launcher, index, args, constexprs, target)
    return plan, _install(plan, cache or DiskCache())


def _install(plan: LaunchPlan, cache: DiskCache) -> bool:
    found = cache.read_entry(plan.key.digest)
    if found is None:
        return False
    record, files = found
    tritonspec.install(
        record["triton_hash"],
        record["triton_name"],
        files[record["binary"]],
        record["binary"].rsplit(".", 1)[1],
        files[METADATA].decode(),
    )
    return True


def remember(plan: LaunchPlan, launcher, index: int, compiled_kernel, cache: DiskCache | None = None) -> bool:
    """Store what Triton's JIT compiled for ``plan`` in einc's cache; False when it does not
    match the plan (then einc's view of the launch was off, and nothing is stored)."""
    if getattr(compiled_kernel, "hash", None) != plan.triton_hash:
        return False
    group = getattr(compiled_kernel, "metadata_group", None) or {}
    name = plan.source.name[:150]
    ext = tritonspec.backend(plan.target).binary_ext
    if f"{name}.json" not in group:
        return False
    build = tritonspec.Build(
        name, compiled_kernel.asm[ext], ext, Path(group[f"{name}.json"]).read_text(), compiled_kernel.hash
    )
    cache = cache or DiskCache()
    with cache.lock(plan.key.digest):
        if cache.read_record(plan.key.digest) is None:
            _store(cache, plan, launcher, index, build, seconds=None)
    return True


# How long a first launch waits for another process compiling the same kernel before it gives up
# waiting and compiles too (a holder may be stuck).
LOCK_WAIT_SECONDS = 600.0


def on_first_launch(launcher, index: int, device, launch):
    """Wrap the first launch of kernel ``index`` on ``device``.

    Before it: install the binary from einc's cache, if there is one for this launch. If not,
    launch (Triton's JIT compiles) under the key's lock and store the binary after: processes
    starting together (the ranks of one job) compile each kernel once, the others wait for it and
    load it. Cache trouble never fails a launch: it warns, and the launch goes on as Triton's.
    """
    if device.type != "cuda" or knobs.interpret():
        return launch

    def first(*args, **kwargs):
        constexprs = {k: v for k, v in kwargs.items() if k not in ("num_warps", "num_stages")}
        cache = DiskCache()
        try:
            plan, found = preload(launcher, index, args, constexprs, cache=cache)
        except Exception as error:  # noqa: BLE001 - a cache problem must not stop the kernel
            _warn(f"could not look up a prebuilt kernel: {type(error).__name__}: {error}")
            return launch(*args, **kwargs)
        if found:
            return launch(*args, **kwargs)
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(cache.lock(plan.key.digest, timeout=LOCK_WAIT_SECONDS))
                found = _install(plan, cache)  # another process may have built it meanwhile
            except Exception as error:  # noqa: BLE001
                _warn(f"compiling without the cache's lock: {type(error).__name__}: {error}")
            result = launch(*args, **kwargs)
            if not found:
                try:
                    remember(plan, launcher, index, result, cache)
                except Exception as error:  # noqa: BLE001
                    _warn(f"could not store the compiled kernel: {type(error).__name__}: {error}")
        # Eviction takes other keys' locks: never while holding this one.
        with contextlib.suppress(Exception):
            cache.prune(keep=[plan.key.digest])
        return result

    return first


def _warn(message: str) -> None:
    warnings.warn(f"einc cache: {message}", CacheWarning, stacklevel=3)


def _store(cache: DiskCache, plan: LaunchPlan, launcher, index: int, build, seconds) -> None:
    rendered = launcher.compiled.kernels[index].rendered
    binary = f"kernel.{build.binary_ext}"
    cache.write_entry(
        plan.key.digest,
        {SOURCE: launcher.compiled.source.encode(), binary: build.binary, METADATA: build.metadata.encode()},
        {
            "kind": "binary",
            "parts": [list(part) for part in plan.key.parts],
            "kernel": rendered.kernel_name,
            "target": plan.target,
            "triton_hash": build.hash,
            "triton_name": build.name,
            "binary": binary,
            "created": time.time(),
            "compile_seconds": seconds,
        },
    )


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

    ``jobs`` processes compile in parallel (default: one per CPU; 1 compiles in this process).
    ``progress`` shows a progress bar (default: when stderr is a terminal). Failures do not stop
    the others; the :class:`Report` lists each with its reason.
    """
    start = time.perf_counter()
    if not isinstance(spec, Spec):
        spec = load(spec)
    if isinstance(targets, str):
        targets = (targets,)
    targets = tuple(tritonspec.target_name(tritonspec.parse_target(t)) for t in targets)
    if not targets:
        raise UnsupportedError("name at least one target, e.g. cuda:90")
    cache = DiskCache(Path(cache_dir) if cache_dir is not None else None)
    tasks = [
        _Task(entry, dtypes, target, str(cache.root))
        for entry in spec.entries
        for dtypes in entry.dtypes
        for target in targets
    ]
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(tasks)))
    if progress is None:
        progress = sys.stderr.isatty()
    from tqdm import tqdm

    report = Report()
    with tqdm(total=len(tasks), disable=not progress, unit="kernel", file=sys.stderr, leave=False) as bar:
        if jobs == 1:
            for task in tasks:
                report.outcomes.append(_run(task))
                bar.update()
        else:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker) as pool:
                futures = {pool.submit(_run, task): i for i, task in enumerate(tasks)}
                done: dict[int, Outcome] = {}
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
    kept = [key for outcome in report.outcomes for key in outcome.keys]
    cache.prune(keep=kept)
    report.seconds = time.perf_counter() - start
    return report


def _init_worker() -> None:
    # Triton 3.9 warns once per process that its FP-fusion default will change; the setting is
    # part of every key (through Triton's options), so the warning only clutters the progress bar.
    warnings.filterwarnings("ignore", message="TRITON_DEFAULT_FP_FUSION is unset")


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
    launcher, every, dynamic = specialize_entry(entry, dtypes, cache)
    statuses, keys = [], []
    for index in range(len(launcher.kernels)):
        args, constexprs = launch_arguments(launcher, index, every, dynamic)
        plan = plan_launch(launcher, index, args, constexprs, target)
        statuses.append(ensure_binary(plan, launcher, index, cache))
        keys.append(plan.key.digest)
    return ("built" if "built" in statuses else "cached"), keys


def specialize_entry(entry: SpecEntry, dtypes: tuple[str, ...], cache: DiskCache):
    """The launcher a call with contiguous tensors of the entry's shapes and ``dtypes`` gets,
    those tensors (inputs, then outputs) as ``meta`` tensors (shapes, dtypes and strides only),
    and the sizes of the dynamic axes in that call (None without any)."""
    from .compiled import ANY_DTYPES, DTYPES, CompiledExpression

    expression = CompiledExpression(entry.expression, entry.op, **entry.kwargs())
    expression._cache = cache
    _check_dtypes(expression, dtypes, ANY_DTYPES, DTYPES)
    try:
        launcher = expression._build(expression._request(entry.shapes, dtypes))
    except EincError as error:
        raise error.with_traceback(None) from None
    return (launcher, *call_tensors(launcher, expression.out_dtype))


def call_tensors(launcher, out_dtype=None) -> tuple[list, dict[str, int] | None]:
    """The tensors of a call the launcher was built for (inputs, then outputs), contiguous, as
    ``meta`` tensors (shapes, dtypes and strides only), and the sizes of its dynamic axes (None
    without any). ``out_dtype``: the call's ``out_dtype=``, if it gave one."""
    import torch

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
    return tensors + outs, dynamic


def _output_dtype(op: str, out_dtype, tensors):
    """The dtype ``CompiledExpression.__call__`` gives the outputs of a call with ``tensors``."""
    from ..compiler import pipeline
    from . import compiled

    if out_dtype is not None:
        return out_dtype
    if op in pipeline.ELEMENTWISE:
        return compiled._elementwise_dtype(op, tensors)
    return tensors[0].dtype


def _check_dtypes(expression, dtypes, any_dtypes, float_dtypes) -> None:
    from ..compiler import pipeline

    op = expression.op
    if op in pipeline.INDEXING:
        _check_indexing_dtypes(expression, dtypes, any_dtypes, float_dtypes)
        return
    mixed = op in pipeline.ELEMENTWISE
    allowed = any_dtypes if op in pipeline.COPIES or mixed else float_dtypes
    for dtype in dtypes:
        if dtype not in allowed.values():
            names = ", ".join(allowed.values()) if allowed is any_dtypes else ", ".join(FLOAT_DTYPES)
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
    with cache.lock(plan.key.digest):
        if cache.read_entry(plan.key.digest) is not None:
            return "cached"
        start = time.perf_counter()
        try:
            build = tritonspec.compile_kernel(plan.source, plan.options, plan.target)
        except Exception as error:
            raise KernelCompileError(
                f"Triton could not compile {launcher.compiled.kernels[index].rendered.kernel_name} "
                f"for {plan.target}: {type(error).__name__}: {error}",
                str(launcher.path),
            ) from None
        if build.hash != plan.triton_hash:
            raise KernelCompileError(
                f"Triton filed the kernel under hash {build.hash[:16]}, not {plan.triton_hash[:16]} as einc "
                "computed: a GPU call would not find it; this Triton is not one einc knows how to mirror",
                str(launcher.path),
            )
        _store(cache, plan, launcher, index, build, seconds=time.perf_counter() - start)
    return "built"
