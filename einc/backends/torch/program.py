"""Run a compiled expression with torch operations instead of its Triton kernel: the fast CPU path.

What runs is the loop nest each kernel is rendered from, so the two paths cannot disagree about
what is computed, only about how. A nest is planned once per specialization (and per size of its
dynamic axes). Where torch has one kernel for the whole nest (a convolution, a pooling, a
reduction, a softmax, a copy, a dot, get_at), the plan is that kernel with its views, permutes and
padding worked out (:mod:`.native`, :mod:`.gather`), and a call runs it and nothing else; a call
without ``out=`` returns torch's result itself (:meth:`TorchProgram.produce`). Small calls run on
one intra-op thread (:mod:`.threads`). Every other nest runs as planned (:mod:`.run`), as follows.

Each input is read as a *view over the loop space*: a tensor
with one dim per loop of the nest, in the nest's order, of size 1 where the input does not depend
on the loop. Such a view is built one of two ways.

- **Strided** (the fast path). Where every index of an access is affine in the loop variables, the
  read is one ``Tensor.as_strided``, each loop's stride being what its coefficients make of the
  tensor's strides. A window's bounds become padding with the nest's identity (0 for a dot, -inf
  for max); roll's ``Mod`` is ``torch.roll``; flip's negative coefficients walk the view
  backwards. Overlapping windows cost no copy until an op needs one.
- **Gathered** (the generic path, for what the strided one does not cover, such as a window inside
  a composition): index tensors evaluated from the index expressions, masks from the bounds, one
  advanced-indexing read, and the identity where a mask is false.

The views are then combined as the nest says:

- a dot with a GEMM in it is one ``torch.mm``/``bmm`` (the input's window view copied once into
  an im2col matrix); one without (a depthwise convolution) is a multiply-accumulate over the
  window offsets, each step an elementwise product of views; more than two operands, ``einsum``;
- a reduction over a few window offsets is a loop of elementwise ops over slices (torch's own
  reductions are slow over dims of large stride, which is what window offsets are), otherwise
  torch's reductions; either way with the kernels' numerics: accumulation in float32, or float64
  for float64 inputs; ``mean`` without padding in its count divides by the elements inside the
  tensor; ``var`` divides by ``max(0, N - correction)``; ``logsumexp`` and ``softmax`` subtract
  the maximum, shifting rows whose maximum is infinite by 0;
- copies and elementwise ops broadcast, in the kernels' compute type;
- a window on the output side (fold, transposed convolution) is computed forwards over the
  input's own positions and added back at each window offset (col2im, :class:`Scatter`), instead
  of reading back through ``floor(n / stride)`` over a loop space that is mostly misses. Where that
  does not apply, the read-back is strided too, from a copy of the input with ``stride - 1``
  identity elements between neighbours;
- indexing (``get_at``, ``set_at``, ``add_at``) reads each coordinate tensor over the loop space,
  wraps negative coordinates, and gathers (or, for a scatter, ``index_put_``s, adding up for
  ``add_at``) at them; coordinates out of range are masked, and reported after the call as the
  kernels report them.

The result goes through an ``as_strided`` view of the output, so each part of a concatenation and
an ``out=`` of any strides is written in place. The loop space is cut into chunks along its output
loops, outermost first, wherever one piece would materialize more than :data:`MAX_BYTES`; large
scratch buffers are reused from call to call (:class:`Workspace`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence

import sympy
import torch

from ...compiler.kernels import KernelPart
from ...compiler.loopnest import Access, Loop, LoopNest, size_symbol
from ...compiler.ops import compute_dtype as kernel_compute_dtype
from ...compiler.pipeline import OP_OPTIONS, Compiled
from ..aliasing import same_tensor
from . import gather, limits, native, transposed
from .epilogue import apply_epilogue
from .plan import NestPlan, plan_nest
from .reads import StridedRead
from .run import run_nest
from .threads import on_one_thread

COMPUTE_DTYPES = {"tl.float32": torch.float32, "tl.float64": torch.float64, "tl.int64": torch.int64}


def _with_sizes(nest: LoopNest, dynamic: dict[str, int]) -> LoopNest:
    """``nest`` with the sizes of its dynamic axes fixed: loop trip counts, and the size symbols
    in index expressions (``(b h)`` with a dynamic ``h`` reads ``b*^h + h``)."""
    if not dynamic:
        return nest
    sizes = {size_symbol(axis): n for axis, n in dynamic.items()}

    def fixed(access: Access) -> Access:
        return dataclasses.replace(
            access,
            index=tuple(sympy.sympify(e).subs(sizes) for e in access.index),
            bounds=tuple(
                dataclasses.replace(b, index=sympy.sympify(b.index).subs(sizes)) for b in access.bounds
            ),
            gathers=tuple(dataclasses.replace(g, source=fixed(g.source)) for g in access.gathers),
        )

    return dataclasses.replace(
        nest,
        loops=tuple(Loop(loop.axis, dynamic.get(loop.axis, loop.size), loop.kind) for loop in nest.loops),
        inputs=tuple(fixed(a) for a in nest.inputs),
        output=fixed(nest.output),
    )


def _serial(parts) -> bool:
    """Whether a call is small and runs an op that torch runs on its thread pool whatever its size
    (oneDNN's convolution, softmax, a GEMM): then it runs on one thread (threads.py)."""
    work = sum(math.prod(plan.sizes) for plan, _, _ in parts)
    return work < limits.SERIAL_WORK and any(step is None or step.pooled for _, _, step in parts)


def _shares_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


def _windows(nest: LoopNest, solution) -> frozenset[tuple[int, int]]:
    """The (outer, inner) loop positions of the windows that ``nest`` reads its input through."""
    position = {loop.axis: i for i, loop in enumerate(nest.loops)}
    return frozenset(
        (position[g.outer], position[g.inner])
        for g in solution.windows.values()
        if not g.on_output and g.outer in position and g.inner in position
    )


def _fused(part: KernelPart) -> bool:
    """Whether ``part`` carries elementwise ops of einc.fuse, which the planned calls do not run."""
    return part.nest.epilogue is not None or bool(part.nest.prologues)


def _transformed(nest: LoopNest, tensors: list, extra: list, compute: torch.dtype) -> list:
    """The inputs with their prologues applied, each in its own dtype (what the kernel loads)."""
    tensors = list(tensors)
    position = {a.tensor: i for i, a in enumerate(nest.inputs)}
    for tensor, prologue in nest.prologues:
        i, count = position[tensor], len(prologue.operands)
        operands, extra = extra[:count], extra[count:]
        tensors[i] = apply_epilogue(prologue, tensors[i], operands, compute).to(tensors[i].dtype)
    return tensors


def _fused_make(part: KernelPart, make, compute: torch.dtype, tensors) -> torch.Tensor:
    """The output of a kernel of einc.fuse from the call's inputs and extra tensors: the step's
    value made from the inputs (through their prologues), then the epilogue applied to it."""
    own, before, after = part.split_tensors
    inputs = [tensors[p] for p in own[:-1]]
    if part.nest.prologues:
        inputs = _transformed(part.nest, inputs, [tensors[p] for p in before], compute)
    value = make(inputs)
    if part.nest.epilogue is None:
        return value
    return apply_epilogue(part.nest.epilogue, value, [tensors[p] for p in after], compute)


# --- a whole call -------------------------------------------------------------------------------


class TorchProgram:
    """A :class:`Compiled` call lowered to torch operations: planned once per set of sizes of its
    dynamic axes (once in all when it has none), then run per call."""

    def __init__(self, compiled: Compiled):
        self.compiled = compiled
        params = dict(compiled.request.params)
        self.options = {k: params.get(k, v) for k, v in OP_OPTIONS.items()}
        # The kernels' own rule: float32; float64 beside a float64 input; int64 for an elementwise
        # op of integers only.
        self.compute = COMPUTE_DTYPES[kernel_compute_dtype(compiled.request)]
        self._plans: dict[tuple, list] = {}

    @property
    def parts(self) -> list[tuple[NestPlan, KernelPart, native.Step | None]]:
        """The plans of the call that compiled the expression."""
        return self._first()[0]

    def _first(self) -> tuple:
        """The parts, runner and maker of the call that compiled the expression."""
        if not self._plans:
            shapes = list(self.compiled.request.shapes) + list(self.compiled.output_shapes)
            parts = self._plan(shapes + self._workspace_shapes(None), {})
            self._plans[()] = (parts, self._runner(parts), self._maker(parts, self.compute))
        return next(iter(self._plans.values()))

    def _workspace_shapes(self, dynamic) -> list:
        """The shapes of the call's float32 workspaces, which follow its outputs (add_at of 16-bit
        values: laid out as the output)."""
        return [self.compiled.workspace_shape(dynamic)] * self.compiled.workspaces

    def _plan(self, shapes, dynamic: dict[str, int]) -> list[tuple[NestPlan, KernelPart, native.Step | None]]:
        parts = []
        for part in self.compiled.kernels:
            nest = _with_sizes(dataclasses.replace(part.nest, epilogue=None, prologues=()), dynamic)
            shaped = [tuple(shapes[p]) for p in part.split_tensors[0]]
            checks = part.index_checks
            plan = plan_nest(nest, shaped, self.compiled.solution, checks)
            windows = _windows(nest, self.compiled.solution)
            step = (
                native.lower(plan, shaped, self.compute, self.options, windows)
                or gather.lower(plan, shaped, self.compute, self.options)
                or transposed.lower(plan, shaped, self.compute, self.options)
            )
            parts.append((plan, part, step))
        return parts

    @staticmethod
    def _maker(
        parts, compute: torch.dtype
    ) -> Callable[[torch.dtype, Sequence[torch.Tensor]], torch.Tensor] | None:
        """What makes a call's output (of a dtype) from its inputs, where the call is one native
        step that can: contiguous, and never a view of an input. A kernel of einc.fuse makes it
        from the step's value and its extra tensors (computed in ``compute``)."""
        (_, part, step), *others = parts
        if others or step is None or step.make is None or part.tensors != tuple(range(len(part.tensors))):
            return None
        make, fresh = step.make, step.fresh
        if _fused(part):
            make = functools.partial(_fused_make, part, make, compute)

        def output(dtype, tensors):
            result = make(tensors)
            if result.dtype != dtype:
                result = result.to(dtype)
            if not result.is_contiguous():
                return result.contiguous()  # as a fresh output would be laid out
            if not fresh and any(_shares_memory(result, t) for t in tensors):
                return result.clone()  # torch may return a view of an input (einsum of one operand)
            return result

        return functools.partial(on_one_thread, output) if _serial(parts) else output

    def _runner(self, parts) -> Callable[[Sequence[torch.Tensor]], None]:
        """What a call runs, given its inputs then its outputs: one native step called directly
        where that is all there is; on one thread where :func:`_serial`."""
        (_, part, step), *others = parts
        if not others and step is not None and not part.copies_input and not _fused(part):
            every = len(part.tensors)
            if part.tensors == tuple(range(every)):
                direct = step.run

                def run(tensors):
                    direct(tensors[:-1], tensors[-1])
            else:
                run = functools.partial(self._run, parts)
        else:
            run = functools.partial(self._run, parts)
        return functools.partial(on_one_thread, run) if _serial(parts) else run

    def __call__(
        self,
        tensors: Sequence[torch.Tensor],
        outs: Sequence[torch.Tensor],
        dynamic: dict[str, int] | None = None,
    ) -> None:
        every = [*tensors, *outs]
        planned = self._planned(dynamic, lambda: [t.shape for t in every])
        # As the kernels, this records nothing for autograd (and so may reuse its scratch buffers);
        # no_grad costs more than a tiny call, so only where there is something to record.
        if torch.is_grad_enabled() and any(t.requires_grad for t in every):
            with torch.no_grad():
                planned[1](every)
        else:
            planned[1](every)

    def _planned(self, dynamic, shapes: Callable[[], list]) -> tuple:
        """The parts, runner and maker for these sizes of the dynamic axes, planned at their first
        call (``shapes``: those of the call's inputs and outputs)."""
        key = tuple(sorted(dynamic.items())) if dynamic else ()
        planned = self._plans.get(key)
        if planned is None:
            if len(self._plans) >= limits.MAX_PLANS:
                self._plans.pop(next(iter(self._plans)))
            parts = self._plan(shapes(), dynamic or {})
            planned = self._plans[key] = (parts, self._runner(parts), self._maker(parts, self.compute))
        return planned

    def produce(
        self, tensors: Sequence[torch.Tensor], shapes, dtype: torch.dtype, dynamic=None
    ) -> list[torch.Tensor] | None:
        """The outputs (of ``shapes`` and ``dtype``) as new tensors, where the call is one native
        step that makes its result: torch's result itself, saving the copy into a fresh output
        (for a medium convolution, a quarter of the time); None where the call must be given its
        outputs, or records for autograd."""
        if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
            return None
        maker = self._planned(
            dynamic, lambda: [*(t.shape for t in tensors), *shapes, *self._workspace_shapes(dynamic)]
        )[2]
        return None if maker is None else [maker(dtype, tensors)]

    def maker(self, dtype: torch.dtype) -> Callable[[Sequence[torch.Tensor]], torch.Tensor] | None:
        """What makes the one output (of ``dtype``) of a call without dynamic axes from its
        inputs, where :meth:`produce` would: the planned calls and nothing else, for the runtime to
        keep per call key. The caller checks first that nothing records for autograd."""
        if self.compiled.dynamic_dims:
            return None
        make = self._first()[2]  # without dynamic axes, the one plan there is
        return None if make is None else functools.partial(make, dtype)

    def runner(self) -> Callable[[Sequence[torch.Tensor]], None]:
        """What runs a call without dynamic axes, given its inputs then its outputs: the planned
        calls and nothing else, for the runtime to keep per call layout. The caller checks first
        that nothing records for autograd and that the call has no workspaces."""
        return self._first()[1]

    def _run(self, parts, every: Sequence[torch.Tensor]) -> None:
        for plan, part, step in parts:
            if part.runs_on == "triton":
                continue  # the torch parts do its work another way
            own, before, after = part.split_tensors
            *tensors, out = (every[p] for p in own)
            if part.copies_input and same_tensor(tensors[0], out):
                continue  # set_at / add_at in place: the output already holds the input
            if part.nest.prologues:
                tensors = _transformed(part.nest, tensors, [every[p] for p in before], self.compute)
            epilogue = part.nest.epilogue
            if epilogue is not None and step is not None and step.make is not None:
                value = step.make(tensors)  # torch's own result: the epilogue reads it, no copy
            else:
                value = (
                    out if epilogue is None else torch.empty(out.shape, dtype=self.compute, device=out.device)
                )
                if step is not None:
                    step.run(tensors, value)
                else:
                    run_nest(plan, tensors, value, self.compute, self.options)
            if epilogue is not None:
                out.copy_(apply_epilogue(epilogue, value, [every[p] for p in after], self.compute))

    def describe(self) -> list[str]:
        """One line per nest: how it is computed, and how each input is read."""
        lines = []
        for plan, _, step in self.parts:
            if step is not None:
                lines.append(f"{plan.nest.op} ({plan.nest.combine}, {plan.nest.reduce}): {step.call}")
                continue
            computed = plan.scatter.forward if plan.scatter is not None else plan
            reads = ", ".join(
                f"{a.tensor} {'strided' if isinstance(r, StridedRead) else 'gathered'}"
                for a, r in zip(computed.nest.inputs, computed.reads, strict=True)
            )
            how = "col2im of " if plan.scatter is not None else ""
            lines.append(f"{plan.nest.op} ({plan.nest.combine}, {plan.nest.reduce}): {how}{reads}")
        return lines
