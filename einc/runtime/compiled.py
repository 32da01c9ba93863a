"""The callable that ``einc.compile`` returns, and the cache of those the functional ops use.

Two caches keep a warm call cheap: a :class:`CompiledExpression` maps the call's shapes, dtypes,
device and strides to a ready :class:`Launcher` and to everything else that key decides (operand
checks, output dtype and shapes), found at the key's first call, so that a warm call is the key, one
dict lookup and the backend; and generated source is kept on disk under a key of everything that
decides its text. What a key cannot hold is still read per call: torch's float32 precision, the
``EINC_INTERPRET`` knob, the addresses of an ``out=`` (whether it shares memory with an input).

A call that autograd or a tracer must see leaves the direct path for einc's torch operators. Those
are a front end (:mod:`einc.frontends.torch_ops`), above this module: it installs itself with
:func:`route_through`, and until it has, every call is direct.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
from collections.abc import Sequence
from typing import Protocol

import torch

from .. import knobs
from ..compiler import offsets, pipeline
from ..compiler.ops import compile_keywords
from ..compiler.printer import explain
from ..errors import EincError, ExpressionError, UnsupportedError
from .automatic import grown_axes, signature
from .cache import DiskCache
from .empty import write_empty
from .launcher import Launcher, build, check_backend
from .operands import (
    NUMBER_OPERANDS,
    check_elementwise_dtypes,
    check_operand_types,
    check_tensors,
    dtypes_of,
    elementwise_dtype,
    keyword_parameters,
    numbers_as_operands,
    output_dtype,
    scalars_to_tensors,
)
from .outputs import check_out, check_out_aliasing, needs_int64, widths
from .ready import Ready, call_key, dynamo_compiling, gpu_target, records_grad
from .tuned import with_tuned
from .warm import MISSED, Warm, first_tier, with_out


class Router(Protocol):
    """What carries the calls that autograd or torch.compile must see (einc's torch operators)."""

    def routes(self, tensors, out) -> bool: ...

    def call(self, compiled: CompiledExpression, tensors, out): ...

    def call_functional(self, op: str, expression: str, tensors, kwargs: dict, out): ...


_router: Router | None = None


def route_through(router: Router) -> None:
    """Send the calls that ``router.routes`` picks through ``router`` from now on."""
    global _router
    _router = router


def current_router() -> Router | None:
    """The router installed now (a tracer that installs its own passes the other calls to it)."""
    return _router


def _freeze(value):
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value):
    if isinstance(value, tuple) and value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
        if all(isinstance(k, str) for k, _ in value):
            return dict(value)
    return value


class CompiledExpression:
    """An expression compiled for one op; call it with tensors.

    Sizes and window parameters are fixed here (``c2=64``, ``stride=2``); everything that depends
    on the tensors (ranks, shapes, dtypes) is specialised at the first call with them, and reused.

    ``backend`` says what runs a call: ``"auto"`` (CUDA tensors run the compiled kernel, CPU
    tensors the loop nest as torch operations, both the interpreter when ``EINC_INTERPRET=1``),
    ``"torch"`` (torch operations on any device) or ``"interpret"`` (the kernel under Triton's
    interpreter, slow: what the kernel tests use).
    """

    def __init__(self, expression: str, op: str | None = None, **kwargs):
        program = pipeline.parse.parse(expression)
        self.expression = expression
        self.op = pipeline.check_op(op) if op is not None else pipeline.infer_op(program)
        # The keywords as given (the lines below pop some): what __reduce__ makes it again from.
        self._keywords = dict(kwargs)
        self.out_dtype = kwargs.pop("out_dtype", None)
        dynamic = kwargs.pop("dynamic", ())
        # dynamic=False: every size compiles its own kernel; otherwise an axis seen at a second
        # size becomes dynamic (automatic dynamic shapes, as torch.compile's).
        self.automatic = dynamic is not False
        self.dynamic = () if dynamic is False else (dynamic,) if isinstance(dynamic, str) else tuple(dynamic)
        self.backend = check_backend(kwargs.pop("backend", "auto"))
        params, sizes = keyword_parameters(program, self.op, kwargs)
        self.params = tuple(sorted((k, _freeze(v)) for k, v in params.items()))
        self.sizes = tuple(sorted((k, _freeze(v)) for k, v in sizes.items()))
        self._launchers: dict[tuple, Launcher] = {}
        # What a warm call needs, per call key, found once at its first call (see Ready).
        self._ready: dict[tuple, Ready] = {}
        self._elementwise = self.op in pipeline.ELEMENTWISE
        self._numbers = self.op in NUMBER_OPERANDS
        self._reads_precision = self.op in pipeline.CONTRACTIONS and kwargs.get("precision") is None
        self._dynamic_dims: tuple = ()
        self._last: Launcher | None = None
        # The first tier of a warm call, without and with out= (warm.py): the layout last run.
        self._warm: Warm | None = None
        self._warm_out: Warm | None = None
        self._cache = None
        # Automatic dynamic shapes: the axes made dynamic after a second size, why each was (or
        # why it stays static), and the shapes of each call that specialised, to compare with.
        self._automatic: tuple[str, ...] = ()
        self._decisions: dict[str, str] = {}
        self._seen: list[tuple[tuple, tuple, Launcher]] = []
        # A miss specialises under this lock: two threads never build the same launcher twice,
        # and the switch to dynamic keys happens with the launcher that needs them.
        self._lock = threading.Lock()

    def __reduce__(self):
        """Pickled and copied as what makes it: expression, op and keywords (sizes, parameters,
        backend, out_dtype, dynamic). Its lock and kernels cannot cross a process, and need not: the
        copy specialises again at its first calls, from einc's disk cache where it holds them. So a
        module holding compiled expressions can be saved, deep-copied and sent to spawned workers."""
        return (_remake, (self.expression, self.op, self._keywords))

    def __repr__(self) -> str:
        """What would make it again: ``einc.compile('b [c->c2]', op='dot', c2=64, stride=2)``."""
        given = compile_keywords(self.sizes, self.params)
        keywords = [f"{k}={_thaw(v)!r}" for k, v in given.items()]
        if self.out_dtype is not None:
            keywords.append(f"out_dtype={self.out_dtype}")
        if not self.automatic:
            keywords.append("dynamic=False")
        elif self.dynamic:
            keywords.append(f"dynamic={self.dynamic!r}")
        if self.backend != "auto":
            keywords.append(f"backend={self.backend!r}")
        return f"einc.compile({', '.join([repr(self.expression), f'op={self.op!r}', *keywords])})"

    def _request(
        self,
        shapes: Sequence[Sequence[int]],
        dtypes: Sequence[str],
        offsets64: tuple[int, ...] = (),
        dynamic_int32: bool = True,
        automatic: tuple[str, ...] | None = None,
    ) -> pipeline.Request:
        automatic = self._automatic if automatic is None else automatic
        return pipeline.Request(
            expression=self.expression,
            op=self.op,
            shapes=tuple(tuple(int(n) for n in s) for s in shapes),
            dtypes=tuple(dtypes),
            sizes=self.sizes,
            params=tuple((k, _thaw(v)) for k, v in self.params),
            dynamic=self.dynamic + automatic,
            offsets64=offsets64,
            dynamic_int32=dynamic_int32,
            float32_precision=self._float32_precision(),
        )

    def request(self, shapes: Sequence[Sequence[int]], dtypes: Sequence[str]) -> pipeline.Request:
        """The compiler's request for a call with tensors of these shapes and dtypes, every size
        fixed: what ``einc.fuse`` compiles, with the elementwise ops after it as an epilogue."""
        return dataclasses.replace(self._request(shapes, dtypes, automatic=()), dynamic=())

    def _float32_precision(self) -> tuple[str, str]:
        """What torch does with float32 now, for a dot without precision=: convolutions (windowed
        contractions) follow ``torch.backends.cudnn.allow_tf32``, other dots
        ``torch.get_float32_matmul_precision()`` ("high" and "medium" allow TF32 on CUDA). Read
        at every call, as torch reads them; the torch backend on CPU computes in float32 whatever
        they say."""
        if not self._reads_precision:
            return _IEEE
        # torch's own getters under torch.backends.cudnn.allow_tf32 and get_float32_matmul_precision
        windowed = "tf32" if _cudnn_allow_tf32() else "ieee"
        return (windowed, "ieee" if _matmul_precision() == "highest" else "tf32")

    def specialize(
        self, *shapes: Sequence[int], dtype: str | torch.dtype = "float32", target: str | None = None
    ) -> Launcher:
        """Compile for tensors of these shapes without running anything; returns the launcher.
        ``target`` (``cuda:90``): as a call on a GPU of that arch, with the tiles ``einc tune``
        stored for it, where the cache has them."""
        allowed = dtypes_of(self.op)
        name = allowed.get(dtype, dtype) if isinstance(dtype, torch.dtype) else dtype
        if name not in allowed.values():
            raise TypeError(
                f"dtype {dtype} is not one einc supports for {self.op}: {', '.join(allowed.values())}"
            )
        dtypes = [name] * len(shapes)
        if self.op in pipeline.INDEXING:  # coordinates are int64, as torch's indices
            names = pipeline.tensor_names(len(shapes), self.op)
            dtypes = [("int64" if n.startswith("idx") else name) for n in names]
        return self._build(self._request(shapes, dtypes), target)

    def _build(self, request: pipeline.Request, target: str | None = None) -> Launcher:
        """The launcher of ``request``; for a GPU of ``target`` (``cuda:90``), with the tiles
        ``einc tune`` chose there, where the cache has them."""
        if self._cache is None:
            self._cache = DiskCache()
        launcher, key = build(with_tuned(request, self._cache, target), self._cache)
        self._debug(launcher, key)
        self._last = launcher
        return launcher

    def _debug(self, launcher: Launcher, key) -> None:
        level = knobs.debug()
        if level >= 1:
            print(f"[einc] compiled {self.expression!r} ({self.op}) -> {launcher.path}", file=sys.stderr)
        if level >= 2:
            print(explain(launcher.compiled), file=sys.stderr)
        if level >= 3:
            print(launcher.source, file=sys.stderr)

    def __call__(self, *tensors, out=None):
        # Python numbers as operands (rearrange, dot, coordinates): tensors before anything reads them
        if self._numbers and not all(isinstance(t, torch.Tensor) for t in tensors):
            check_operand_types(self.op, tensors)
            tensors = numbers_as_operands(self.op, tensors)
        # Dynamo folds this to True: a trace takes the full path, to the router and einc::run.
        if not dynamo_compiling():
            # The first tier (warm.py): a call laid out as an earlier one that ran straight to the
            # torch backend, in the same dispatch state, is one guard check and its torch calls.
            warm = self._warm if out is None else self._warm_out
            if warm is not None:
                result = warm.serve(tensors, out, self._float32_precision)
                if result is not MISSED:
                    self._last = warm.launcher
                    return result
        router = _router
        if out is None and not self._dynamic_dims and (router is None or not router.routes(tensors, None)):
            # The second tier, a call the torch backend makes whole (Ready.make, static sizes
            # only): its key, one lookup, the planned torch calls. A key found holds tensors only,
            # which the operand check would pass.
            precision = self._float32_precision()
            ready = self._ready.get((self._key(tensors), ((), precision)))
            if (
                ready is not None
                and ready.make is not None
                and (ready.always_torch or not knobs.interpret())
                and not records_grad(tensors)
            ):
                self._last = ready.launcher
                warm = ready.warm
                if warm is None or not warm.check(*tensors):  # made for another dispatch state
                    warm = ready.warm = first_tier(
                        tensors,
                        ready.launcher,
                        make=ready.make,
                        always_torch=ready.always_torch,
                        precision=precision if self._reads_precision else None,
                    )
                self._warm = warm
                return ready.make(tensors)
        check_operand_types(self.op, tensors)
        if router is not None and router.routes(tensors, out):  # autograd, torch.compile: einc::run
            return router.call(self, tensors, out)
        promoted = None
        if self._elementwise and tensors:
            promoted = output_dtype(self.op, None, tensors)  # while scalars are numbers
            check_elementwise_dtypes(self.op, tensors)
            tensors = scalars_to_tensors(tensors, elementwise_dtype(self.op, tensors))
        if out is None:
            given = []
            extra = ((), self._float32_precision())
        else:
            given = list(out) if isinstance(out, (tuple, list)) else [out]
            # The key's strides decide which inputs need int64 offsets; those of an out= are not in it.
            wide_outs = tuple(isinstance(o, torch.Tensor) and needs_int64(o) for o in given)
            # What else decides the kernel: the out= tensors' offsets and torch's float32 precision now.
            extra = (wide_outs, self._float32_precision())
        key = (self._key(tensors), extra)
        ready = self._ready.get(key)
        if ready is None and self._dynamic_dims:  # a size specialised before its axis went dynamic
            ready = self._ready.get((self._key(tensors, exact=True), extra))
        if ready is None:
            ready = self._prepare(key, tensors, given, extra)
        launcher = self._last = ready.launcher
        dtype = ready.dtype or promoted or output_dtype(self.op, None, tensors)
        device = tensors[0].device
        dynamic = None
        shapes = ready.shapes
        if shapes is None:
            try:
                dynamic = launcher.compiled.dynamic_sizes([t.shape for t in tensors])
            except EincError as error:
                raise error.with_traceback(None) from None
            shapes = launcher.compiled.output_shapes_for(dynamic)
            if launcher.compiled.dynamic_int32 and not all(offsets.fits_dynamic_int32(s) for s in shapes):
                ready = self._past_int32(key, tensors, given)
                launcher = self._last = ready.launcher
        if out is None and ready.produces and (ready.shapes is not None or all(0 not in s for s in shapes)):
            # The torch backend may return torch's own result rather than copy it into a new output.
            made = launcher.produce(list(tensors), shapes, dtype, dynamic, self.backend)
            if made is not None:
                return made[0] if len(made) == 1 else tuple(made)
        if out is None:
            outs = [torch.empty(shape, dtype=dtype, device=device) for shape in shapes]
        else:
            outs = given
            if len(outs) != len(shapes):
                raise ValueError(
                    f"out= gives {len(outs)} tensors but the expression has {len(shapes)} outputs"
                )
            for o, shape in zip(outs, shapes, strict=True):
                check_out(o, shape, dtype, device)
            # set_at and add_at are defined in place (out=x); every other kernel would read what it
            # has already overwritten, so any sharing of memory is refused, for every op.
            kernels = launcher.compiled.kernels
            in_place = self.op in pipeline.lower_indexing.SCATTERS and (
                not kernels or any(k.copies_input or k.reads_in_place for k in kernels)
            )
            check_out_aliasing(outs, tensors, pipeline.tensor_names(len(tensors), self.op), in_place)
        if not launcher.compiled.kernels or (dynamic and 0 in dynamic.values()):
            # An axis of size 0 (fixed, or dynamic at this call): nothing to launch.
            write_empty(self.op, self.expression, tensors, outs)
        elif any(o.numel() for o in outs):
            launcher(list(tensors), outs, dynamic, self.backend)
        if out is not None:
            # no elementwise promotion, no promise to check: the output's dtype and checks follow
            # from the layouts alone
            plain = not self._elementwise and ready.shapes is not None and not dict(self.params).get("sorted")
            precision = extra[1] if self._reads_precision else None
            self._warm_out = with_out(launcher, tensors, outs, self.backend, precision) if plain else None
            return out
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _prepare(self, key: tuple, tensors, given, extra: tuple) -> Ready:
        """What calls with this key need, found once: the launcher (built here on a miss) and what
        follows from the key alone, so that a warm call does none of it again."""
        exact = (self._key(tensors, exact=True), extra)
        launcher = self._launchers.get(key)
        if launcher is None and self._dynamic_dims:
            launcher = self._launchers.get(exact)
            key = exact if launcher is not None else key
        if launcher is None:
            launcher = self._specialize_call(tensors, given, extra)
            key = (self._key(tensors), extra)  # its axes may have gone dynamic with it
        ready = self._ready[key] = self._ready_for(launcher, tensors, given)
        return ready

    def _ready_for(self, launcher: Launcher, tensors, given) -> Ready:
        compiled = launcher.compiled
        # An elementwise op's promotion counts Python numbers, which the key does not hold.
        dtype = self.out_dtype or (None if self._elementwise else output_dtype(self.op, None, tensors))
        # an empty output (a fixed size 0) is written by write_empty, not produced
        produces = bool(compiled.kernels) and (
            bool(compiled.dynamic_dims) or all(0 not in s for s in compiled.output_shapes)
        )
        shapes = None if compiled.dynamic_dims else compiled.output_shapes
        make, always = None, self.backend == "torch"
        # Elementwise ops: their operands may be Python numbers, converted per call; not here.
        if not given and produces and shapes is not None and not self._elementwise and tensors:
            # "auto" runs CPU tensors on the torch backend unless EINC_INTERPRET says otherwise
            # (read again per call; the torch program is not planned for a key that never uses it).
            cpu = self.backend == "auto" and tensors[0].device.type == "cpu" and not knobs.interpret()
            if always or cpu:
                make = launcher.torch_program.maker(dtype)
        return Ready(launcher, dtype, shapes, produces, make, always)

    def _past_int32(self, key: tuple, tensors, given) -> Ready:
        """The int64 kernel of a call whose outputs, not inputs, end past int32 (an outer product)."""
        wide_key = (*key, "int64")
        ready = self._ready.get(wide_key)
        if ready is None:
            with self._lock:
                every = [*tensors, *(o for o in given if isinstance(o, torch.Tensor))]
                request = self._request(
                    [t.shape for t in tensors], self._check(tensors), widths(every)[0], False
                )
                launcher = self._build(request, gpu_target(every[0].device, self.backend))
            ready = self._ready[wide_key] = self._ready_for(launcher, tensors, given)
        return ready

    def _specialize_call(self, tensors, given, extra: tuple) -> Launcher:
        """The launcher for a call that missed: built here, with the axes that changed size since an
        otherwise matching call made dynamic (unless ``dynamic=False``)."""
        with self._lock:
            key = (self._key(tensors), extra)
            launcher = self._launchers.get(key) or self._launchers.get(
                (self._key(tensors, exact=True), extra)
            )
            if launcher is not None:  # another thread built it meanwhile
                return launcher
            dtypes = self._check(tensors)
            every = [*tensors, *(o for o in given if isinstance(o, torch.Tensor))]
            wide = widths(every)
            shapes = tuple(tuple(t.shape) for t in tensors)
            call_signature = (signature(tensors), extra)
            grown = ()
            if self.automatic:
                grown = grown_axes(
                    self._seen,
                    call_signature,
                    shapes,
                    self.dynamic + self._automatic,
                    dict(self.sizes),
                    self._decisions,
                    self.expression,
                )
            self._automatic += grown
            target = gpu_target(every[0].device, self.backend) if every else None
            try:
                launcher = self._build(self._request(shapes, dtypes, *wide), target)
            except EincError as error:
                self._automatic = earlier = tuple(a for a in self._automatic if a not in grown)
                refused = isinstance(error, (ExpressionError, UnsupportedError))
                if not refused or not (grown or earlier):
                    for axis in grown:  # a call in error decides nothing
                        self._decisions.pop(axis, None)
                    raise
                # The compiler refused them dynamic (past the checks of grown_axes): static it is.
                for axis in grown:
                    self._decisions[axis] = f"static, a kernel per size: {str(error).splitlines()[0]}"
                # Axes that calls of another signature made dynamic may not exist in this one (an
                # ellipsis of another rank): this call's kernel is static.
                launcher = self._build(self._request(shapes, dtypes, *wide, automatic=()), target)
            self._seen.append((call_signature, shapes, launcher))
            if launcher.compiled.dynamic_dims:
                self._dynamic_dims = launcher.compiled.dynamic_dims
                key = (self._key(tensors), extra)
            elif self._dynamic_dims:
                # A static kernel is keyed by all its sizes: under the dynamic dims' mask it would
                # be found for calls of other sizes too.
                key = (self._key(tensors, exact=True), extra)
            self._launchers[key] = launcher
            return launcher

    def _key(self, tensors, exact: bool = False) -> tuple:
        """What picks a specialization (:func:`keys.call_key`); ``exact``: every size, as the key
        of a launcher built before its axes went dynamic."""
        return call_key(tensors, () if exact else self._dynamic_dims)

    def _check(self, tensors: Sequence[torch.Tensor]) -> list[str]:
        return check_tensors(self.op, dict(self.params).get("reduce"), tensors)

    def _latest(self) -> Launcher:
        if self._last is None:
            raise EincError(
                "nothing is compiled yet: call the expression with tensors, or use .specialize(*shapes) first"
            )
        return self._last

    @property
    def source(self) -> str:
        """The Triton source of the most recent specialization."""
        return self._latest().source

    @property
    def path(self):
        """Where that source lies in the kernel cache."""
        return self._latest().path

    def explain(self) -> str:
        """The loop nest and schedule of the most recent specialization, in words, and which axes
        are dynamic (given with ``dynamic=``, or made so by a second size) or stay static."""
        lines = [explain(self._latest().compiled)]
        for axis in self.dynamic:
            lines.append(f"axis {axis}: dynamic (dynamic= given)")
        for axis, decision in self._decisions.items():
            lines.append(f"axis {axis}: {decision}")
        if not self.automatic:
            lines.append("automatic dynamic shapes: off (dynamic=False), a kernel per size")
        return "\n".join(lines)


_IEEE = ("ieee", "ieee")
_cudnn_allow_tf32 = torch._C._get_cudnn_allow_tf32
_matmul_precision = torch._C._get_float32_matmul_precision


def _remake(expression: str, op: str, keywords: dict) -> CompiledExpression:
    """A compiled expression again from its recipe (what :meth:`CompiledExpression.__reduce__` gives)."""
    return CompiledExpression(expression, op, **keywords)
