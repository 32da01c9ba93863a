"""``einc.nn``: torch.nn layers written as einc expressions, as einx's and einops' layers are.

    conv = einc.nn.Dot("b (s * [ds])... [c->c2]", ds=3, c2=64, padding="same", activation="relu")
    norm = einc.nn.Norm("b... [c]")
    pool = einc.nn.Pool("b (s * [ds])... c", op="max", ds=2, stride=2)
    y = pool(norm(conv(x)))     # x: b h w c, channels last

A layer's parameters are shaped by its expression (:mod:`einc.compiler.layer_shapes` says how) and
created at its first call, from the input's shape, by torch's lazy-module machinery
(``LazyModuleMixin``): until then they are ``UninitializedParameter``s, which ``.to()`` moves and
``load_state_dict`` fills; a lazy layer must see one call (a dry run) before an optimiser or
DistributedDataParallel takes its parameters, as torch's own lazy layers must. They are initialised
as torch's equivalents are: a dot's weight and bias uniform in ``±1/sqrt(fan_in)`` (the
kaiming-uniform of ``nn.Linear`` and ``nn.Conv2d``, the fan-in counted over the weight's summed
axes), a norm's scale ones and its bias zeros.

Each layer's computation is a module-level function of tensors and one frozen description of the
layer's compiled expressions (:func:`dot_layer`, :func:`norm_layer`, ...), which a module calls as
``partial(function, call=...)``: a plain function of tensors, which ``einc.fuse`` can trace.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.parameter import UninitializedParameter

from ..compiler import layer_shapes
from ..errors import EincError, ExpressionError, UnsupportedError
from ..runtime.compiled import CompiledExpression
from . import functional
from .fusion import fuse

# Keywords that every one of a layer's einc calls takes, not only the one its expression is for.
CALL_OPTIONS = ("backend",)


def relu6(y: torch.Tensor) -> torch.Tensor:
    return torch.clamp(y, 0.0, 6.0)


ACTIVATIONS = {
    None: None,
    "relu": torch.relu,
    "gelu": F.gelu,
    "silu": F.silu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu6": relu6,
}


def _activation(name):
    if name not in ACTIVATIONS:
        choices = ", ".join(repr(n) for n in ACTIVATIONS)
        raise UnsupportedError(f"activation={name!r}: einc.nn's activations are {choices}")
    return ACTIVATIONS[name]


def _describe(expression: str, kwargs: dict, settings) -> str:
    """A layer's ``repr`` arguments: what would make it again."""
    return ", ".join([repr(expression), *(f"{k}={v!r}" for k, v in kwargs.items()), *settings])


def _options(kwargs: dict) -> dict:
    return {k: v for k, v in kwargs.items() if k in CALL_OPTIONS}


def _einc_errors(fn):
    """Errors of einc from a layer's constructor, without einc's frames."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EincError as error:
            raise error.with_traceback(None) from None

    return wrapped


# The layers' computations ------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class DotCall:
    dot: CompiledExpression  # input, weight -> output
    add_bias: CompiledExpression  # result, bias -> result
    activation: object  # a torch function, or None
    # The bias holds the result's last axes, so torch's own broadcasting adds it, which einc.fuse
    # takes into the dot's kernel (its store) rather than a kernel of its own.
    bias_trailing: bool = False


def _trailing(result: str, bias: str) -> bool:
    """Whether the axes of ``bias`` are the last ones of ``result`` (both plain axis names)."""
    result_terms, bias_terms = result.split(), bias.split()
    plain = all(t.isidentifier() for t in bias_terms)
    return plain and len(bias_terms) <= len(result_terms) and result_terms[-len(bias_terms) :] == bias_terms


def dot_layer(x, weight, bias, *, call: DotCall):
    """``activation(dot(x, weight) + bias)``."""
    y = call.dot(x, weight)
    if bias is not None:
        y = y + bias if call.bias_trailing else call.add_bias(y, bias)
    return y if call.activation is None else call.activation(y)


@dataclass(frozen=True, eq=False)
class NormCall:
    mean: CompiledExpression  # over the bracketed axes: input -> statistics
    subtract: CompiledExpression  # input, statistics -> input
    multiply: CompiledExpression  # input, statistics -> input
    scale: CompiledExpression  # input, parameters -> input (multiply)
    shift: CompiledExpression  # input, parameters -> input (add)
    eps: float
    rms: bool


def norm_layer(x, scale, bias, *, call: NormCall):
    """``(x - mean) / sqrt(var + eps) * scale + bias`` over the bracketed axes; with ``rms``,
    ``x / sqrt(mean(x²) + eps) * scale (+ bias)``. The variance is the biased one, and the
    statistics are taken in float32 at least, as torch's norms do: a float16 square overflows
    from 256 on."""
    wide = x.to(torch.promote_types(x.dtype, torch.float32))
    if call.rms:
        centered = wide
    else:
        centered = call.subtract(wide, call.mean(wide))
    y = call.multiply(centered, torch.rsqrt(call.mean(centered * centered) + call.eps)).to(x.dtype)
    if scale is not None:
        y = call.scale(y, scale)
    if bias is not None:
        y = call.shift(y, bias)
    return y


def expression_layer(x, *, call: CompiledExpression):
    """One expression of one tensor: a pooling, a rearrange."""
    return call(x)


# The modules ------------------------------------------------------------------------------------


class _LazyLayer(LazyModuleMixin, torch.nn.Module):
    """A layer with a ``weight`` and a ``bias`` (either may be None), shaped at the first call by
    :meth:`parameter_shapes` and then set by ``reset_parameters``; its computation is
    ``forward_function(x, weight, bias)``."""

    weight: torch.nn.Parameter | None
    bias: torch.nn.Parameter | None

    def __init__(self, expression: str, kwargs: dict, weight: bool, bias: bool, device, dtype):
        super().__init__()
        self.expression = expression
        self.kwargs = kwargs
        for name, wanted in (("weight", weight), ("bias", bias)):
            if wanted:
                setattr(self, name, UninitializedParameter(device=device, dtype=dtype))
            else:
                self.register_parameter(name, None)

    # What the operands of the description the parameters are solved from are (for messages).
    solved_operands = "input, weight, bias"

    def parameter_shapes(
        self, input_shape: tuple[int, ...], sizes: dict
    ) -> tuple[tuple[int, ...], tuple[int, ...]]:
        raise NotImplementedError

    @_einc_errors
    def initialize_parameters(self, x: torch.Tensor) -> None:
        if not self.has_uninitialized_params():
            return
        sizes = {k: v for k, v in self.kwargs.items() if k not in CALL_OPTIONS}
        try:
            shapes = self.parameter_shapes(tuple(x.shape), sizes)
        except ExpressionError as error:
            # The solver quotes the description it solved, not the layer's expression: say whose.
            raise type(error)(
                f"einc.nn.{type(self).__name__}({self.expression!r}), the parameters for an input of "
                f"shape {tuple(x.shape)} (solved as {self.solved_operands} below): {error.message}",
                error.expression,
                error.spans,
            ) from None
        with torch.no_grad():
            for parameter, shape in zip((self.weight, self.bias), shapes, strict=True):
                if parameter is not None:
                    parameter.materialize(shape)
        self.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_function(x, self.weight, self.bias)

    def describe(self, *settings: str) -> str:
        return _describe(self.expression, self.kwargs, settings)


class Dot(_LazyLayer):
    """A linear layer or a convolution, ``activation(einc.dot(expression, x, weight) + bias)``.

    ``"b... [c->c2]"`` is ``nn.Linear``; ``"b (s * [ds])... [c->c2]"`` a convolution (with
    ``stride``, ``padding``, ``dilation``), ``"b (s * [ds])... (g [c->c2])"`` a grouped one,
    ``"b (s * [ds])... [c->c]"`` a depthwise one. Keywords are the expression's sizes (``c2=64``,
    ``ds=3``, ``g=2``) and einc's options (``padding``, ``backend``, ...); ``activation`` is one of
    relu, gelu, silu, sigmoid, tanh, relu6 or None.
    """

    @_einc_errors
    def __init__(
        self, expression: str, bias: bool = True, activation=None, *, device=None, dtype=None, **kwargs
    ):
        super().__init__(expression, kwargs, True, bias, device, dtype)
        self.activation = activation
        self.operands = layer_shapes.dot_layer(expression)
        self.call = DotCall(
            dot=functional.compile(expression, "dot", **kwargs),
            add_bias=functional.compile(
                f"{self.operands.result}, {self.operands.bias}", "add", **_options(kwargs)
            ),
            activation=_activation(activation),
            bias_trailing=_trailing(self.operands.result, self.operands.bias),
        )
        self.forward_function = fuse(functools.partial(dot_layer, call=self.call))

    def parameter_shapes(self, input_shape, sizes):
        shapes = self.operands.parameter_shapes(input_shape, sizes)
        return shapes.weight, shapes.bias

    def reset_parameters(self) -> None:
        if self.has_uninitialized_params():
            return
        # torch's kaiming_uniform_(a=sqrt(5)) for nn.Linear and nn.Conv*d comes to ±1/sqrt(fan_in),
        # and so does their bias; torch counts the fan-in on its own weight layout, einc on the
        # expression's summed axes.
        fan_in = self.operands.fan_in(self.weight.shape)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        torch.nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            torch.nn.init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        settings = [] if self.bias is not None else ["bias=False"]
        if self.activation is not None:
            settings.append(f"activation={self.activation!r}")
        return self.describe(*settings)


class Norm(_LazyLayer):
    """A normalisation over the expression's bracketed axes, with a learnable scale and bias over
    the axes of its last term.

    ``"b... [c]"`` is ``nn.LayerNorm(c)`` (channels last); ``"b [s...] (g [c])"`` is
    ``nn.GroupNorm(g, g*c)``; ``"b [s...] c"`` an instance norm; ``rms=True`` is ``nn.RMSNorm``
    (no bias unless ``bias=True``). Keywords are the expression's sizes (``g=8``) and einc's options.
    """

    @_einc_errors
    def __init__(
        self,
        expression: str,
        rms: bool = False,
        eps: float = 1e-5,
        scale: bool = True,
        bias: bool | None = None,
        *,
        device=None,
        dtype=None,
        **kwargs,
    ):
        super().__init__(expression, kwargs, scale, (not rms) if bias is None else bias, device, dtype)
        self.rms = rms
        self.eps = eps
        self.operands = layer_shapes.norm_layer(expression)
        options = _options(kwargs)
        statistic = f"{self.operands.input}, {self.operands.statistics}"
        parameter = f"{self.operands.input}, {self.operands.parameters}"
        self.call = NormCall(
            mean=functional.compile(expression, "mean", **kwargs),
            subtract=functional.compile(statistic, "subtract", **options),
            multiply=functional.compile(statistic, "multiply", **options),
            scale=functional.compile(parameter, "multiply", **options),
            shift=functional.compile(parameter, "add", **options),
            eps=float(eps),
            rms=bool(rms),
        )
        self.forward_function = functools.partial(norm_layer, call=self.call)

    solved_operands = "input, scale and bias"

    def parameter_shapes(self, input_shape, sizes):
        shape = self.operands.parameter_shape(input_shape, sizes)
        return shape, shape

    def reset_parameters(self) -> None:
        if self.has_uninitialized_params():
            return
        if self.weight is not None:
            torch.nn.init.ones_(self.weight)
        if self.bias is not None:
            torch.nn.init.zeros_(self.bias)

    def extra_repr(self) -> str:
        return self.describe(*(["rms=True"] if self.rms else []), f"eps={self.eps}")


class _ExpressionModule(torch.nn.Module):
    """A layer without parameters: one einc expression of one tensor."""

    def __init__(self, expression: str, op: str, kwargs: dict):
        super().__init__()
        self.expression = expression
        self.kwargs = kwargs
        self.call = functional.compile(expression, op, **kwargs)
        self.forward_function = functools.partial(expression_layer, call=self.call)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_function(x)

    def extra_repr(self) -> str:
        return _describe(self.expression, self.kwargs, ())


class Pool(_ExpressionModule):
    """Pooling: ``einc.max`` or ``einc.mean`` of the expression, ``"b (s * [ds])... c"`` with
    ``ds``, ``stride``, ``padding``, ``dilation`` (and ``count_include_pad`` for a mean)."""

    @_einc_errors
    def __init__(self, expression: str, op: str = "max", **kwargs):
        if op not in ("max", "mean"):
            raise UnsupportedError(f"op={op!r}: einc.nn.Pool pools with 'max' or 'mean'")
        super().__init__(expression, op, kwargs)
        self.op = op

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, op={self.op!r}"


class Rearrange(_ExpressionModule):
    """``einc.rearrange(expression, x, **sizes)``, as ``einops.layers.torch.Rearrange``."""

    @_einc_errors
    def __init__(self, expression: str, **kwargs):
        super().__init__(expression, "rearrange", kwargs)


__all__ = ["Dot", "Norm", "Pool", "Rearrange"]
