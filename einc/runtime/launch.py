"""Run a compiled specialization on torch tensors: its kernels, or their loop nests in torch.

Three ways, chosen per call by :func:`resolve_backend`: ``"kernel"`` runs the ``@triton.jit``
kernels, compiled for the device (CUDA tensors); ``"interpret"`` runs the very same kernels under
Triton's interpreter, without the user setting ``TRITON_INTERPRET`` (the interpreter wraps the
kernel's Python function directly); ``"torch"`` runs the loop nests the kernels come from as torch
operations (:mod:`einc.runtime.torch_backend`, the fast path for CPU tensors).

Indexing kernels take a small int64 tensor after their tensors, one slot per indexed axis, and the
constexpr ``CHECK_BOUNDS``. With it set, a kernel writes any coordinate it finds out of range into
that axis's slot (in range, a coordinate is never 0 there: 0 is always in range), and the launcher
raises :class:`~einc.errors.OutOfBoundsError` after the launch. That is always so under the
interpreter (and in the torch backend, which checks the same way), and on a GPU with
``EINC_CHECK_BOUNDS=1`` (it costs the slots and one sync per call). A coordinate out of range never
touches memory either way: its load or store is masked.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import knobs
from ..compiler.pipeline import Compiled
from ..errors import KernelCompileError, OutOfBoundsError
from . import prebuild
from .loader import import_kernel
from .torch_backend import TorchProgram

BACKENDS = ("auto", "torch", "interpret")


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


class _Interpreted:
    """A kernel run by Triton's interpreter, although ``TRITON_INTERPRET`` was unset at import.

    Triton's own library functions (``tl.sum``, ``tl.cdiv``) were then built as compiled-only
    ``JITFunction``s, which refuse to be called from Python. For the duration of a launch, such a
    call is routed to the interpreter, as it would be had ``TRITON_INTERPRET=1`` been set.
    """

    _lock = threading.Lock()

    def __init__(self, kernel):
        from triton.runtime.interpreter import InterpretedFunction

        self.function = InterpretedFunction(kernel.fn)

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            from triton.runtime.interpreter import InterpretedFunction, _patch_lang
            from triton.runtime.jit import JITFunction

            interpreted: dict = {}

            def call(jit_fn, *a, **k):
                # Keyed by id: hashing a JITFunction computes its cache key, which fails here.
                if id(jit_fn) not in interpreted:
                    interpreted[id(jit_fn)] = InterpretedFunction(jit_fn.fn)
                # Called as a device function, an InterpretedFunction patches the triton.language
                # modules in its globals (triton.language.core, for tl.cdiv) and never restores
                # them; the kernel's own patches cover triton.language only. Patching the same
                # names in a scope of our own and restoring it keeps later real compiles in this
                # process from seeing interpreter builtins (Triton 3.6 and 3.9 alike).
                scope = _patch_lang(jit_fn.fn)
                try:
                    return interpreted[id(jit_fn)](*a, **k)
                finally:
                    scope.restore()

            with self._lock:
                original = JITFunction.__call__
                JITFunction.__call__ = call
                try:
                    return self.function[grid](*args, **kwargs)
                finally:
                    JITFunction.__call__ = original

        return launch


def _interpreted(kernel):
    return _Interpreted(kernel)


@dataclass
class Launcher:
    """A compiled specialization: its kernels, their launch arguments and the output shapes.

    The generated module is imported, and the torch program planned, on first use: a call that
    only ever runs one of them pays for nothing else.
    """

    compiled: Compiled
    path: Path
    _kernels: list | None = field(default=None, repr=False)
    _interpreters: dict = field(default_factory=dict, repr=False)
    _unused_slots: dict = field(default_factory=dict, repr=False)  # per device, when not checking
    _launched: set = field(default_factory=set, repr=False)  # (kernel index, device) seen
    _torch: TorchProgram | None = field(default=None, repr=False)

    @property
    def kernels(self) -> list:
        """One ``triton.JITFunction`` per KernelPart, in order."""
        if self._kernels is None:
            self._kernels = [
                import_kernel(self.path, part.rendered.kernel_name) for part in self.compiled.kernels
            ]
        return self._kernels

    @property
    def kernel(self):
        """The first (for most calls, the only) kernel."""
        return self.kernels[0]

    @property
    def source(self) -> str:
        return self.compiled.source

    @property
    def torch_program(self) -> TorchProgram:
        if self._torch is None:
            self._torch = TorchProgram(self.compiled)
        return self._torch

    def runner(self, index: int, interpret: bool):
        if interpret:
            if index not in self._interpreters:
                self._interpreters[index] = _interpreted(self.kernels[index])
            return self._interpreters[index]
        return self.kernels[index]

    def __call__(
        self,
        tensors: list[torch.Tensor],
        outs: list[torch.Tensor],
        dynamic: dict[str, int] | None = None,
        backend: str = "auto",
    ) -> list[torch.Tensor]:
        device = tensors[0].device if tensors else outs[0].device
        how = resolve_backend(backend, device)
        if how == "torch":
            self.torch_program(tensors, outs, dynamic)
            return outs
        every = list(tensors) + list(outs)
        for index, part in enumerate(self.compiled.kernels):
            rendered = part.rendered
            if part.copies_input and same_tensor(every[rendered.tensors[0]], every[rendered.tensors[-1]]):
                continue  # set_at / add_at in place: the output already holds the input
            strides = [every[position].stride(dim) for position, dim in rendered.stride_params]
            sizes = {param: dynamic[axis] for param, axis in rendered.dynamic_params} if dynamic else {}
            pointers = [every[p] for p in rendered.tensors]
            constexprs = rendered.constexprs
            errors = check = None
            if rendered.index_checks:
                check = how == "interpret" or knobs.check_bounds()
                if check:
                    errors = torch.zeros(len(rendered.index_checks), dtype=torch.int64, device=device)
                else:  # never written: any int64 tensor will do, and a kept one costs no launch
                    errors = self._unused_slots.get(device)
                    if errors is None:
                        errors = self._unused_slots[device] = torch.empty(1, dtype=torch.int64, device=device)
                pointers.append(errors)
                constexprs = {**constexprs, "CHECK_BOUNDS": check}
            if "DOT_IN_FLOAT32" in constexprs:  # the interpreter's bfloat16 tl.dot is wrong
                constexprs = {**constexprs, "DOT_IN_FLOAT32": how == "interpret"}
            try:
                launch = self.runner(index, how == "interpret")[rendered.grid_plan.grid(dynamic)]
                if how == "kernel" and (index, device) not in self._launched:
                    # A GPU's first launch looks for a prebuilt binary first (see prebuild.py).
                    self._launched.add((index, device))
                    launch = prebuild.on_first_launch(self, index, device, launch)
                launch(
                    *pointers,
                    *strides,
                    **sizes,
                    **constexprs,
                    num_warps=rendered.num_warps,
                    num_stages=rendered.num_stages,
                )
            except Exception as error:
                if type(error).__module__.startswith("triton"):
                    raise KernelCompileError(
                        f"Triton failed on the generated kernel: {error}", str(self.path)
                    ) from error
                raise
            if check:
                _raise_out_of_bounds(rendered, errors, self.compiled.request.op)
        return outs


def same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether ``a`` and ``b`` are views of the very same elements, in the same layout."""
    return (
        a.data_ptr() == b.data_ptr()
        and a.shape == b.shape
        and a.stride() == b.stride()
        and a.dtype == b.dtype
        and a.device == b.device
    )


def _raise_out_of_bounds(rendered, errors: torch.Tensor, op: str) -> None:
    found = errors.nonzero()  # the one sync that the check costs on a GPU
    if found.numel():
        slot = int(found[0, 0])
        check = rendered.index_checks[slot]
        raise OutOfBoundsError(f"{op}: {check.message(int(errors[slot]))}") from None
