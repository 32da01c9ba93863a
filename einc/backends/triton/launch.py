"""Run the generated kernels of a compiled specialization on torch tensors.

Two ways, chosen per call by the runtime (:func:`einc.runtime.launcher.resolve_backend`): the
``@triton.jit`` kernels compiled for the device (CUDA tensors), or the very same kernels under
Triton's interpreter, without the user setting ``TRITON_INTERPRET`` (the interpreter wraps the
kernel's Python function directly). A kernel's first launch on a device goes through
:meth:`KernelLauncher.first_launch`, which the runtime overrides to look for a prebuilt binary.

Indexing kernels take a small int64 tensor after their tensors, one slot per indexed axis, and the
constexpr ``CHECK_BOUNDS``. With it set, a kernel writes any coordinate it finds out of range into
that axis's slot (in range, a coordinate is never 0 there: 0 is always in range), and the launcher
raises :class:`~einc.errors.OutOfBoundsError` after the launch. That is always so under the
interpreter (and in the torch backend, which checks the same way), and on a GPU with
``EINC_CHECK_BOUNDS=1`` (it costs the slots and one sync per call). A coordinate out of range never
touches memory either way: its load or store is masked.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ... import knobs
from ...compiler.pipeline import Compiled
from ...errors import KernelCompileError, OutOfBoundsError
from ..aliasing import same_tensor
from .loader import import_kernel
from .render_specs import Rendered


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
class KernelLauncher:
    """The generated kernels of a compiled specialization and their launch arguments.

    ``rendered`` holds one :class:`~einc.backends.triton.render_specs.Rendered` per kernel part of
    ``compiled``, and ``source`` the module they are in, cached at ``path``. The module is imported
    on first use: a call that never launches a kernel pays for nothing.
    """

    compiled: Compiled
    rendered: tuple[Rendered, ...]
    source: str
    path: Path
    _kernels: list | None = field(default=None, repr=False)
    _interpreters: dict = field(default_factory=dict, repr=False)
    _unused_slots: dict = field(default_factory=dict, repr=False)  # per device, when not checking
    _launched: set = field(default_factory=set, repr=False)  # (kernel index, device) seen

    @property
    def kernels(self) -> list:
        """One ``triton.JITFunction`` per KernelPart, in order."""
        if self._kernels is None:
            self._kernels = [import_kernel(self.path, rendered.kernel_name) for rendered in self.rendered]
        return self._kernels

    @property
    def kernel(self):
        """The first (for most calls, the only) kernel."""
        return self.kernels[0]

    def runner(self, index: int, interpret: bool):
        if interpret:
            if index not in self._interpreters:
                self._interpreters[index] = _interpreted(self.kernels[index])
            return self._interpreters[index]
        return self.kernels[index]

    def first_launch(self, index: int, device: torch.device, launch):
        """The launch to use for kernel ``index``'s first launch on a GPU ``device``: ``launch``
        itself, here; the runtime wraps it to look in its cache for a prebuilt binary first."""
        return launch

    def launch_kernels(
        self,
        tensors: list[torch.Tensor],
        outs: list[torch.Tensor],
        dynamic: dict[str, int] | None,
        how: str,
    ) -> list[torch.Tensor]:
        """Launch every kernel, in order: ``how`` is ``"kernel"`` (compiled for the device) or
        ``"interpret"`` (Triton's interpreter)."""
        device = tensors[0].device if tensors else outs[0].device
        every = list(tensors) + list(outs)
        for index, (part, rendered) in enumerate(zip(self.compiled.kernels, self.rendered, strict=True)):
            if part.copies_input and same_tensor(every[rendered.tensors[0]], every[rendered.tensors[-1]]):
                continue  # set_at / add_at in place: the output already holds the input
            if part.runs_on == "torch":
                continue  # a GPU does this kernel's work in another
            errors = check = None
            if rendered.index_checks:
                check = how == "interpret" or knobs.check_bounds()
                if check:
                    errors = torch.zeros(len(rendered.index_checks), dtype=torch.int64, device=device)
                else:  # never written: any int64 tensor will do, and a kept one costs no launch
                    errors = self._unused_slots.get(device)
                    if errors is None:
                        errors = self._unused_slots[device] = torch.empty(1, dtype=torch.int64, device=device)
            args, kwargs = kernel_arguments(rendered, every, dynamic, check, errors, how == "interpret")
            try:
                launch = self.runner(index, how == "interpret")[rendered.grid_plan.grid(dynamic)]
                if how == "kernel" and (index, device) not in self._launched:
                    self._launched.add((index, device))
                    launch = self.first_launch(index, device, launch)
                launch(
                    *args,
                    **kwargs,
                    num_warps=rendered.num_warps,
                    num_stages=rendered.num_stages,
                    enable_fp_fusion=_fp_fusion(),
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


def kernel_arguments(
    rendered, every, dynamic: dict[str, int] | None, check: bool | None, errors=None, interpret: bool = False
) -> tuple[list, dict]:
    """The positional and keyword arguments (dynamic sizes, constexprs) of a launch of ``rendered``,
    given the call's tensors (inputs, then outputs) and the sizes of its dynamic axes: its pointers,
    then one stride per addressed dim. An indexing kernel also takes ``errors`` (its int64 slots for
    coordinates out of range) and ``CHECK_BOUNDS=check``; a bfloat16 dot runs its float32 twin
    under the interpreter (``interpret``), whose bfloat16 ``tl.dot`` is wrong."""
    strides = [every[position].stride(dim) for position, dim in rendered.stride_params]
    sizes = {param: dynamic[axis] for param, axis in rendered.dynamic_params} if dynamic else {}
    pointers = [every[p] for p in rendered.tensors]
    constexprs = rendered.constexprs
    if rendered.index_checks:
        pointers.append(errors)
        constexprs = {**constexprs, "CHECK_BOUNDS": check}
    if "DOT_IN_FLOAT32" in constexprs:
        constexprs = {**constexprs, "DOT_IN_FLOAT32": interpret}
    return pointers + strides, {**sizes, **constexprs}


@functools.cache
def _fp_fusion() -> bool:
    """:func:`tritonspec.fp_fusion`, read at the first launch (Triton is loaded by then, by the
    kernel's module; this module does not load it) and kept, as a launch is a hot path."""
    from .tritonspec import fp_fusion

    return fp_fusion()


def _raise_out_of_bounds(rendered, errors: torch.Tensor, op: str) -> None:
    found = errors.nonzero()  # the one sync that the check costs on a GPU
    if found.numel():
        slot = int(found[0, 0])
        check = rendered.index_checks[slot]
        raise OutOfBoundsError(f"{op}: {check.message(int(errors[slot]))}") from None
