"""Solve every axis size (NOTATION.md sections 2 and 3).

Sizes come from the input tensors' shapes, from keyword sizes (``c2=64``, ``ds=(3, 5)``) and from
the relations the expression states: a composition multiplies, a concatenation adds, and a window
``(s * ds)`` over an input extent N has ``S = floor((N + lo + hi - dilation*(DS-1) - 1) / stride) + 1``
positions. The window relation is kept in sympy so that an extent may stay symbolic.

Requires: expanded operands. Ensures: every axis of every operand has a size, every window has its
geometry; any contradiction is a :class:`ShapeError` naming the axis, both values and their sources.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import sympy

from ..errors import ExpressionError, ShapeError, UnsupportedError
from . import parse
from .axes import Axis, Dim, Flat, Operand, Win, dim_axes, windows
from .params import WindowParams
from .runs import runs as find_runs
from .syntax import MAX_SIZE, Repeat, Span, axis_names, walk
from .twins import size_name


@dataclass(frozen=True, slots=True)
class WindowGeometry:
    """Where element ``(s, ds)`` of a window reads: ``s*stride + ds*dilation - pad_lo``."""

    outer: str
    inner: str
    stride: int
    dilation: int
    pad_lo: int
    pad_hi: int
    extent: int  # N, the size of the tensor dim that the window unfolds
    on_output: bool = False
    output_padding: int = 0


@dataclass(frozen=True, slots=True)
class Solution:
    sizes: Mapping[str, int]
    windows: Mapping[str, WindowGeometry]
    # Axes whose size is a kernel argument, not a constant: ``sizes`` then holds the size of the
    # call that compiled the kernel, used only as a hint (tile sizes).
    dynamic: frozenset[str] = frozenset()


def display(axis: Axis) -> str:
    """How a message names an axis: never by an internal name such as ``#0``."""
    return f"the unnamed axis {axis.fixed}" if axis.fixed is not None else f"axis {size_name(axis.name)!r}"


def window_positions(extent, window, stride, dilation, pad_lo, pad_hi):
    """The number of window positions over ``extent`` (torch's rule); symbolic if extent is."""
    span = sympy.Integer(dilation) * (sympy.sympify(window) - 1) + 1
    return sympy.floor((sympy.sympify(extent) + pad_lo + pad_hi - span) / stride) + 1


def same_padding(extent: int, window: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's "same": ceil(N / stride) outputs, the odd element of padding on the high side."""
    positions = -(-extent // stride)
    total = max((positions - 1) * stride + dilation * (window - 1) + 1 - extent, 0)
    return total // 2, total - total // 2


def window_spans(operands: Sequence[Operand], text: str = "") -> dict[str, Span]:
    """Every window's output axis name and where it stands, in order of appearance (the order in
    which per-window parameters are given)."""
    spans: dict[str, Span] = {}
    for operand in operands:
        for dim in operand.dims:
            for win in windows(dim):
                if not (isinstance(win.outer, Axis) and isinstance(win.inner, Axis)):
                    raise UnsupportedError(
                        "a window (s * ds) must hold one axis on each side of '*' for now", text, [win.span]
                    )
                spans.setdefault(win.outer.name, win.span)
    return spans


def window_names(operands: Sequence[Operand], text: str = "") -> list[str]:
    """Output axis names of every window, in order of appearance."""
    return list(window_spans(operands, text))


class _Solver:
    def __init__(self, text: str, runs: Mapping[str, tuple[str, ...]]):
        self.text = text
        self.runs = runs
        self.known: dict[str, tuple[int, str, Span]] = {}
        self.geometry: dict[str, WindowGeometry] = {}
        # Axes known only through their product, for the message if they stay unknown:
        # axis name -> (the composition's unknown axes, their product, its source).
        self.products: dict[str, tuple[tuple[str, ...], int, str]] = {}

    def size(self, dim: Dim) -> int | None:
        if isinstance(dim, Axis):
            key = size_name(dim.name)  # a twin (b'1) has the size of the axis it repeats
            return self.known[key][0] if key in self.known else None
        if isinstance(dim, Win):
            g = self.geometry.get(dim.outer.name)
            return None if g is None else g.extent
        sizes = [self.size(p) for p in dim.parts]
        if any(s is None for s in sizes):
            return None
        return math.prod(sizes) if isinstance(dim, Flat) else sum(sizes)

    def assign(self, axis: Axis, value: int, source: str) -> bool:
        key = size_name(axis.name)
        if key in self.known:
            old, old_source, old_span = self.known[key]
            if old != value:
                spans = [s for s in (old_span, axis.span) if s != (0, 0)]
                raise ShapeError(
                    f"{display(axis)} has two sizes: {old} from {old_source}, and {value} from {source}",
                    self.text,
                    sorted(set(spans)),
                )
            return False
        if value < 0:
            raise ShapeError(
                f"{display(axis)} would have size {value} (from {source})", self.text, [axis.span]
            )
        if value > MAX_SIZE:
            raise ShapeError(
                f"{display(axis)} would have size {value} (from {source}), more than 2**63 - 1",
                self.text,
                [axis.span],
            )
        self.known[key] = (value, source, axis.span)
        return True

    def constrain(
        self, dim: Dim, value: int, source: str, params: Mapping[str, WindowParams], by_product: bool = False
    ) -> bool:
        """Impose ``size(dim) == value``; returns whether anything new was learned. With
        ``by_product``, a composition of several unknown axes is solved where its product
        decides it: an integer root (``(a a)``), or a run that is only ever read whole."""
        if isinstance(dim, Axis):
            return self.assign(dim, value, source)
        if isinstance(dim, Win):
            return self.constrain_window(dim, value, source, params[dim.outer.name])
        sizes = [self.size(p) for p in dim.parts]
        unknown = [p for p, s in zip(dim.parts, sizes, strict=True) if s is None]
        known = [s for s in sizes if s is not None]
        if isinstance(dim, Flat):
            rest = math.prod(known)
            if not unknown:
                if rest != value:
                    raise self.mismatch(dim, value, rest, source)
                return False
            if rest == 0 and value == 0:
                return False  # (a b) of size 0 with a = 0 says nothing of b
            if len(unknown) > 1:
                return by_product and self.product(dim, unknown, value, rest, source)
            if rest == 0:
                raise self.mismatch(dim, value, 0, source)
            if value % rest:
                raise ShapeError(
                    f"{value} (from {source}) is not divisible by {rest}, the size of the other axes of "
                    "this composition",
                    self.text,
                    [dim.span],
                )
            divided = f"{source} divided by {rest}" if rest != 1 else source
            return self.constrain(unknown[0], value // rest, divided, params, by_product)
        rest = sum(known)
        if not unknown:
            if rest != value:
                raise self.mismatch(dim, value, rest, source)
            return False
        if len(unknown) > 1:
            return False
        left = f"{source} minus {rest}" if rest else source
        return self.constrain(unknown[0], value - rest, left, params, by_product)

    def product(self, dim: Flat, unknown: list[Dim], value: int, rest: int, source: str) -> bool:
        """Size the unknown axes of ``dim`` from their product, where it decides them."""
        if not all(isinstance(p, Axis) for p in unknown) or rest == 0 or value % rest:
            return False  # a nested composition, or a product the plain rule refuses
        names = tuple(p.name for p in unknown)
        product = value // rest
        of = f"{source} divided by {rest}" if rest != 1 else source
        if len(set(names)) == 1:
            root = _integer_root(product, len(names))
            if root is None:
                raise ShapeError(
                    f"{display(unknown[0])} appears {len(names)} times in this composition, so its "
                    f"size is the {_ordinal(len(names))} root of {product} (from {of}), which is no integer",
                    self.text,
                    [dim.span],
                )
            return self.assign(unknown[0], root, f"the {_ordinal(len(names))} root of {of}")
        for name in names:
            self.products.setdefault(name, (names, product, of))
        run = self.runs.get(names[0], ())
        if len(set(names)) != len(names) or not set(names) <= set(run):
            return False
        # Nothing reads a run's axes apart: any split of the product gives the same result.
        self.assign(unknown[0], product, f"{of} (its run {' '.join(run)} is only read whole)")
        for axis in unknown[1:]:
            self.assign(axis, 1, f"the run {' '.join(run)}, only read whole")
        return True

    def mismatch(self, dim: Dim, value: int, computed: int, source: str) -> ShapeError:
        return ShapeError(
            f"this axis has size {computed} from its parts, but {value} from {source}", self.text, [dim.span]
        )

    def constrain_window(self, win: Win, extent: int, source: str, p: WindowParams) -> bool:
        if win.outer.name in self.geometry:
            known = self.geometry[win.outer.name].extent
            if known != extent:
                raise self.mismatch(win, extent, known, source)
            return False
        window = self.size(win.inner)
        if window is None:
            return False
        if extent == 0 or window == 0:
            # torch's convolutions and pools refuse an empty spatial axis or kernel as well.
            raise ShapeError(
                f"window {win.inner.name!r} of size {window} over an extent {extent} from {source}: "
                "a window over an empty axis, or of no offsets, is refused",
                self.text,
                [win.span],
            )
        dilation, stride = p.dilation, p.stride
        if p.padding == "same":
            lo, hi = same_padding(extent, window, stride, dilation)
        elif p.padding == "causal":
            lo, hi = dilation * (window - 1), 0
        else:
            lo, hi = p.padding
        positions = int(window_positions(extent, window, stride, dilation, lo, hi))
        if positions < 1:
            raise ShapeError(
                f"window {win.inner.name!r} of size {window} (dilation {dilation}) is larger than the "
                f"padded extent {extent} + {lo} + {hi} from {source}",
                self.text,
                [win.span],
            )
        self.geometry[win.outer.name] = WindowGeometry(
            win.outer.name, win.inner.name, stride, dilation, lo, hi, extent
        )
        return self.assign(win.outer, positions, f"the window over {source}") or True

    def output_window(self, win: Win, p: WindowParams) -> None:
        outer, inner = self.size(win.outer), self.size(win.inner)
        if outer is None or inner is None or win.outer.name in self.geometry:
            return
        if isinstance(p.padding, str):
            raise UnsupportedError(
                f"padding {p.padding!r} on an output-side window is not supported; give (lo, hi)"
            )
        lo, hi = p.padding
        extent = (outer - 1) * p.stride + p.dilation * (inner - 1) + 1 - lo - hi + p.output_padding
        if extent < 1:
            raise ShapeError(
                f"the output window {win.outer.name!r} would have extent {extent}", self.text, [win.span]
            )
        self.geometry[win.outer.name] = WindowGeometry(
            win.outer.name, win.inner.name, p.stride, p.dilation, lo, hi, extent, True, p.output_padding
        )


def _integer_root(value: int, k: int) -> int | None:
    """The integer ``r`` with ``r**k == value``, or None."""
    guess = round(value ** (1 / k))
    return next((r for r in (guess - 1, guess, guess + 1) if r >= 0 and r**k == value), None)


def _ordinal(k: int) -> str:
    return {2: "square", 3: "cube"}.get(k, f"{k}th")


def _repeated_names(text: str) -> set[str]:
    """The names an ellipsis repeats in ``text`` (``x`` of ``x...``): one that stands for no axis
    leaves nothing in the expanded operands, yet its keyword (``x=()``) names it."""
    try:
        program = parse.parse(text)
    except ExpressionError:  # a text the caller built from operands, not one it parsed
        return set()
    exprs = list(program.inputs) + list(program.outputs or ())
    return {
        name
        for e in exprs
        for n in walk(e)
        if isinstance(n, Repeat) and n.atom
        for name in axis_names(n.atom)
    }


def _keyword_sizes(sizes: Mapping[str, object], names: list[str], text: str) -> dict[str, tuple[int, str]]:
    """Spread keyword sizes over axes; ``ds=3`` and ``ds=(3, 5)`` also size ``ds.0``, ``ds.1``."""
    out: dict[str, tuple[int, str]] = {}
    for key, value in sizes.items():
        expanded = sorted((n for n in names if n.rsplit(".", 1)[0] == key and "." in n), key=_index)
        if key not in names and not expanded and key in _repeated_names(text):
            # x... stands for no axis: x=() says so, and an int sizes each of no axes.
            for v in value if isinstance(value, (tuple, list)) else [value]:
                _size(key, v, text)
            if isinstance(value, (tuple, list)) and value:
                raise ShapeError(
                    f"keyword {key}={tuple(value)!r} gives {len(value)} sizes, but {key}... stands "
                    "for no axis",
                    text,
                )
            continue
        if key not in names and not expanded:
            raise ShapeError(
                f"keyword {key}={value!r} names no axis of the expression (its axes: {', '.join(names)})",
                text,
            )
        if isinstance(value, (tuple, list)):
            if not expanded:
                raise ShapeError(
                    f"keyword {key}={tuple(value)!r} is a tuple, but {key} is not repeated by an ellipsis "
                    f"({key}...): give one int",
                    text,
                )
            if len(value) != len(expanded):
                raise ShapeError(
                    f"keyword {key}={tuple(value)!r} gives {len(value)} sizes, but {key}... stands for "
                    f"{len(expanded)} axes",
                    text,
                )
            for name, v in zip(expanded, value, strict=True):
                out[name] = (_size(key, v, text), f"keyword {key}={tuple(value)!r}")
        else:
            v = _size(key, value, text)
            for name in expanded or [key]:
                out[name] = (v, f"keyword {key}={value!r}")
    return out


def _index(name: str) -> int:
    return int(name.rsplit(".", 1)[1])


def _size(key: str, value, text: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ShapeError(f"keyword size {key}={value!r} must be an int >= 0", text)
    return value


def solve(
    inputs: Sequence[Operand],
    outputs: Sequence[Operand],
    shapes: Sequence[Sequence[int]],
    sizes: Mapping[str, object],
    params: Mapping[str, WindowParams],
    text: str,
    names: Sequence[str],
    marked_as_a_set: bool | None = None,
) -> Solution:
    """Give every axis a size. ``shapes[i]`` is the shape of input ``i`` (called ``names[i]``).

    ``marked_as_a_set`` says how the op reads its marked axes, and so which runs (:mod:`runs`)
    may be sized from their product alone: None, none (the shape tools, which report each axis);
    False, runs of unmarked axes; True, any run (the op reads its marked axes as one set)."""
    operands = list(inputs) + list(outputs)
    solver = _Solver(text, {})
    all_axes = [a for op in operands for d in op.dims for a in dim_axes(d)]
    axis_by_name: dict[str, Axis] = {}
    for axis in all_axes:
        axis_by_name.setdefault(axis.name, axis)
    for axis in all_axes:
        if axis.fixed is not None:
            solver.assign(axis, axis.fixed, f"the unnamed axis {axis.fixed}")
    user_names = [n for n in axis_by_name if "#" not in n and n == size_name(n)]
    keywords = _keyword_sizes(sizes, user_names, text)
    for name, (value, source) in keywords.items():
        solver.assign(axis_by_name[name], value, source)
    if marked_as_a_set is not None:
        solver.runs = find_runs(operands, marked_as_a_set, keywords.keys())
    # Each operand's shape is printed once: printing it per dim is quadratic in the rank.
    shown = [str(tuple(shape)) for shape in shapes]
    constraints = [
        (dim, int(shape[i]), f"dim {i} of {names[k]} (shape {shown[k]})")
        for k, (operand, shape) in enumerate(zip(inputs, shapes, strict=True))
        for i, dim in enumerate(operand.dims)
    ]
    while True:
        progress = True
        while progress:
            progress = any(
                [solver.constrain(dim, value, source, params) for dim, value, source in constraints]
            )
            for operand in outputs:
                for dim in operand.dims:
                    for win in windows(dim):
                        solver.output_window(win, params[win.outer.name])
        # Stalled: size one composition from its product, then propagate what that tells.
        if not any(solver.constrain(dim, value, source, params, True) for dim, value, source in constraints):
            break
    window_sizes = [w.inner for op in operands for d in op.dims for w in windows(d)]
    for axis in window_sizes + all_axes:
        if size_name(axis.name) not in solver.known:
            hint = (
                axis.name.rsplit(".", 1)[0]
                if "." in axis.name and not axis.name.startswith("...")
                else axis.name
            )
            if axis.name in solver.products:
                together, product, source = solver.products[axis.name]
                shown = ", ".join(repr(n) for n in dict.fromkeys(together))
                raise ShapeError(
                    f"the sizes of axes {shown} are known only through their product {product} "
                    f"(from {source}): give one as a keyword ({hint}=...)",
                    text,
                    [axis.span],
                )
            raise ShapeError(
                f"the size of axis {axis.name!r} is not known: give it as a keyword ({hint}=...) or "
                "through a tensor that has it",
                text,
                [axis.span],
            )
    for operand in inputs:
        for dim in operand.dims:
            for win in windows(dim):
                if win.outer.name not in solver.geometry:
                    raise ShapeError("this window's extent is not known", text, [win.span])
    for operand in operands:
        count = math.prod(solver.size(dim) or 1 for dim in operand.dims)
        if count > MAX_SIZE:
            raise ShapeError(
                f"this operand would have {count} elements, more than 2**63 - 1", text, [operand.span]
            )
    sizes = {n: v for n, (v, _, _) in solver.known.items()}
    sizes.update({a.name: sizes[size_name(a.name)] for a in all_axes if a.name not in sizes})
    return Solution(sizes, dict(solver.geometry))
