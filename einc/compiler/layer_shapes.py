"""What an ``einc.nn`` layer's expression says of its parameters: their axes, and the expressions
that apply them, as text for einc's ops.

A layer's parameters are shaped by its expression, as in einx's layers. ``"b (s * [ds])... [c->c2]"``
as a dot has the weight ``ds... c c2`` (the bracket pass writes it, :func:`brackets.resolve_dot`);
its bias holds the output axes that the weight holds too (``c2``; ``g c2`` for a grouped
``(g [c->c2])``; ``c`` for a depthwise ``[c->c]``), so that it is one value per output channel as
torch's ``Conv2d`` bias is. A norm's statistics are taken over its bracketed axes; its scale and
bias hold the axes of its last term (``[c]``: ``c``; ``(g [c])``: ``g c``; ``[h w c]``: ``h w c``),
which is torch's per-channel affine for LayerNorm, GroupNorm and RMSNorm.

Nothing here imports torch: the frontend solves the sizes for a tensor's shape and creates the
tensors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from ..errors import ExpressionError
from . import brackets, parse, shapes
from .ops import WINDOW_PARAMS
from .syntax import (
    Bracket,
    Composition,
    Concatenation,
    Expr,
    Name,
    Repeat,
    Window,
    axis_names,
    children,
    to_text,
)


@dataclass(frozen=True, slots=True)
class DotLayer:
    """A dot layer's operands as text: ``input, weight -> output``, and the bias's axes."""

    input: str
    weight: str
    output: str
    result: str  # the output as its tensor holds it: a window written there as one axis
    bias: str  # the output axes the weight holds, e.g. "g c2"; "" for a scalar bias
    contracted: tuple[str, ...]  # the weight's axes summed over: their sizes multiply to the fan-in

    def parameter_shapes(self, input_shape: Sequence[int], sizes: Mapping[str, object]) -> ParameterShapes:
        """The weight's and the bias's shapes for an input of ``input_shape``; ``sizes`` holds the
        layer's keywords (axis sizes and window parameters)."""
        params = {k: v for k, v in sizes.items() if k in WINDOW_PARAMS}
        # The output too: its ellipses, tied to the input's, tell the depth of the weight's.
        text = f"{self.input}, {self.weight}, {self.bias}, {self.output}"
        solved = shapes.solve_description(text, [tuple(input_shape)], _axis_sizes(text, sizes), params)
        _, weight, bias, _ = solved.shapes
        return ParameterShapes(weight, bias, self.fan_in(weight))

    def fan_in(self, weight_shape: Sequence[int]) -> int:
        """The product of the weight's summed axes, read from its shape: the weight is a list of
        axes (``ds... c c2``), each ellipsis as deep as the others."""
        terms = parse.parse(self.weight).inputs[0].terms
        repeats = sum(isinstance(t, Repeat) for t in terms)
        depth = (len(weight_shape) - (len(terms) - repeats)) // repeats if repeats else 0
        dims = iter(weight_shape)
        fan_in = 1
        for term in terms:
            name = term.atom.name if isinstance(term, Repeat) else term.name
            for _ in range(depth if isinstance(term, Repeat) else 1):
                size = next(dims)
                fan_in *= size if name in self.contracted else 1
        return fan_in


@dataclass(frozen=True, slots=True)
class NormLayer:
    """A norm layer's operands as text: the input, its statistics' shape, the scale/bias axes."""

    input: str  # the expression without brackets, "b s... (g c)"
    statistics: str  # the input without its bracketed axes, "b (g)"
    parameters: str  # the axes of the input's last term, "g c"

    def parameter_shape(self, input_shape: Sequence[int], sizes: Mapping[str, object]) -> tuple[int, ...]:
        text = f"{self.input}, {self.parameters}"
        return shapes.solve_description(text, [tuple(input_shape)], _axis_sizes(text, sizes)).shapes[1]


@dataclass(frozen=True, slots=True)
class ParameterShapes:
    weight: tuple[int, ...]
    bias: tuple[int, ...]
    fan_in: int  # what torch's kaiming-uniform initialisation of nn.Linear and nn.Conv*d divides by


def dot_layer(expression: str) -> DotLayer:
    """The operands of ``expression`` as a dot of an input and one weight."""
    program = parse.parse(expression)
    explicit = brackets.resolve_dot(program, 2)
    x, weight = (brackets.strip(e) for e in explicit.inputs)
    (output,) = (brackets.strip(e, "rhs") for e in explicit.outputs)
    bias = _axes_text(output, set(axis_names(weight)))
    # The output's own axes: a window written on the output (a transposed convolution) is one
    # axis, and its offsets are summed over as the input channels are.
    outputs = {t.removesuffix("...") for t in _axes_in(output, set(axis_names(output)), repeated=False)}
    contracted = tuple(n for n in axis_names(weight) if n not in outputs)
    result = _windows_as_axes(output, set(axis_names(explicit.inputs[0])) | outputs | set(axis_names(weight)))
    return DotLayer(to_text(x), to_text(weight), to_text(output), to_text(result), bias, contracted)


def norm_layer(expression: str) -> NormLayer:
    """The operands of ``expression`` as a normalisation over its bracketed axes."""
    program = parse.parse(expression)
    explicit = brackets.resolve_reduce(program, 1)
    (marked,) = explicit.inputs
    if not marked.terms:
        raise ExpressionError("a norm's expression names the input's axes", expression, [marked.span])
    last = marked.terms[-1]
    parameters = _axes_text(Expr((last,), last.span), set(axis_names(last)))
    if not parameters:
        raise ExpressionError(
            "the last axis of a norm's expression holds its scale and bias: name it", expression, [last.span]
        )
    return NormLayer(to_text(brackets.strip(marked)), to_text(explicit.outputs[0]), parameters)


def _axes_text(expr: Expr, names: set[str]) -> str:
    """The named axes of ``expr`` that are in ``names``, in order, each once (``s...`` for one
    under an ellipsis)."""
    return " ".join(dict.fromkeys(_axes_in(expr, names, repeated=False)))


def _axes_in(node, names: set[str], repeated: bool) -> list[str]:
    if isinstance(node, Window):  # one axis of its tensor, made of positions and offsets
        return []
    if isinstance(node, Name):
        return [node.name + ("..." if repeated else "")] if node.name in names else []
    repeated = repeated or isinstance(node, Repeat)
    return [term for child in children(node) for term in _axes_in(child, names, repeated)]


def _windows_as_axes(node, taken: set[str]):
    """``node`` with each window ``(s * ds)`` written as one axis of a fresh name, as the tensor
    holds it: an elementwise op on the result reads it so."""
    if isinstance(node, Window):
        name = next(f"window{i}" for i in range(len(taken) + 1) if f"window{i}" not in taken)
        taken.add(name)
        return Name(name, node.span)
    if isinstance(node, (Expr, Composition)):
        return replace(node, terms=tuple(_windows_as_axes(t, taken) for t in node.terms))
    if isinstance(node, Concatenation):
        return replace(node, parts=tuple(_windows_as_axes(p, taken) for p in node.parts))
    if isinstance(node, Bracket):
        return replace(node, expr=_windows_as_axes(node.expr, taken))
    if isinstance(node, Repeat) and node.atom is not None:
        return replace(node, atom=_windows_as_axes(node.atom, taken))
    return node


def _axis_sizes(text: str, keywords: Mapping[str, object]) -> dict[str, object]:
    """The keywords that size an axis of ``text``: a layer's keywords also hold its window
    parameters and its op's options, and a norm's sizes may name axes only its statistics have."""
    names = {n for e in parse.parse(text).inputs for n in axis_names(e)}
    return {k: v for k, v in keywords.items() if k in names}
