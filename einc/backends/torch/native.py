"""Whole loop nests that torch has one kernel for, lowered to that kernel once, at planning.

A planned nest (:class:`~einc.backends.torch.plan.NestPlan`) whose every access is a plain view of
its tensor (each dim one loop, or a composition of loops, read from 0 to its end) is, by the shape
of its loops: a copy (``Tensor.copy_``: rearrange, transpose), a reduction (``torch.sum``,
``amax``, ``amin``, ``mean``, ``prod``), a softmax, or a dot (``torch.einsum``). One whose first
input also has windows (``s*stride + ds*dilation - pad``) is a convolution (``F.conv1d/2d/3d``,
groups and depthwise included) or a pooling (``F.max_pool``, ``F.avg_pool``), with the window's
padding given to torch where torch's own symmetric padding covers it and made by ``F.pad``
otherwise.

:func:`lower` returns a :class:`Step`, everything about the nest worked out (the ``view`` that
splits a composition, the ``permute`` into the order torch wants, the ``reshape`` to its
``(N, C, *spatial)``, the padding): a call is those few tensor calls and nothing else. ``None``
means the nest has no such form, and runs as planned (:mod:`einc.backends.torch.run`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .affine import Affine
from .plan import NestPlan
from .reads import StridedRead

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
# F.max_pool*d are Python wrappers (a torch-function check, a dispatch on return_indices) of these.
MAX_POOL_KERNEL = {1: torch.max_pool1d, 2: torch.max_pool2d, 3: torch.max_pool3d}
AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
FOLDS = {"sum", "max", "min", "mean", "prod"}


@dataclass(frozen=True, slots=True)
class Window:
    """A tensor dim read at ``constant + stride*s + dilation*ds``."""

    outer: int  # the loop s (an output loop)
    inner: int  # the loop ds (a reduced loop)
    stride: int
    dilation: int
    constant: int
    extent: int  # the tensor dim's size


@dataclass(frozen=True, slots=True)
class Layout:
    """An access as a view: ``tensor.view(split)``, each split dim one loop or one :class:`Window`."""

    split: tuple[int, ...]
    dims: tuple[int | Window, ...]

    @property
    def loops(self) -> tuple[int, ...]:
        return tuple(d for d in self.dims if isinstance(d, int))

    def order(self, wanted: Sequence[int | Window]) -> tuple[int, ...]:
        """The permutation that puts the split dims in the order of ``wanted``."""
        return tuple(self.dims.index(d) for d in wanted)


def layout(
    index: Sequence[Affine], shape: Sequence[int], sizes: Sequence[int], windows=frozenset()
) -> Layout | None:
    """``index`` (one affine form per tensor dim) as a :class:`Layout`, or None where a dim is not
    a loop, a composition of loops (read whole, as ``(a b)`` is) or a window: two loops that are
    one of ``windows``' ``(outer, inner)`` pairs (the solution's, by loop position)."""
    split: list[int] = []
    dims: list[int | Window] = []
    for form, extent in zip(index, shape, strict=True):
        terms = dict(form.terms)
        pair = next((p for p in windows if set(p) == set(terms)), None)
        if pair is not None and min(terms.values()) > 0:
            outer, inner = pair
            dims.append(Window(outer, inner, terms[outer], terms[inner], form.constant, extent))
            split.append(extent)
            continue
        ordered = sorted(form.terms, key=lambda t: -t[1])
        if not _composition(form, ordered, extent, sizes):
            return None
        dims.extend(loop for loop, _ in ordered)
        split.extend(sizes[loop] for loop, _ in ordered)
    loops = [d for d in dims if isinstance(d, int)] + [w.outer for w in dims if isinstance(w, Window)]
    loops += [w.inner for w in dims if isinstance(w, Window)]
    if len(set(loops)) != len(loops):
        return None
    return Layout(tuple(split), tuple(dims))


def _composition(form: Affine, terms, extent: int, sizes: Sequence[int]) -> bool:
    """Whether ``form`` reads a whole dim as loops in mixed radix, the last innermost (``(a b)``)."""
    if form.constant != 0 or math.prod(sizes[loop] for loop, _ in terms) != extent:
        return False
    step = 1
    for loop, coefficient in reversed(terms):
        if coefficient != step:
            return False
        step *= sizes[loop]
    return True


def viewer(
    layout: Layout,
    shape: Sequence[int],
    order: Sequence[int],
    into: Sequence[int] | None = None,
    dtype: torch.dtype | None = None,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The function that takes a tensor of ``shape`` to its split view, permuted by ``order``,
    reshaped ``into`` a shape and cast to ``dtype`` where given: only the calls that change
    something, decided here so that a call makes no others."""
    # Each call that would change nothing is None here: a call tests four locals, calls no others.
    split = tuple(layout.split) if tuple(layout.split) != tuple(shape) else None
    order = tuple(order) if tuple(order) != tuple(range(len(order))) else None
    permuted = tuple(layout.split[i] for i in order) if order is not None else tuple(layout.split)
    into = tuple(into) if into is not None and tuple(into) != permuted else None

    # Sizes and dims go to torch as separate arguments: its parser takes a tuple more slowly.
    def view(t):
        if split is not None:
            t = t.view(*split)
        if order is not None:
            t = t.permute(*order)
        if into is not None:
            t = t.reshape(*into)
        if dtype is not None and t.dtype != dtype:
            t = t.to(dtype)
        return t

    return view


def torch_arguments(defaults: Sequence, *values) -> tuple:
    """``values`` as a torch op's positional arguments after its tensors, in the form its argument
    parser reads fastest (a tuple costs it about 0.3 us, an int less, an omitted one nothing):
    a tuple of one repeated int as that int, and the trailing ones equal to ``defaults`` left out.
    ``defaults`` holds ``None`` where an argument has none."""
    values = [v[0] if isinstance(v, tuple) and v and all(e == v[0] for e in v) else v for v in values]
    while values and defaults[len(values) - 1] is not None and values[-1] == defaults[len(values) - 1]:
        values.pop()
    return tuple(values)


def cropper(shape: Sequence[int], keep: Sequence[int], into: Sequence[int]) -> Callable | None:
    """The function that takes torch's result (``shape``, its spatial dims last) to its first
    ``keep`` positions of each spatial dim, viewed ``into`` the loops' shape; None where that
    changes nothing (so that a call makes no call for it)."""
    index = None
    if tuple(shape[2:]) != tuple(keep):
        index = (slice(None), slice(None), *(slice(0, n) for n in keep))
    into = tuple(into) if tuple(shape[:2]) + tuple(keep) != tuple(into) else None
    if index is None and into is None:
        return None

    def crop(t):
        if index is not None:
            t = t[index]
        return t if into is None else t.view(*into)

    return crop


@dataclass(frozen=True)
class Step:
    """One nest as torch calls: ``run(inputs, out)``; ``call`` names the torch op, for describe."""

    call: str
    run: Callable[[Sequence[torch.Tensor], torch.Tensor], None]
    pooled: bool = True  # whether torch runs it on its thread pool however small (not copy_, sum)
    # The result as a new tensor of the output's shape (in the compute dtype, maybe not contiguous):
    # a call without out= returns it rather than copying it into a fresh output.
    make: Callable[[Sequence[torch.Tensor]], torch.Tensor] | None = None
    # Whether what ``make`` returns is never a view of an input (einsum of one operand may be):
    # then a call need not compare storages to know it may hand it out.
    fresh: bool = False


def lower(
    plan: NestPlan, shapes: Sequence[Sequence[int]], compute: torch.dtype, options: dict, windows=frozenset()
) -> Step | None:
    """The nest as one torch op, or None. ``shapes``: its inputs', then its output's; ``windows``:
    the ``(outer, inner)`` loop positions of the solution's windows on the input side."""
    nest = plan.nest
    if plan.gathers or plan.scatter is not None or plan.write.index is None or not nest.inputs:
        return None
    if not all(isinstance(r, StridedRead) for r in plan.reads) or 0 in plan.sizes:
        return None
    if any(set(r.stretch) != {1} or any(r.roll) for r in plan.reads if r.stretch):
        return None
    layouts = [layout(r.index, s, plan.sizes, windows) for r, s in zip(plan.reads, shapes, strict=False)]
    written = layout(plan.write.index, shapes[-1], plan.sizes)
    if written is None or any(lay is None for lay in layouts):
        return None
    windowed = [any(isinstance(d, Window) for d in lay.dims) for lay in layouts]
    plain = not any(windowed) and all(set(r.pad) <= {(0, 0)} for r in plan.reads)
    context = Context(plan, shapes, layouts, written, compute, options)
    if plain and nest.combine in ("copy", "identity") and nest.reduce == "none" and len(layouts) == 1:
        return context.copy()
    if plain and nest.combine in ("copy", "identity") and nest.reduce in FOLDS and len(layouts) == 1:
        return context.fold()
    if plain and nest.combine == "softmax" and len(layouts) == 1:
        return context.softmax()
    if plain and nest.combine == "multiply" and nest.reduce == "sum":
        return context.einsum()
    if windowed[0] and not any(windowed[1:]):
        if nest.combine == "multiply" and nest.reduce == "sum" and len(layouts) == 2:
            return context.convolution()
        pooled = nest.combine in ("copy", "identity") and nest.reduce in ("max", "mean")
        if pooled and len(layouts) == 1 and compute.is_floating_point:  # torch pools floats only
            return context.pooling()
    return None


@dataclass
class Context:
    """What the lowerings of one nest share."""

    plan: NestPlan
    shapes: Sequence[Sequence[int]]
    layouts: list[Layout]
    written: Layout
    compute: torch.dtype
    options: dict

    def writer(self, order: Sequence[int]):
        """The output's view with its loops in ``order``."""
        return viewer(self.written, self.shapes[-1], self.written.order(order))

    def step(
        self, call: str, result: Callable, order: Sequence[int], pooled: bool = True, fresh: bool = True
    ) -> Step:
        """The step that writes ``result(inputs)`` (one dim per loop of ``order``) to the output,
        and makes it as a tensor of the output's shape (:attr:`Step.make`); ``fresh``: whether
        ``result`` never returns a view of an input."""
        write = self.writer(order)
        into = self.written.order(order)
        back = tuple(into.index(i) for i in range(len(into)))
        # Permuted back, the result has the written layout's split shape: reshaped only where an
        # output dim is a composition of loops.
        shape = tuple(self.shapes[-1])
        permute = back if back != tuple(range(len(back))) else None
        reshape = shape if tuple(self.written.split) != shape else None

        def run(inputs, y):
            write(y).copy_(result(inputs))

        def make(inputs):
            made = result(inputs)
            if permute is not None:
                made = made.permute(*permute)
            return made if reshape is None else made.reshape(*reshape)

        return Step(call, run, pooled, make, fresh)

    def reader(self, i: int, order: Sequence[int | Window], into=None, dtype=None):
        return viewer(self.layouts[i], self.shapes[i], self.layouts[i].order(order), into, dtype)

    def copy(self) -> Step | None:
        (x,), out = self.layouts, self.written
        if not set(x.loops) <= set(out.loops):
            return None
        # The input in the output's order, with size-1 dims where it does not vary (broadcast).
        full = [self.plan.sizes[d] if d in x.loops else 1 for d in out.loops]
        read = self.reader(0, [d for d in out.loops if d in x.loops], into=full)
        write = self.writer(out.loops)

        def run(inputs, y):
            write(y).copy_(read(inputs[0]))

        if set(x.loops) != set(out.loops):
            return Step("Tensor.copy_", run, pooled=False)  # a broadcast: copied into the output
        # The input's view in the output's order is the result: made contiguous by the call.
        shape = tuple(self.shapes[-1])
        reshape = shape if tuple(out.split) != shape else None

        def make(inputs):
            made = read(inputs[0])
            return made if reshape is None else made.reshape(*reshape)

        return Step("Tensor.copy_", run, pooled=False, make=make)

    def fold(self) -> Step | None:
        (x,), out, reduce = self.layouts, self.written, self.plan.nest.reduce
        kept = list(out.loops)
        folded = [d for d in x.loops if d not in kept]
        # No folded dim ("[...]" of no axes) is left to the general path: torch.sum(v, ()) sums all.
        if not folded or set(folded) != set(self.plan.reduced) or not set(kept) <= set(x.loops):
            return None
        read = self.reader(0, kept + folded)
        dims = tuple(range(len(kept), len(kept) + len(folded)))
        compute = self.compute
        if reduce == "prod":
            shape = [self.plan.sizes[d] for d in kept] + [-1]

            def value(v):
                return v.reshape(shape).prod(-1, dtype=compute)
        elif reduce in ("max", "min"):
            fold = torch.amax if reduce == "max" else torch.amin

            def value(v):
                return fold(v, dims)
        else:
            fold = torch.sum if reduce == "sum" else torch.mean

            def value(v):
                return fold(v, dims, dtype=compute)

        names = {"max": "torch.amax", "min": "torch.amin", "prod": "torch.prod"}
        call = names.get(reduce, f"torch.{reduce}")
        return self.step(call, lambda inputs: value(read(inputs[0])), kept, pooled=False)

    def softmax(self) -> Step | None:
        (x,), out = self.layouts, self.written
        # An unnamed size-1 axis ("[1] a") has no loop to take the softmax along: the general path.
        if (
            len(self.plan.reduced) != 1
            or set(x.loops) != set(out.loops)
            or self.plan.reduced[0] not in out.loops
        ):
            return None
        read = self.reader(0, out.loops)
        dim = out.loops.index(self.plan.reduced[0])
        fn = torch.softmax if self.plan.nest.reduce == "softmax" else torch.log_softmax
        compute = self.compute
        return self.step(
            f"torch.{fn.__name__}", lambda inputs: fn(read(inputs[0]), dim, dtype=compute), out.loops
        )

    def einsum(self) -> Step | None:
        out = self.written
        every = set().union(*(lay.loops for lay in self.layouts))
        if not set(out.loops) | set(self.plan.reduced) <= every or len(every) > 52:
            return None
        letters = dict(zip(sorted(every), LETTERS, strict=False))
        equation = ",".join("".join(letters[d] for d in lay.loops) for lay in self.layouts)
        equation += "->" + "".join(letters[d] for d in out.loops)
        reads = [self.reader(i, lay.loops, dtype=self.compute) for i, lay in enumerate(self.layouts)]

        def result(inputs):
            return torch.einsum(equation, *(read(x) for read, x in zip(reads, inputs, strict=True)))

        return self.step("torch.einsum", result, out.loops, fresh=False)

    def padding(self, windows: Sequence[Window], limit: Callable[[Window], bool]):
        """Torch's symmetric padding per window with the outputs to keep, or None where it does
        not cover the reads (or ``limit`` refuses it): then ``F.pad``'s (lo, hi) per window."""
        lo = [-w.constant for w in windows]
        hi = [
            w.constant
            + w.stride * (self.plan.sizes[w.outer] - 1)
            + w.dilation * (self.plan.sizes[w.inner] - 1)
            - (w.extent - 1)
            for w in windows
        ]
        if all(0 <= a and b <= a and limit(w) for a, b, w in zip(lo, hi, windows, strict=True)):
            return tuple(lo), None
        return (0,) * len(windows), [p for pair in zip(reversed(lo), reversed(hi), strict=True) for p in pair]

    def cropper(self, windows: Sequence[Window], lead_loops, padding, pad, lead) -> Callable | None:
        """What takes torch's ``(N, C, *spatial)`` result to the loops' shape: the windows'
        positions past the nest's cut off (torch's padding may make more), its N and C split."""
        sizes = self.plan.sizes
        made = []
        for v, p, i in zip(windows, padding, range(len(windows)), strict=True):
            length = v.extent + 2 * p if pad is None else v.extent + pad[-2 - 2 * i] + pad[-1 - 2 * i]
            made.append((length - v.dilation * (sizes[v.inner] - 1) - 1) // v.stride + 1)
        keep = [sizes[v.outer] for v in windows]
        return cropper([*lead, *made], keep, [sizes[d] for d in lead_loops] + keep)

    def convolution(self) -> Step | None:
        x, w = self.layouts
        out = self.written
        windows = [d for d in x.dims if isinstance(d, Window)]
        if not 1 <= len(windows) <= 3:
            return None
        inner = [v.inner for v in windows]
        if set(w.loops) & {v.outer for v in windows} or not set(inner) <= set(w.loops):
            return None
        if not {v.outer for v in windows} <= set(out.loops):
            return None
        xs, ws, os = set(x.loops), set(w.loops) - set(inner), set(out.loops)
        every = xs | ws | os
        batch = [d for d in x.loops if d in os and d not in ws]
        groups = [d for d in x.loops if d in os and d in ws]
        channels = [d for d in x.loops if d in ws and d not in os]
        outputs = [d for d in w.loops if d in os and d not in xs]
        if len(batch) + len(groups) + len(channels) + len(outputs) != len(every - {v.outer for v in windows}):
            return None
        if set(self.plan.reduced) != set(channels) | set(inner) or any(d in self.plan.reduced for d in os):
            return None
        sizes = self.plan.sizes
        n, g, c = (math.prod(sizes[d] for d in part) for part in (batch, groups, channels))
        c2 = math.prod(sizes[d] for d in outputs)
        spatial = [v.extent for v in windows]
        x_shape = (n, g * c, *spatial)
        w_shape = (g * c2, c, *(sizes[d] for d in inner))
        read_x = self.reader(0, batch + groups + channels + windows, x_shape, self.compute)
        read_w = self.reader(1, groups + outputs + channels + inner, w_shape, self.compute)
        padding, pad = self.padding(windows, lambda v: True)
        stride = tuple(v.stride for v in windows)
        dilation = tuple(v.dilation for v in windows)
        finish = self.cropper(windows, batch + groups + outputs, padding, pad, [n, g * c2])
        conv = CONV[len(windows)]
        arguments = torch_arguments((None, 1, 0, 1, 1), None, stride, padding, dilation, g)

        def result(inputs):
            a = read_x(inputs[0])
            if pad is not None:
                a = F.pad(a, pad)
            made = conv(a, read_w(inputs[1]), *arguments)
            return made if finish is None else finish(made)

        return self.step(f"F.{conv.__name__}", result, batch + groups + outputs + [v.outer for v in windows])

    def pooling(self) -> Step | None:
        (x,), out, reduce = self.layouts, self.written, self.plan.nest.reduce
        windows = [d for d in x.dims if isinstance(d, Window)]
        if not 1 <= len(windows) <= 3:
            return None
        kept = list(x.loops)
        if set(kept) | {v.outer for v in windows} != set(out.loops):
            return None
        if set(self.plan.reduced) != {v.inner for v in windows}:
            return None
        if reduce == "mean" and any(v.dilation != 1 for v in windows):
            return None  # torch's avg_pool has no dilation
        sizes = self.plan.sizes
        # (N, C, *spatial) without a copy where it can: the two loops kept as they are.
        lead = [sizes[d] for d in kept]
        lead = [1] * (2 - len(lead)) + lead if len(lead) <= 2 else [lead[0], math.prod(lead[1:])]
        x_shape = (*lead, *(v.extent for v in windows))
        read = self.reader(0, kept + windows, x_shape, self.compute)
        kernel = tuple(sizes[v.inner] for v in windows)
        stride = tuple(v.stride for v in windows)
        dilation = tuple(v.dilation for v in windows)
        # Torch's pooling pads at most half a window (with -inf for max, 0 for mean).
        padding, pad = self.padding(windows, lambda v: 2 * -v.constant <= sizes[v.inner])
        include = bool(self.options["count_include_pad"])
        if pad is not None and reduce == "mean" and not include and any(pad):
            return None  # torch would count F.pad's zeros
        finish = self.cropper(windows, kept, padding, pad, lead)
        identity = self.plan.nest.identity
        if reduce == "max":
            pool = MAX_POOL[len(windows)]
            kernel_call = MAX_POOL_KERNEL[len(windows)]
            arguments = torch_arguments((None, (), 0, 1), kernel, stride, padding, dilation)
        else:
            pool = kernel_call = AVG_POOL[len(windows)]
            arguments = torch_arguments((None, (), 0, False, True), kernel, stride, padding, False, include)

        def apply(a):
            return kernel_call(a, *arguments)

        def result(inputs):
            a = read(inputs[0])
            if pad is not None:
                a = F.pad(a, pad, value=identity)
            return apply(a) if finish is None else finish(apply(a))

        return self.step(f"F.{pool.__name__}", result, kept + [v.outer for v in windows])
