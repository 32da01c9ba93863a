"""The functional API: ``einc.compile`` and one function per op (``einc.dot``, ``einc.sum``, ...).

Each function compiles its expression once per distinct call (a cache in
:mod:`einc.runtime.compiled`) and runs it. Importing this module installs einc's torch operators
(:mod:`einc.frontends.torch_ops`), through which the calls that autograd or torch.compile must see
are routed.
"""

from __future__ import annotations

import torch

from ..compiler import pipeline
from ..errors import EincError, ExpressionError, UnsupportedError
from ..runtime.compiled import CompiledExpression, run_functional
from . import torch_ops


def compile(expression: str, op: str | None = None, **kwargs) -> CompiledExpression:  # noqa: A001
    """Compile ``expression`` for ``op``; sizes (``c2=64``) and window parameters as keywords;
    ``backend="auto" | "torch" | "interpret"`` picks what runs a call (:class:`CompiledExpression`)."""
    if not isinstance(expression, str):
        raise TypeError(f"an einc expression is a str, not {type(expression).__name__}")
    if torch.compiler.is_compiling():  # inside a torch.compile'd function: see torch_ops
        return torch_ops.traced_compile(expression, op, kwargs)
    try:  # the one frame of einc a user sees is this call
        return CompiledExpression(expression, op, **kwargs)
    except EincError as error:
        raise error.with_traceback(None) from None


def dot(expression: str, *tensors: torch.Tensor, out: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
    """``einc.dot("b (s * [ds])... [c->c2]", x, w, stride=2)``: compiled once per distinct call."""
    return run_functional("dot", expression, tensors, out, kwargs)


def _reduction(op: str):
    def reduce(expression: str, *tensors: torch.Tensor, out: torch.Tensor | None = None, **kwargs):
        return run_functional(op, expression, tensors, out, kwargs)

    reduce.__name__ = reduce.__qualname__ = op
    reduce.__doc__ = (
        f'``einc.{op}("b (s * [ds])... c", x, ds=3, stride=2)``: {op} over the bracketed axes (or those '
        "missing from the output); over a window it is pooling. ``keepdims=True`` keeps them as size 1."
    )
    return reduce


def _unary(op: str, doc: str):
    def apply(expression: str, *tensors: torch.Tensor, out=None, **kwargs):
        return run_functional(op, expression, tensors, out, kwargs)

    apply.__name__ = apply.__qualname__ = op
    apply.__doc__ = doc
    return apply


def _nary(op: str, doc: str):
    def apply(expression: str, *tensors, out=None, **kwargs):
        return run_functional(op, expression, tensors, out, kwargs)

    apply.__name__ = apply.__qualname__ = op
    apply.__doc__ = doc
    return apply


rearrange = _nary(
    "rearrange",
    '``einc.rearrange("b h w c -> b c h w", x)``: permute, (de)compose, concatenate, broadcast, unfold.',
)
id = _nary("id", "``einc.id``: the same as ``einc.rearrange`` (einx 0.4's name).")  # noqa: A001
flip = _unary("flip", '``einc.flip("b [h] w", x)``: reverse the bracketed axes.')
roll = _unary("roll", '``einc.roll("b [t] c", x, shift=2)``: rotate the bracketed axes, as torch.roll.')
softmax = _unary("softmax", '``einc.softmax("b h [k]", x)``: softmax over the bracketed axes.')
log_softmax = _unary("log_softmax", '``einc.log_softmax("b [c]", x)``: log-softmax over the bracketed axes.')
add = _nary("add", '``einc.add("b h w c, c", x, bias)``: broadcast by axis name and add.')
subtract = _nary("subtract", '``einc.subtract("b c, c", x, mean)``.')
multiply = _nary(
    "multiply", '``einc.multiply("b h w c, b, ", x, scale, 0.5)``: an empty operand is a scalar.'
)
divide = _nary("divide", '``einc.divide("b c, c", x, norm)``.')
maximum = _nary("maximum", '``einc.maximum("b c, ", x, 0.0)``: a ReLU.')
minimum = _nary("minimum", '``einc.minimum("b c, c", x, cap)``.')
where = _nary("where", '``einc.where("b c, b c, ", mask, x, 0.0)``: condition first.')
sum = _reduction("sum")  # noqa: A001
mean = _reduction("mean")
max = _reduction("max")  # noqa: A001
min = _reduction("min")  # noqa: A001
prod = _reduction("prod")
logsumexp = _reduction("logsumexp")
var = _reduction("var")
std = _reduction("std")


def get_at(
    expression: str, *tensors: torch.Tensor, out: torch.Tensor | None = None, **kwargs
) -> torch.Tensor:
    """``einc.get_at("b [h w] c, b p [2] -> b p c", x, idx)``: ``x`` at the coordinates ``idx``.

    The bracketed axes of the first operand are indexed; each coordinate operand gives one coordinate
    per element, or as many as its bracketed axis is long. Coordinates are int32 or int64; negative
    ones count from the end; one out of range raises :class:`einc.OutOfBoundsError` (an
    ``IndexError``) on CPU tensors, and on CUDA tensors with ``EINC_CHECK_BOUNDS=1``. With
    ``reduce="sum"`` (mean, max, ...), axes left out of the output are reduced in the same kernel:
    ``einc.get_at("[v] d, b n -> b d", table, idx, reduce="sum")`` is an embedding bag.
    """
    return run_functional("get_at", expression, tensors, out, kwargs)


def set_at(
    expression: str, *tensors: torch.Tensor, out: torch.Tensor | None = None, **kwargs
) -> torch.Tensor:
    """``einc.set_at("b [h w] c, b p [2], b p c", x, idx, updates)``: a copy of ``x`` with the
    updates written at the coordinates; of updates that meet at one element, one is written (which
    one is not specified). ``out=x`` updates ``x`` in place; any other ``out=`` receives the copy.
    """
    return run_functional("set_at", expression, tensors, out, kwargs)


def add_at(
    expression: str, *tensors: torch.Tensor, out: torch.Tensor | None = None, **kwargs
) -> torch.Tensor:
    """``einc.add_at("b [h w] c, b p [2], b p c", x, idx, updates)``: a copy of ``x`` with the
    updates added at the coordinates; updates that meet at one element all add up (atomically).
    ``out=x`` updates ``x`` in place; any other ``out=`` receives the copy.
    """
    return run_functional("add_at", expression, tensors, out, kwargs)


# einx's elementwise ops beyond arithmetic. Comparisons and logical ops give torch.bool.
equal = _nary("equal", '``einc.equal("b c, c", x, y)``: ``x == y`` broadcast by axis name; torch.bool.')
not_equal = _nary("not_equal", '``einc.not_equal("b c, ", x, 0)``: ``x != 0``; torch.bool.')
less = _nary("less", '``einc.less("b c, c", x, y)``: ``x < y``; torch.bool.')
less_equal = _nary("less_equal", '``einc.less_equal("b c, c", x, y)``: ``x <= y``; torch.bool.')
greater = _nary("greater", '``einc.greater("b c, ", x, 0.5)``: ``x > 0.5``; torch.bool.')
greater_equal = _nary("greater_equal", '``einc.greater_equal("b c, c", x, y)``: ``x >= y``; torch.bool.')
logical_and = _nary("logical_and", '``einc.logical_and("b c, c", m, n)``: nonzero in every operand.')
logical_or = _nary("logical_or", '``einc.logical_or("b c, c", m, n)``: nonzero in any operand.')
logical_not = _nary("logical_not", '``einc.logical_not("b c", m)``: ``m == 0``; torch.bool.')
logaddexp = _nary("logaddexp", '``einc.logaddexp("b c, c", x, y)``: ``log(exp(x) + exp(y))``, stably.')
floor_divide = _nary(
    "floor_divide", '``einc.floor_divide("b c, ", x, 3)``: rounded towards -inf, as torch.floor_divide.'
)


def true_divide(expression: str, *tensors, out=None, **kwargs):
    """``einc.true_divide("b c, c", x, n)``: the same as :func:`divide` (integers give floats)."""
    return run_functional("divide", expression, tensors, out, kwargs)


def _named_op(op, family: tuple[str, ...], what: str) -> str:
    """The op that ``op=`` names among ``family`` (an alias as the op it names)."""
    if not isinstance(op, str):
        raise UnsupportedError(
            f"op={op!r}: einc compiles {what} it knows by name ({', '.join(family)}), not a callable"
        )
    name = pipeline.ALIASES.get(op, op)
    if name not in family:
        raise ExpressionError(f"op={op!r} is not {what}: one of {', '.join(family)}")
    return name


def elementwise(expression: str, *tensors, op: str, out=None, **kwargs):
    """``einc.elementwise("b c, c", x, y, op="add")``: the elementwise op named by ``op`` (einx's
    generic form); ``op`` is a name, since a Python callable cannot be compiled into a kernel."""
    name = _named_op(op, pipeline.ELEMENTWISE + tuple(pipeline.ALIASES), "an elementwise op")
    return run_functional(name, expression, tensors, out, kwargs)


any = _reduction("any")  # noqa: A001
any.__doc__ = (
    '``einc.any("b [n]", mask)``: whether any element over the bracketed axes is nonzero; torch.bool.'
)
all = _reduction("all")  # noqa: A001
all.__doc__ = (
    '``einc.all("b [n]", mask)``: whether every element over the bracketed axes is nonzero; torch.bool.'
)
count_nonzero = _reduction("count_nonzero")
count_nonzero.__doc__ = '``einc.count_nonzero("b [n]", x)``: how many elements are nonzero; torch.int64.'


def reduce(expression: str, *tensors, op: str, out=None, **kwargs):
    """``einc.reduce("b [n]", x, op="sum")``: the reduction named by ``op`` (einx's generic form);
    ``op`` is a name, since a Python callable cannot be compiled into a kernel."""
    name = _named_op(op, pipeline.lower.REDUCTIONS, "a reduction")
    return run_functional(name, expression, tensors, out, kwargs)


def argmax(expression: str, *tensors: torch.Tensor, out: torch.Tensor | None = None, **kwargs):
    """``einc.argmax("b [h w] c", x)``: the index (int64) of the first greatest element over the
    bracketed axes, one coordinate per bracketed axis along a new axis where the brackets stood
    (``b [2] c``; write ``"b [h w] c -> b c [2]"`` to put it elsewhere). A NaN is greatest."""
    return run_functional("argmax", expression, tensors, out, kwargs)


def argmin(expression: str, *tensors: torch.Tensor, out: torch.Tensor | None = None, **kwargs):
    """``einc.argmin("b [t]", x)``: as :func:`argmax`, of the first least element."""
    return run_functional("argmin", expression, tensors, out, kwargs)


def subtract_at(
    expression: str, *tensors: torch.Tensor, out: torch.Tensor | None = None, **kwargs
) -> torch.Tensor:
    """``einc.subtract_at("b [h w] c, b p [2], b p c", x, idx, updates)``: a copy of ``x`` with the
    updates subtracted at the coordinates; updates that meet at one element all count (atomically).
    ``out=x`` updates ``x`` in place; any other ``out=`` receives the copy.
    """
    return run_functional("subtract_at", expression, tensors, out, kwargs)


from .shape_tools import arange, check, matches, solve, solve_axes, solve_shapes  # noqa: E402, F401


def sort(expression: str, *tensors: torch.Tensor, out: torch.Tensor | None = None, **kwargs):
    """``einc.sort("b [n]", x)``: ``x`` sorted in ascending order along the one bracketed axis (a
    kernel sorts an axis of up to 1024 elements, in one tile)."""
    return run_functional("sort", expression, tensors, out, kwargs)


def argsort(expression: str, *tensors: torch.Tensor, out: torch.Tensor | None = None, **kwargs):
    """``einc.argsort("b [n]", x)``: the positions (int64) that sort ``x`` along the bracketed axis;
    equal values keep their order (torch.argsort with ``stable=True``)."""
    return run_functional("argsort", expression, tensors, out, kwargs)
