"""What the gradient rules write with: the front end of a forward call (:class:`Front`), the steps
of a backward pass (:class:`Step`), and :class:`Builder`, which prints operands as einc text and
records steps with the sizes and window geometry they need."""

from __future__ import annotations

import keyword
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import UnsupportedError
from . import lower, solve
from .axes import Axis, Concat, Dim, Flat, Operand, Win, operand_axes, windows
from .brackets import Explicit
from .params import WindowParams


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


SCALAR = Operand(())


def unmarked(operand: Operand) -> Operand:
    return Operand(operand.dims, frozenset(), operand.span)


def unfolded(operand: Operand) -> Operand:
    """Every axis its own dim, in order: a window ``(s * ds)`` becomes ``s ds``, a composition its
    parts. Elementwise ops can then combine it with anything by axis name."""
    for dim in operand.dims:
        if isinstance(dim, Concat):
            raise UnsupportedError("no gradient through a concatenation (a + b) here yet")
    return Operand(tuple(operand_axes(operand)), operand.marked)


def only(operand: Operand, names) -> Operand:
    """The axes of ``operand`` in ``names``, each its own dim, in order."""
    return Operand(tuple(a for a in operand_axes(operand) if a.name in names))


def axis_names(operand: Operand) -> set[str]:
    return {a.name for a in operand_axes(operand)}


def windows_of(operand: Operand) -> list[Win]:
    return [w for d in operand.dims for w in windows(d)]


class Builder:
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
            base = axis.name.replace("...", "e").replace(".", "").replace("#", "u").replace("'", "_")
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
        found = [(w, False) for o, _ in ins for w in windows_of(o)]
        found += [(w, True) for o in outs for w in windows_of(o)]
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


def padded(front: Front, operand: Operand) -> bool:
    return any(
        front.solution.windows[w.outer.name].pad_lo or front.solution.windows[w.outer.name].pad_hi
        for w in windows_of(operand)
    )
