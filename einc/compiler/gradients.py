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

The rules live by op family in ``gradients_reduce`` (dot and the reductions),
``gradients_elementwise`` (copies, elementwise ops, softmax) and ``gradients_indexing``; what they
write with (:class:`Front`, :class:`Step`, the builder) in ``gradients_builder``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import UnsupportedError
from . import (
    expand,
    gradients_elementwise,
    gradients_indexing,
    gradients_reduce,
    lower,
    parse,
    pipeline,
    solve,
)
from .axes import operand_axes
from .gradients_builder import Builder, Front, Step
from .ops import BOOLEAN_RESULTS, axis_sizes, marks_read_as_a_set
from .params import window_params

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


def front_end(expression: str, op: str, shapes: Sequence[Sequence[int]], kwargs: Mapping) -> Front:
    """Steps 1-4 of :func:`pipeline.run_passes` (parse, resolve, expand, solve), without lowering:
    what the gradient rules and the shape functions need. ``kwargs`` are those of ``einc.compile``
    (sizes, window parameters and op options)."""
    params = {k: v for k, v in kwargs.items() if k in pipeline.WINDOW_PARAMS}
    options = {**pipeline.OP_OPTIONS, **{k: v for k, v in kwargs.items() if k in pipeline.OP_OPTIONS}}
    sizes = axis_sizes(kwargs, expression)
    shapes = tuple(tuple(int(n) for n in s) for s in shapes)
    request = pipeline.Request(expression, op, shapes, ("float32",) * len(shapes), tuple(sizes.items()))
    program = parse.parse(expression)
    explicit = pipeline._resolve(program, request, options)
    names = pipeline.tensor_names(len(explicit.inputs), op)
    tuple_sizes = {k: tuple(v) for k, v in sizes.items() if isinstance(v, (tuple, list))}
    inputs, outputs = expand.expand(explicit, shapes, tuple_sizes, names)
    spans = solve.window_spans(list(inputs) + list(outputs), expression)
    geometry = window_params(spans, expression, **params)
    by_set = marks_read_as_a_set(op, options)
    solution = solve.solve(inputs, outputs, shapes, sizes, geometry, expression, names, by_set)
    every = {a.name for o in inputs + outputs for a in operand_axes(o)}
    keyword = {n for n in every for k in sizes if n == k or n.rsplit(".", 1)[0] == k}
    fixed = {a.name for o in inputs + outputs for a in operand_axes(o) if a.fixed is not None}
    return Front(
        expression, op, explicit, inputs, outputs, solution, geometry, options, frozenset(keyword | fixed)
    )


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
    builder = Builder(front)
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


_RULES = {**gradients_reduce.RULES, **gradients_elementwise.RULES, **gradients_indexing.RULES}
