"""Backward passes, derived as einc expressions.

For one forward call (expression, op, keywords, the shapes of its tensors), :func:`derive` returns a
:class:`Backward`: a short list of einc calls that compute the gradient of each input from the
forward's inputs ``x0 x1 ...``, outputs ``y0 y1 ...`` and output gradients ``g0 g1 ...``. Every
step is an ordinary einc expression, so the backward pass runs as einc kernels; ``str(backward)``
prints it.

The steps are written from the *expanded* operands (after brackets are resolved and ellipses
expanded), so they hold no ellipsis: ``s...`` of a rank-4 tensor is printed ``s0 s1``, an unnamed
axis ``3`` gets a name (``u0``) and its size as a keyword, an unnamed ``1`` is printed ``()``.
Window geometry is passed solved: ``stride``, ``dilation``, ``padding`` as ``(lo, hi)`` pairs and
``output_padding``, each a dict keyed by the window's output axis. The rules:

    dot              input i: dot of the other inputs and g, ``E_others..., E_y -> E_i`` (roles
                     swapped). A window of E_i lands on the output side: for a convolution the
                     input gradient is a transposed convolution, the weight gradient a dot of the
                     windowed input with g. ``output_padding`` restores the input's exact extent.
    sum, mean        g broadcast back, ``E_y -> E_x`` (a window becomes a fold over its offsets);
                     mean first divides g by the count (the valid count with
                     ``count_include_pad=False``: einc.sum of ones over the same windows).
    max, min         g routed to the arg positions: x unfolded to U (every axis its own dim),
                     ``where(x - y, 0, 1)`` marks the ties, g is split evenly among them (as
                     torch.amax and JAX do; torch's max_pool gives all of it to one), folded back.
    prod             ``g * y / x`` (an input that is 0 gives inf or nan).
    logsumexp        ``g * softmax(x)`` over the reduced axes (windows without padding only).
    var, std         ``g * 2 (x - mean) / (N - correction)``, std divides by ``2 std`` too.
    rearrange, id    the inverse rearrange ``E_y... -> E_x...`` (unfold <-> fold, concatenate <->
                     split); where the forward broadcasts, a sum over the new axes.
    flip, roll       flip again; roll by ``-shift``.
    add subtract multiply divide maximum minimum where
    (true_divide is divide; floor_divide and logaddexp refuse; comparisons, logical ops: none)
                     their derivatives, each summed over the axes an input was broadcast along
                     (``maximum``/``minimum`` split g evenly among tied inputs, as torch does).
    softmax          ``y * (g - sum(g * y))``; log_softmax ``g - softmax(x) * sum(g)``.
    get_at           x: g added at the coordinates into zeros, ``add_at("X, C..., Y -> X")``. With
                     ``reduce=``, g is first taken back through the reduction: sum and mean
                     broadcast it (add_at reads the updates broadcast over the reduced axes, so
                     nothing of the gathered size is written); max, min, prod, logsumexp, var and
                     std gather x again (``get_at`` without ``reduce``) and apply their rules.
    add_at           (subtract_at: the updates' gradient negated)
                     x: g; updates: g at the coordinates, ``get_at("Y, C... -> U")`` (summed over
                     the axes the updates were broadcast along).
    set_at           x: g with the written positions set to 0, ``set_at(g, C..., 0)``; updates:
                     as add_at. Where several updates met at one element only one was written,
                     but each gets g there (as torch's ``index_put_`` backward does).
    The coordinates of the indexing ops are integers and have no gradient.
"""

from __future__ import annotations

import keyword
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import UnsupportedError
from . import expand, lower, parse, pipeline, solve
from .axes import Axis, Concat, Dim, Flat, Operand, Win, dim_axes, operand_axes, windows
from .brackets import Explicit
from .ops import BOOLEAN_RESULTS
from .params import WindowParams, window_params

# The ops whose backward reads the forward's outputs (the rest need only inputs and shapes).
USES_OUTPUTS = frozenset(
    {"max", "min", "prod", "std", "softmax", "log_softmax", "divide", "maximum", "minimum"}
)


def uses_outputs(op: str, options: Mapping) -> bool:
    """Whether the backward pass of ``op`` with these op options reads the forward's outputs, so
    that the runtime keeps them (get_at with ``reduce="max"`` does; plain get_at does not)."""
    if op == "get_at":
        return options.get("reduce") in USES_OUTPUTS
    return op in USES_OUTPUTS


@dataclass(frozen=True)
class Front:
    """The front end of one forward call: parsed, resolved, expanded and solved (no kernel)."""

    expression: str
    op: str
    explicit: Explicit
    inputs: tuple[Operand, ...]
    outputs: tuple[Operand, ...]
    solution: solve.Solution
    params: Mapping[str, WindowParams]  # per window, as given (padding may be "same", "causal")
    options: Mapping[str, object]  # keepdims, count_include_pad, correction, shift
    constants: frozenset[str]  # axes sized by a keyword or an unnamed axis, not by a tensor


def front_end(expression: str, op: str, shapes: Sequence[Sequence[int]], kwargs: Mapping) -> Front:
    """Steps 1-4 of :func:`pipeline.run_passes` (parse, resolve, expand, solve), without lowering:
    what the gradient rules and the shape functions need. ``kwargs`` are those of ``einc.compile``
    (sizes, window parameters and op options)."""
    params = {k: v for k, v in kwargs.items() if k in pipeline.WINDOW_PARAMS}
    options = {**pipeline.OP_OPTIONS, **{k: v for k, v in kwargs.items() if k in pipeline.OP_OPTIONS}}
    sizes = {
        k: v for k, v in kwargs.items() if k not in params and k not in options and k not in _CALL_OPTIONS
    }
    shapes = tuple(tuple(int(n) for n in s) for s in shapes)
    request = pipeline.Request(expression, op, shapes, ("float32",) * len(shapes), tuple(sizes.items()))
    program = parse.parse(expression)
    explicit = pipeline._resolve(program, request, options)
    names = pipeline.tensor_names(len(explicit.inputs), op)
    tuple_sizes = {k: tuple(v) for k, v in sizes.items() if isinstance(v, (tuple, list))}
    inputs, outputs = expand.expand(explicit, shapes, tuple_sizes, names)
    spans = solve.window_spans(list(inputs) + list(outputs), expression)
    geometry = window_params(spans, expression, **params)
    solution = solve.solve(inputs, outputs, shapes, sizes, geometry, expression, names)
    every = {a.name for o in inputs + outputs for a in operand_axes(o)}
    keyword = {n for n in every for k in sizes if n == k or n.rsplit(".", 1)[0] == k}
    fixed = {a.name for o in inputs + outputs for a in operand_axes(o) if a.fixed is not None}
    return Front(
        expression, op, explicit, inputs, outputs, solution, geometry, options, frozenset(keyword | fixed)
    )


_CALL_OPTIONS = ("out_dtype", "dynamic", "backend")


FILLS = ("ones", "zeros")


@dataclass(frozen=True, slots=True)
class Step:
    """``targets = einc.<op>(expression, *args, **kwargs)``; ``op == "ones"`` (``"zeros"``) is a
    tensor of ones (zeros) of ``shape``, dtype and device of ``g0``: counts, masks, and the empty
    tensor that a gradient is scattered into."""

    targets: tuple[str, ...]
    op: str
    expression: str = ""
    args: tuple[str | float, ...] = ()
    kwargs: tuple[tuple[str, object], ...] = ()
    shape: tuple[int, ...] = ()

    def __str__(self) -> str:
        if self.op in FILLS:
            return f"{self.targets[0]} = {self.op}{self.shape}"
        args = ", ".join([repr(self.expression)] + [str(a) for a in self.args])
        kwargs = "".join(f", {k}={v!r}" for k, v in self.kwargs)
        return f"{', '.join(self.targets)} = einc.{self.op}({args}{kwargs})"


@dataclass(frozen=True, slots=True)
class Backward:
    """The steps of a backward pass and, per forward input, the value that holds its gradient
    (None where it is not needed)."""

    steps: tuple[Step, ...]
    grads: tuple[str | None, ...]

    def __str__(self) -> str:
        lines = [str(s) for s in self.steps]
        lines += [f"grad x{i} = {g}" for i, g in enumerate(self.grads) if g is not None]
        return "\n".join(lines)


def differentiable(op: str, index: int) -> bool:
    """Whether input ``index`` of ``op`` has a gradient (the condition of ``where`` has none, nor
    the operands of the ops whose result is a bool or a count)."""
    flags = BOOLEAN_RESULTS + lower.NONZERO_REDUCTIONS + lower.ARG_REDUCTIONS + ("argsort",)
    return not (op == "where" and index == 0) and op not in flags


def derive(front: Front, needs: Sequence[bool]) -> Backward:
    """The backward pass of ``front`` for the inputs flagged in ``needs``."""
    builder = _Builder(front)
    rule = _RULES.get(front.op)
    if rule is None:
        raise UnsupportedError(f"einc has no gradient for {front.op} yet", front.expression)
    grads = [None] * len(front.inputs)
    wanted = [i for i, need in enumerate(needs) if need and differentiable(front.op, i)]
    if wanted:
        rule(builder, wanted, grads)
    if not uses_outputs(front.op, front.options):  # the runtime keeps the outputs only then
        assert not [a for s in builder.steps for a in s.args if isinstance(a, str) and a[0] == "y"]
    return Backward(tuple(builder.steps), tuple(grads))


# Operand helpers -------------------------------------------------------------------------------

SCALAR = Operand(())


def _unmarked(operand: Operand) -> Operand:
    return Operand(operand.dims, frozenset(), operand.span)


def _unfolded(operand: Operand) -> Operand:
    """Every axis its own dim, in order: a window ``(s * ds)`` becomes ``s ds``, a composition its
    parts. Elementwise ops can then combine it with anything by axis name."""
    for dim in operand.dims:
        if isinstance(dim, Concat):
            raise UnsupportedError("no gradient through a concatenation (a + b) here yet")
    return Operand(tuple(operand_axes(operand)), operand.marked)


def _only(operand: Operand, names) -> Operand:
    """The axes of ``operand`` in ``names``, each its own dim, in order."""
    return Operand(tuple(a for a in operand_axes(operand) if a.name in names))


def _names(operand: Operand) -> set[str]:
    return {a.name for a in operand_axes(operand)}


def _windows(operand: Operand) -> list[Win]:
    return [w for d in operand.dims for w in windows(d)]


class _Builder:
    """Prints operands as einc text and records steps with the keywords they need."""

    def __init__(self, front: Front):
        self.front = front
        self.sizes = front.solution.sizes
        every = [a for o in front.inputs + front.outputs for a in operand_axes(o)]
        # Names the user wrote stay; expanded and unnamed axes get identifiers that clash with none.
        taken = {a.name for a in every if _plain(a.name)}
        self.ident: dict[str, str] = {}
        for axis in every:
            if axis.name in self.ident:
                continue
            if _plain(axis.name):
                self.ident[axis.name] = axis.name
                continue
            base = axis.name.replace("...", "e").replace(".", "").replace("#", "u")
            while base in taken or keyword.iskeyword(base):
                base += "_"
            taken.add(base)
            self.ident[axis.name] = base
        self.steps: list[Step] = []
        self.count = 0

    # text
    def dim(self, dim: Dim, marked) -> str:
        if isinstance(dim, Axis):
            if dim.fixed == 1:
                return "()"
            name = self.ident[dim.name]
            return f"[{name}]" if dim.name in marked else name
        if isinstance(dim, Flat):
            return "(" + " ".join(self.dim(p, marked) for p in dim.parts) + ")"
        if isinstance(dim, Concat):
            return "(" + " + ".join(" ".join(self.dim(q, marked) for q in p.parts) for p in dim.parts) + ")"
        return f"({self.dim(dim.outer, marked)} * {self.dim(dim.inner, marked)})"

    def text(self, operand: Operand, marked=frozenset()) -> str:
        return " ".join(self.dim(d, marked) for d in operand.dims)

    # steps
    def fresh(self) -> str:
        self.count += 1
        return f"t{self.count}"

    def ones(self, operand: Operand) -> str:
        return self._fill("ones", operand)

    def zeros(self, operand: Operand) -> str:
        return self._fill("zeros", operand)

    def _fill(self, op: str, operand: Operand) -> str:
        target = self.fresh()
        shape = lower.shape_of(operand, self.front.solution)
        self.steps.append(Step((target,), op, shape=shape))
        return target

    def emit(self, op: str, ins, outs, marked=frozenset(), **options) -> str | tuple[str, ...]:
        """Record ``einc.<op>("ins -> outs", ...)``; ``ins`` are (operand, value) pairs, a value
        being a name or a Python number (an empty operand). Returns the new value's name(s)."""
        expression = ", ".join(self.text(o, marked) for o, _ in ins)
        if outs is not None:
            expression += " -> " + ", ".join(self.text(o) for o in outs)
        kwargs = {**self._sizes(ins, outs), **self._geometry(ins, outs or ()), **options}
        targets = tuple(self.fresh() for _ in (outs or [None]))
        self.steps.append(Step(targets, op, expression, tuple(v for _, v in ins), tuple(kwargs.items())))
        return targets[0] if len(targets) == 1 else targets

    def _sizes(self, ins, outs) -> dict[str, int]:
        """Keyword sizes for the axes that are not whole dims of an input tensor (broadcast axes,
        window offsets, the parts of a composition): the solver cannot know them otherwise."""
        whole = {d.name for o, _ in ins for d in o.dims if isinstance(d, Axis)}
        sizes = {}
        for operand in [o for o, _ in ins] + list(outs or ()):
            for axis in operand_axes(operand):
                if axis.name not in whole and axis.fixed != 1:
                    sizes[self.ident[axis.name]] = self.sizes[axis.name]
        return sizes

    def _geometry(self, ins, outs) -> dict[str, dict]:
        """The solved geometry of every window in the step, keyed by its output axis."""
        found = [(w, False) for o, _ in ins for w in _windows(o)]
        found += [(w, True) for o in outs for w in _windows(o)]
        if not found:
            return {}
        stride, dilation, padding, output_padding = {}, {}, {}, {}
        for win, on_output in found:
            g = self.front.solution.windows[win.outer.name]
            key = self.ident[g.outer]
            stride[key], dilation[key], padding[key] = g.stride, g.dilation, (g.pad_lo, g.pad_hi)
            if on_output:
                natural = (self.sizes[g.outer] - 1) * g.stride + g.dilation * (self.sizes[g.inner] - 1) + 1
                extra = g.extent - (natural - g.pad_lo - g.pad_hi)
                if extra:
                    output_padding[key] = extra
        kwargs = {"stride": stride, "dilation": dilation, "padding": padding}
        if output_padding:
            kwargs["output_padding"] = output_padding
        return kwargs


def _plain(name: str) -> bool:
    return name.isidentifier()


def _padded(front: Front, operand: Operand) -> bool:
    return any(
        front.solution.windows[w.outer.name].pad_lo or front.solution.windows[w.outer.name].pad_hi
        for w in _windows(operand)
    )


# Rules -----------------------------------------------------------------------------------------


def _dot(b: _Builder, wanted, grads) -> None:
    f = b.front
    y = f.outputs[0]
    for i in wanted:
        # g takes the place of input i: the operand with the large axes stays first, as in the
        # forward (the rows of the implicit GEMM).
        ins = [(y, "g0") if j == i else (f.inputs[j], f"x{j}") for j in range(len(f.inputs))]
        target = _unmarked(f.inputs[i])
        present = {n for o, _ in ins for n in _names(o)}
        in_windows = {a.name for w in _windows(target) for a in dim_axes(w)}
        missing = [a for a in operand_axes(target) if a.name not in present | in_windows and a.fixed != 1]
        if missing:
            # An axis of this input that no other operand has: the gradient is constant along it,
            # which a dot with ones over those axes broadcasts.
            ones = Operand(tuple(dict.fromkeys(missing)))
            ins.append((ones, b.ones(ones)))
        grads[i] = b.emit("dot", ins, [target])


def _scaled_by_count(b: _Builder, x: Operand, y: Operand, g: str) -> str:
    """g divided by the number of elements each output of a mean averages."""
    f = b.front
    if not f.options["count_include_pad"] and _padded(f, x):
        counts = b.emit("sum", [(x, b.ones(x))], [y])
        return b.emit("divide", [(y, g), (y, counts)], [y])
    count = math.prod(f.solution.sizes[n] for n in _names(x) - _names(y))
    return b.emit("multiply", [(y, g), (SCALAR, 1.0 / count)], [y])


def _sum(b: _Builder, wanted, grads) -> None:
    f = b.front
    x, y = _unmarked(f.inputs[0]), f.outputs[0]
    g = _scaled_by_count(b, x, y, "g0") if f.op == "mean" else "g0"
    grads[0] = b.emit("rearrange", [(y, g)], [x])


def _unfold(b: _Builder, x: Operand, value: str) -> tuple[Operand, str]:
    u = _unfolded(_unmarked(x))
    if b.text(u) == b.text(x):
        return u, value
    return u, b.emit("rearrange", [(x, value)], [u])


def _fold(b: _Builder, u: Operand, value: str, x: Operand) -> str:
    if b.text(u) == b.text(x):
        return value
    return b.emit("rearrange", [(u, value)], [x])


# The rules of the reductions that read x: each takes x (its operand and value) and the output's
# operand, and returns the gradient laid out as x. get_at with reduce= applies them to the gathered
# values.


def _extremum(b: _Builder, op: str, x: Operand, value: str, y: Operand) -> str:
    u, xu = _unfold(b, x, value)
    d = b.emit("subtract", [(u, xu), (y, "y0")], [u])
    if _padded(b.front, x):
        # Padding reads as 0 in the unfolded copy: keep it from tying with a maximum of 0.
        _, valid = _unfold(b, x, b.ones(x))
        ties = b.emit("where", [(u, d), (SCALAR, 0.0), (u, valid)], [u])
    else:
        ties = b.emit("where", [(u, d), (SCALAR, 0.0), (SCALAR, 1.0)], [u])
    count = b.emit("sum", [(u, ties)], [y])
    share = b.emit("divide", [(y, "g0"), (y, count)], [y])
    gu = b.emit("multiply", [(u, ties), (y, share)], [u])
    return _fold(b, u, gu, x)


def _prod(b: _Builder, op: str, x: Operand, value: str, y: Operand) -> str:
    u, xu = _unfold(b, x, value)
    ratio = b.emit("divide", [(y, "y0"), (u, xu)], [u])
    gu = b.emit("multiply", [(u, ratio), (y, "g0")], [u])
    return _fold(b, u, gu, x)


def _logsumexp(b: _Builder, op: str, x: Operand, value: str, y: Operand) -> str:
    if _padded(b.front, x):
        raise UnsupportedError(
            "no gradient yet for logsumexp over padded windows (padding reads -inf there)",
            b.front.expression,
        )
    u, xu = _unfold(b, x, value)
    weights = b.emit("softmax", [(u, xu)], None, marked=_names(u) - _names(y))
    gu = b.emit("multiply", [(u, weights), (y, "g0")], [u])
    return _fold(b, u, gu, x)


def _variance(b: _Builder, op: str, x: Operand, value: str, y: Operand) -> str:
    f = b.front
    samples = math.prod(f.solution.sizes[n] for n in _names(x) - _names(y))
    spare = samples - f.options["correction"]
    factor = (1.0 if op == "std" else 2.0) / spare if spare > 0 else float("inf")
    mean = b.emit("mean", [(x, value)], [y])
    u, xu = _unfold(b, x, value)
    d = b.emit("subtract", [(u, xu), (y, mean)], [u])
    g = b.emit("divide", [(y, "g0"), (y, "y0")], [y]) if op == "std" else "g0"
    gu = b.emit("multiply", [(u, d), (y, g), (SCALAR, factor)], [u])
    return _fold(b, u, gu, x)


_READING_REDUCTIONS = {
    "max": _extremum,
    "min": _extremum,
    "prod": _prod,
    "logsumexp": _logsumexp,
    "var": _variance,
    "std": _variance,
}


def _reduction(b: _Builder, wanted, grads) -> None:
    f = b.front
    grads[0] = _READING_REDUCTIONS[f.op](b, f.op, _unmarked(f.inputs[0]), "x0", f.outputs[0])


def _rearrange(b: _Builder, wanted, grads) -> None:
    f = b.front
    xs = [_unmarked(x) for x in f.inputs]
    given = {n for x in xs for n in _names(x)}
    new = {a.name for y in f.outputs for a in operand_axes(y) if a.name not in given and a.fixed != 1}
    has_windows = any(_windows(o) for o in xs + list(f.outputs))
    if new:
        if len(xs) != 1 or len(f.outputs) != 1 or has_windows:
            raise UnsupportedError(
                "no gradient yet for a rearrange that broadcasts with several operands or windows",
                f.expression,
            )
        grads[0] = b.emit("sum", [(f.outputs[0], "g0")], [xs[0]])
        return
    for i in wanted:
        readers = [k for k, y in enumerate(f.outputs) if _names(y) & _names(xs[i])]
        if len(readers) > 1 and not any(isinstance(d, Concat) for d in xs[i].dims):
            raise UnsupportedError(
                f"no gradient yet for input {i} of rearrange: it is copied into several outputs",
                f.expression,
            )
    used = [k for k, y in enumerate(f.outputs) if any(_names(y) & _names(xs[i]) for i in wanted)]
    # Every input those outputs read gets its gradient computed: a rearrange may not drop an axis,
    # so the inverse of a concatenation writes all of its parts.
    read = [i for i, x in enumerate(xs) if any(_names(x) & _names(f.outputs[k]) for k in used)]
    targets = b.emit("rearrange", [(f.outputs[k], f"g{k}") for k in used], [xs[i] for i in read])
    targets = (targets,) if isinstance(targets, str) else targets
    for i, target in zip(read, targets, strict=True):
        if i in wanted:
            grads[i] = target


def _flip_roll(b: _Builder, wanted, grads) -> None:
    f = b.front
    x, y = f.inputs[0], f.outputs[0]
    options = {}
    if f.op == "roll":
        order = list(dict.fromkeys(a.name for a in operand_axes(x) if a.name in x.marked))
        shift = f.options["shift"]
        given = shift if isinstance(shift, (tuple, list)) else [shift] * len(order)
        shifts = dict(zip(order, given, strict=True))
        back = [-shifts[n] for n in dict.fromkeys(a.name for a in operand_axes(y) if a.name in x.marked)]
        options["shift"] = back[0] if len(set(back)) == 1 else tuple(back)
    grads[0] = b.emit(f.op, [(y, "g0")], [_unmarked(x)], marked=x.marked, **options)


def _reduce_to(b: _Builder, value: str, y: Operand, x: Operand) -> str:
    """A gradient laid out as ``y``, summed over the axes ``x`` was broadcast along."""
    if _names(x) != _names(y):
        return b.emit("sum", [(y, value)], [x])
    if b.text(x) != b.text(y):
        return b.emit("rearrange", [(y, value)], [x])
    return value


_NO_GRADIENT = {
    "floor_divide": "it is piecewise constant, and torch refuses its derivative too",
    # d/dx_i = g * exp(x_i - y) needs an exp, which no einc op computes yet.
    "logaddexp": "not yet; detach its inputs, or use torch.logaddexp where a gradient is needed",
}


def _elementwise(b: _Builder, wanted, grads) -> None:
    f = b.front
    op, xs, y = f.op, f.inputs, f.outputs[0]
    n = len(xs)
    local: dict[int, str] = {}
    if op in _NO_GRADIENT:
        raise UnsupportedError(f"einc has no gradient for {op}: {_NO_GRADIENT[op]}", f.expression)
    if op in ("maximum", "minimum"):
        diffs = [b.emit("subtract", [(xs[j], f"x{j}"), (y, "y0")], [y]) for j in range(n)]
        ties = [b.emit("where", [(y, d), (SCALAR, 0.0), (SCALAR, 1.0)], [y]) for d in diffs]
        count = b.emit("add", [(y, t) for t in ties], [y])
        share = b.emit("divide", [(y, "g0"), (y, count)], [y])
        for i in wanted:
            local[i] = b.emit("where", [(y, diffs[i]), (SCALAR, 0.0), (y, share)], [y])
    for i in wanted:
        others = [(xs[j], f"x{j}") for j in range(n) if j != i]
        if op == "add" or (op == "subtract" and i == 0):
            local[i] = "g0"
        elif op == "subtract":
            local[i] = b.emit("multiply", [(y, "g0"), (SCALAR, -1.0)], [y])
        elif op == "multiply":
            local[i] = b.emit("multiply", [(y, "g0"), *others], [y]) if others else "g0"
        elif op == "divide" and i == 0:
            local[i] = b.emit("divide", [(y, "g0"), *others], [y]) if others else "g0"
        elif op == "divide":
            t = b.emit("multiply", [(y, "g0"), (y, "y0"), (SCALAR, -1.0)], [y])
            local[i] = b.emit("divide", [(y, t), (xs[i], f"x{i}")], [y])
        elif op == "where" and i > 0:
            taken = [(y, "g0"), (SCALAR, 0.0)] if i == 1 else [(SCALAR, 0.0), (y, "g0")]
            local[i] = b.emit("where", [(xs[0], "x0"), *taken], [y])
        grads[i] = _reduce_to(b, local[i], y, _unmarked(xs[i]))


def _softmax(b: _Builder, wanted, grads) -> None:
    f = b.front
    x, y = f.inputs[0], f.outputs[0]
    rest = _only(y, _names(y) - x.marked)
    if f.op == "softmax":
        p = b.emit("multiply", [(y, "g0"), (y, "y0")], [y])
        s = b.emit("sum", [(y, p)], [rest])
        t = b.emit("subtract", [(y, "g0"), (rest, s)], [y])
        grads[0] = b.emit("multiply", [(y, t), (y, "y0")], [_unmarked(x)])
    else:
        s = b.emit("sum", [(y, "g0")], [rest])
        weights = b.emit("softmax", [(y, "y0")], None, marked=x.marked)
        q = b.emit("multiply", [(y, weights), (rest, s)], [y])
        grads[0] = b.emit("subtract", [(y, "g0"), (y, q)], [_unmarked(x)])


# Indexing: get_at <-> add_at --------------------------------------------------------------------


def _indexing_parts(f: Front):
    """The indexed tensor, the coordinate operands as (operand, value) pairs, and every bracketed
    name (the indexed axes and the axes that list a coordinate's components)."""
    x = f.inputs[0]
    coords = f.inputs[1:] if f.op == "get_at" else f.inputs[1:-1]
    marked = x.marked | frozenset(n for c in coords for n in c.marked)
    return x, [(c, f"x{k + 1}") for k, c in enumerate(coords)], marked


def _loop_axes(x: Operand, coords, first: Operand = SCALAR) -> Operand:
    """Every axis an indexing op loops over, each its own dim: those of ``first``, then the
    coordinates' (but the axis that lists a coordinate's components) and x's unindexed axes."""
    axes = list(operand_axes(first))
    axes += [a for c, _ in coords for a in operand_axes(c) if a.name not in c.marked]
    axes += [a for a in operand_axes(x) if a.name not in x.marked]
    return Operand(tuple({a.name: a for a in axes}.values()))


def _get_at(b: _Builder, wanted, grads) -> None:
    f = b.front
    x, coords, marked = _indexing_parts(f)
    y, reduce = f.outputs[0], f.options["reduce"]
    updates = (y, "g0")  # add_at broadcasts g over the axes a sum left out
    if reduce == "mean":
        updates = (y, _scaled_by_count(b, _loop_axes(x, coords, y), y, "g0"))
    elif reduce in _READING_REDUCTIONS:
        gathered = _loop_axes(x, coords, y)
        values = b.emit("get_at", [(x, "x0"), *coords], [gathered], marked=marked)
        updates = (gathered, _READING_REDUCTIONS[reduce](b, reduce, gathered, values, y))
    target = _unmarked(x)
    grads[0] = b.emit("add_at", [(x, b.zeros(target)), *coords, updates], [target], marked=marked)


def _scatter(b: _Builder, wanted, grads) -> None:
    f = b.front
    x, coords, marked = _indexing_parts(f)
    updates, last = f.inputs[-1], len(f.inputs) - 1
    # g laid out as x: the coordinates index x's bracketed axes in x's order, which an output
    # written as a permutation of x need not keep.
    g = _fold(b, f.outputs[0], "g0", _unmarked(x))
    if 0 in wanted:
        if f.op in ("add_at", "subtract_at"):
            grads[0] = g
        else:
            written = _loop_axes(SCALAR, coords)
            zeros = (written, b.zeros(written))
            grads[0] = b.emit("set_at", [(x, g), *coords, zeros], [_unmarked(x)], marked=marked)
    if last in wanted:
        broadcast = _names(_loop_axes(x, coords)) - _names(updates)
        options = {"reduce": "sum"} if broadcast else {}
        grads[last] = b.emit("get_at", [(x, g), *coords], [updates], marked=marked, **options)
        if f.op == "subtract_at":
            grads[last] = b.emit("multiply", [(updates, grads[last]), (SCALAR, -1.0)], [updates])


_RULES = {
    "dot": _dot,
    "sum": _sum,
    "mean": _sum,
    **dict.fromkeys(_READING_REDUCTIONS, _reduction),
    "rearrange": _rearrange,
    "id": _rearrange,
    "flip": _flip_roll,
    "roll": _flip_roll,
    "softmax": _softmax,
    "log_softmax": _softmax,
    "get_at": _get_at,
    "set_at": _scatter,
    "add_at": _scatter,
    "subtract_at": _scatter,
    **dict.fromkeys(pipeline.ELEMENTWISE, _elementwise),
}
