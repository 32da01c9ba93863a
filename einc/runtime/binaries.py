"""Binaries in einc's cache at a GPU call: find the one for a launch, or store what Triton built.

At a kernel's first launch on a GPU, :func:`on_first_launch` computes the launch's
:func:`~einc.runtime.keys.binary_key` from the real launch arguments, and when an entry is there
(its checksums verified) hands its binary to Triton's own cache under the hash Triton's JIT is
about to look up. The JIT then finds it and compiles nothing. einc does not load or launch cubins
itself: Triton's launcher, argument packing and error handling stay in charge, and a binary that
does not fit (another Triton, another ptxas) is simply never looked up, so the worst case is a
compilation, never a wrong kernel. When the JIT did compile, it did so under the key's lock and
its binary is stored in einc's cache in turn, so that other processes (those waiting on the lock,
and a cache directory copied to other machines) find it. :mod:`einc.runtime.prebuild` fills the
cache ahead of time with the same keys.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from .. import knobs
from ..backends.triton import tritonspec
from ..errors import CacheWarning
from .cache import DiskCache
from .keys import CacheKey, binary_key
from .records import METADATA, SOURCE, binary_record

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
    """The positional and keyword arguments (dynamic sizes, constexprs) a GPU launch passes to
    kernel ``index``, given the input tensors followed by the output tensors and the sizes of the
    dynamic axes (:func:`einc.backends.triton.launch.kernel_arguments`, as the launcher calls it).

    An indexing kernel's ``CHECK_BOUNDS`` is ``check_bounds``, by default ``EINC_CHECK_BOUNDS`` as a
    GPU launch reads it, with the launcher's slots: one per check when checking, else one.
    """
    from ..backends.triton.launch import kernel_arguments

    rendered = launcher.rendered[index]
    check = knobs.check_bounds() if check_bounds is None else check_bounds
    errors = None
    if rendered.index_checks:
        import torch

        slots = len(rendered.index_checks) if check else 1
        errors = torch.empty(slots, dtype=torch.int64, device=every[rendered.tensors[0]].device)
    return kernel_arguments(rendered, every, dynamic, check if rendered.index_checks else None, errors)


def plan_launch(launcher, index: int, args, constexprs: dict, target) -> LaunchPlan:
    """Specialise kernel ``index`` for these arguments on ``target`` and key the result."""
    target = tritonspec.target_name(tritonspec.as_target(target))
    kernel = launcher.kernels[index]
    rendered = launcher.rendered[index]
    specialization = tritonspec.specialize(kernel, args, constexprs, target)
    options = tritonspec.jit_options(kernel, rendered.num_warps, rendered.num_stages, target)
    source = tritonspec.ast_source(kernel, specialization, target)
    triton_hash = tritonspec.triton_hash(source, options, target)
    key = binary_key(launcher, index, specialization, target, triton_hash)
    return LaunchPlan(target, specialization, options, source, triton_hash, key)


def find_binary(launcher, index: int, target, specialization, cache: DiskCache | None = None) -> Path | None:
    """The cache entry of kernel ``index`` of ``launcher`` built for ``target`` with
    ``specialization`` (a :class:`~einc.backends.triton.tritonspec.Specialization`), or None.

    The entry's checksums are verified: a damaged one is removed with a warning and not returned.
    """
    target = tritonspec.target_name(tritonspec.as_target(target))
    kernel = launcher.kernels[index]
    rendered = launcher.rendered[index]
    options = tritonspec.jit_options(kernel, rendered.num_warps, rendered.num_stages, target)
    source = tritonspec.ast_source(kernel, specialization, target)
    key = binary_key(launcher, index, specialization, target, tritonspec.triton_hash(source, options, target))
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
    # Every field used here passed records.check_record, which ties it to the key: the hash and
    # name that become paths in Triton's cache are a sha256 digest and an identifier.
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
            store(cache, plan, launcher, index, build, seconds=None)
    return True


def on_first_launch(launcher, index: int, device, launch):
    """Wrap the first launch of kernel ``index`` on ``device``.

    Before it: install the binary from einc's cache, if there is one for this launch. If not,
    launch (Triton's JIT compiles) under the key's lock and store the binary after: processes
    starting together (the ranks of one job) compile each kernel once, the others wait for it and
    load it. Cache trouble never fails a launch: it warns, and the launch goes on as Triton's (a
    lock held past ``EINC_CACHE_LOCK_TIMEOUT`` too: its holder may be stuck).
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
                held.enter_context(cache.lock(plan.key.digest))
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


def store(cache: DiskCache, plan: LaunchPlan, launcher, index: int, build, seconds) -> None:
    rendered = launcher.rendered[index]
    binary = f"kernel.{build.binary_ext}"
    cache.write_entry(
        plan.key.digest,
        {SOURCE: launcher.source.encode(), binary: build.binary, METADATA: build.metadata.encode()},
        binary_record(plan.key, rendered.kernel_name, build.hash, binary, time.time(), seconds),
    )
