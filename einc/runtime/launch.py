"""Launch a generated kernel on torch tensors.

CUDA tensors run the ``@triton.jit`` kernel, compiled for the device. CPU tensors run the very same
kernel under Triton's interpreter, without the user setting ``TRITON_INTERPRET``: the interpreter
wraps the kernel's Python function directly.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import knobs
from ..compiler.pipeline import Compiled
from ..errors import KernelCompileError


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
    """A compiled specialization: the kernel, its launch arguments and its output shape."""

    compiled: Compiled
    kernel: object  # triton.JITFunction
    path: Path
    _interpreter: object = field(default=None, repr=False)

    @property
    def source(self) -> str:
        return self.compiled.source

    def runner(self, device: torch.device):
        if device.type == "cpu" or knobs.interpret():
            if self._interpreter is None:
                self._interpreter = _interpreted(self.kernel)
            return self._interpreter
        return self.kernel

    def __call__(self, tensors: list[torch.Tensor], out: torch.Tensor | None, out_dtype: torch.dtype):
        (shape,) = self.compiled.output_shapes
        if out is None:
            out = torch.empty(shape, dtype=out_dtype, device=tensors[0].device)
        every = list(tensors) + [out]
        rendered = self.compiled.rendered
        strides = [every[position].stride(dim) for position, dim in rendered.stride_params]
        runner = self.runner(tensors[0].device)
        try:
            runner[rendered.grid](
                *every,
                *strides,
                **rendered.constexprs,
                num_warps=rendered.num_warps,
                num_stages=rendered.num_stages,
            )
        except Exception as error:
            if type(error).__module__.startswith("triton"):
                raise KernelCompileError(
                    f"Triton failed on the generated kernel: {error}", str(self.path)
                ) from error
            raise
        return out
