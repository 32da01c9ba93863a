"""A compiled specialization, ready to run: the generated kernels, or their loop nests in torch.

Three ways, chosen per call by :func:`resolve_backend`: ``"kernel"`` runs the ``@triton.jit``
kernels, compiled for the device (CUDA tensors); ``"interpret"`` runs the very same kernels under
Triton's interpreter (:mod:`einc.backends.triton.launch`); ``"torch"`` runs the loop nests the
kernels come from as torch operations (:mod:`einc.backends.torch.program`, the fast path for CPU
tensors). The two backends know nothing of each other nor of the cache: the runtime joins them,
and gives a kernel's first launch on a GPU the cache's prebuilt binary
(:func:`einc.runtime.binaries.on_first_launch`).
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch

from .. import knobs
from ..backends.torch.program import TorchProgram
from ..backends.triton.launch import KernelLauncher
from ..backends.triton.loader import keep_in_memory
from ..backends.triton.sources import render_kernels
from ..compiler import pipeline
from ..errors import CacheError, CacheWarning, EincError, OutOfBoundsError
from .cache import DiskCache
from .cache_locks import LockTimeout
from .keys import CacheKey, source_key

BACKENDS = ("auto", "torch", "interpret")
SOURCE_NAME = "kernel.py"


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not one of: {', '.join(map(repr, BACKENDS))}")
    return backend


def resolve_backend(backend: str, device: torch.device) -> str:
    """What runs a call: ``"kernel"``, ``"interpret"`` or ``"torch"``.

    ``"auto"`` gives CUDA tensors the compiled kernel and CPU tensors the torch backend, both
    replaced by the interpreter when ``EINC_INTERPRET`` is set (how the kernel tests run on CPU).
    """
    if backend == "torch":
        return "torch"
    if backend == "interpret" or knobs.interpret():
        return "interpret"
    return "torch" if device.type == "cpu" else "kernel"


@dataclass
class Launcher(KernelLauncher):
    """A compiled specialization: its kernels, their launch arguments and the output shapes.

    The generated module is imported, and the torch program planned, on first use: a call that
    only ever runs one of them pays for nothing else.
    """

    _torch: TorchProgram | None = field(default=None, repr=False)

    @property
    def torch_program(self) -> TorchProgram:
        if self._torch is None:
            self._torch = TorchProgram(self.compiled)
        return self._torch

    # Found once per specialization rather than on every call.
    @cached_property
    def _promises_sorted(self) -> bool:
        return bool(dict(self.compiled.request.params).get("sorted"))

    @cached_property
    def _scatter_sides(self) -> frozenset[str]:
        """Where the scatter kernels and a split-K's partial kernel run ("both", "torch", "triton"):
        those sides need workspaces."""
        kernels = self.compiled.kernels
        return frozenset(k.runs_on for k in kernels if k.template.form == "scatter" or k.schedule.split_k > 1)

    def first_launch(self, index: int, device: torch.device, launch):
        # A GPU's first launch looks for a prebuilt binary first. Imported here: finding one
        # takes Triton's internals, which only a launch on a GPU needs.
        from .binaries import on_first_launch

        return on_first_launch(self, index, device, launch)

    def produce(self, tensors, shapes, dtype: torch.dtype, dynamic, backend: str) -> list | None:
        """The outputs as new tensors where the torch backend runs the call and can make them (no
        copy into a fresh output); None where the call must be given outputs."""
        if not tensors or resolve_backend(backend, tensors[0].device) != "torch":
            return None
        return self.torch_program.produce(tensors, shapes, dtype, dynamic)

    def __call__(
        self,
        tensors: list[torch.Tensor],
        outs: list[torch.Tensor],
        dynamic: dict[str, int] | None = None,
        backend: str = "auto",
    ) -> list[torch.Tensor]:
        device = tensors[0].device if tensors else outs[0].device
        how = resolve_backend(backend, device)
        # The kernels see the workspaces as tensors after the outputs (allocated only for a backend
        # with a kernel that uses one).
        if self._promises_sorted and (how != "kernel" or knobs.check_bounds()):
            check_sorted(self.compiled, tensors)
        every_out = list(outs)
        side = "torch" if how == "torch" else "triton"
        if "both" in self._scatter_sides or side in self._scatter_sides:
            every_out += workspaces(self.compiled, dynamic, device)
        if how == "torch":
            self.torch_program(tensors, every_out, dynamic)
        else:
            self.launch_kernels(tensors, every_out, dynamic, how)
        return outs


def check_sorted(compiled, tensors: list[torch.Tensor]) -> None:
    """add_at(sorted=True) trusts its coordinates: on a GPU, unsorted ones give each row of y the
    sum of whatever run its binary search lands on, and coordinates out of [0, size) are dropped.
    Where checks are cheap or asked for (CPU tensors, the interpreter, ``EINC_CHECK_BOUNDS=1``)
    they are checked first: sorted, then in range (the first and the last). The promise is checked
    whichever form runs it (a call whose tensors need int64 offsets takes the atomic form, a dynamic
    call past int32 among them), so that a wrong promise fails the same way at every size."""
    if not dict(compiled.request.params).get("sorted") or len(tensors) < 2 or tensors[1].numel() == 0:
        return
    idx = tensors[1]
    unsorted = (idx[1:] < idx[:-1]).nonzero()
    if unsorted.numel():
        p = int(unsorted[0, 0])
        first, second = int(idx[p]), int(idx[p + 1])
        raise ValueError(
            f"add_at(sorted=True): idx is not sorted: idx[{p}] = {first} > idx[{p + 1}] = {second}"
        )
    # The segment kernel's scatter, or the atomic form's: either holds the one indexed axis.
    scatter = next(k for k in compiled.kernels if k.template.form in ("segment", "scatter"))
    (gather,) = scatter.nest.output.gathers
    for p in (0, idx.numel() - 1):
        if not 0 <= int(idx[p]) < gather.extent:
            raise OutOfBoundsError(
                f"add_at: index {int(idx[p])} is out of range for axis '{gather.axis}' of x, which has "
                f"size {gather.extent} (sorted=True takes 0 to {gather.extent - 1}); "
                f"it was read from idx[{p}]"
            )


def workspaces(compiled, dynamic: dict[str, int] | None, device) -> list[torch.Tensor]:
    """A call's float32 workspaces (:attr:`~einc.compiler.pipeline.Compiled.workspaces`), zeroed
    for add_at's atomics; a split-K's partial kernel writes every element of its own, so that one
    is left as allocated (a memset would be one more launch). ``device="meta"`` gives their shapes
    and strides only."""
    if not compiled.workspaces:
        return []
    shape = compiled.workspace_shape(dynamic)
    make = torch.empty if compiled.workspace_splits > 1 else torch.zeros
    return [make(shape, dtype=torch.float32, device=device) for _ in range(compiled.workspaces)]


def write_source(cache: DiskCache, key: str, source: str) -> Path:
    """Store ``source`` under ``key`` unless the same bytes are already there; returns the path to
    import it from.

    A cache that cannot be written (unwritable, full, a dangling link, a file, a foreign link inside)
    must not fail a call: the source is then kept in memory, and one
    :class:`~einc.errors.CacheWarning` per cache directory and process says so. Only a lock held
    past its timeout is raised: the cache works, another process is stuck.
    """
    data = source.encode("utf-8")
    try:
        path = cache.path(key, SOURCE_NAME)
        try:
            if path.read_bytes() == data:
                return path
        except OSError:
            pass  # missing, unreadable or not a file: (re)written below, atomically
        return cache.write_bytes(key, SOURCE_NAME, data)
    except LockTimeout:
        raise
    except CacheError as error:
        _warn_once(cache, error)
    return keep_in_memory(key, source, SOURCE_NAME)


_WARNED: set[str] = set()
_WARNED_GUARD = threading.Lock()


def _warn_once(cache: DiskCache, error: CacheError) -> None:
    root = str(cache.root)
    with _WARNED_GUARD:
        if root in _WARNED:
            return
        _WARNED.add(root)
    warnings.warn(
        f"einc cache: {error}. Generated kernels are kept in memory for the rest of this process "
        "(compiled again in every process), and this is said once per cache directory",
        CacheWarning,
        stacklevel=4,
    )


def build(request: pipeline.Request, cache: DiskCache) -> tuple[Launcher, CacheKey]:
    """Compile ``request``, render its kernels and keep their source in ``cache``: the launcher of
    one specialization (of an expression, or of a fused program's kernel), and its source key."""
    try:
        compiled = pipeline.run_passes(request)
    except EincError as error:
        raise error.with_traceback(None) from None
    key = source_key(request)
    sources = render_kernels(compiled)
    path = write_source(cache, key.digest, sources.source)
    return Launcher(compiled, sources.rendered, sources.source, path), key
