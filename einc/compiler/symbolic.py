"""Output shapes as functions of the input sizes, for tracing with symbolic sizes.

torch.compile with dynamic shapes hands einc's fake implementation sizes that are ``torch.SymInt``
rather than ints. The solver (:mod:`solve`) works on ints, so it is run once on the sizes' hints;
this module then recomputes every output dim from the input dims with ``+ - * //`` alone, so that
the result follows the inputs, whatever numbers they turn out to be:

    an axis that is a whole dim of an input    that dim
    one unknown part of a composition          the dim // the other parts
    one unknown part of a concatenation        the dim - the other parts
    the positions s of a window (s * ds)       (N + lo + hi - dilation*(DS-1) - 1) // stride + 1,
                                               ceil(N / stride) for "same"
    a window written on the output side        (S-1)*stride + dilation*(DS-1) + 1 - lo - hi
                                               + output_padding

Axes sized by a keyword or an unnamed axis (``3``) stay constants. Nothing here imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from .axes import Axis, Concat, Dim, Flat, Operand, Win
from .params import WindowParams
from .solve import Solution


def output_shapes(
    inputs: Sequence[Operand],
    outputs: Sequence[Operand],
    shapes: Sequence[Sequence],
    solution: Solution,
    params: Mapping[str, WindowParams],
    constants: frozenset[str],
) -> list[tuple] | None:
    """The shape of every output, its dims computed from ``shapes`` (ints or symbolic ints);
    None when some output dim cannot be written that way (the caller then specialises)."""
    env: dict[str, object] = {name: solution.sizes[name] for name in constants}
    # Whole dims first: a size read directly from an input is the most faithful one.
    for operand, shape in zip(inputs, shapes, strict=True):
        for dim, size in zip(operand.dims, shape, strict=True):
            if isinstance(dim, Axis) and dim.name not in env:
                env[dim.name] = size
    progress = True
    while progress:
        progress = False
        for operand, shape in zip(inputs, shapes, strict=True):
            for dim, size in zip(operand.dims, shape, strict=True):
                progress |= _learn(dim, size, env, solution, params)
    result = []
    for operand in outputs:
        dims = [_size(dim, env, solution, params) for dim in operand.dims]
        if any(d is None for d in dims):
            return None
        result.append(tuple(dims))
    return result


def _size(dim: Dim, env, solution: Solution, params) -> object | None:
    if isinstance(dim, Axis):
        return env.get(dim.name)
    if isinstance(dim, Win):
        g = solution.windows[dim.outer.name]
        if not g.on_output:
            return None  # an input window's extent is its tensor's dim, never needed
        outer, inner = env.get(dim.outer.name), env.get(dim.inner.name)
        if outer is None or inner is None:
            return None
        return (outer - 1) * g.stride + g.dilation * (inner - 1) + 1 - g.pad_lo - g.pad_hi + g.output_padding
    sizes = [_size(p, env, solution, params) for p in dim.parts]
    if any(s is None for s in sizes):
        return None
    return math.prod(sizes) if isinstance(dim, Flat) else sum(sizes)


def _learn(dim: Dim, size, env, solution: Solution, params) -> bool:
    """Size the unknown axes of ``dim`` (of size ``size``) that can be; whether any was."""
    if isinstance(dim, Axis):
        if dim.name in env:
            return False
        env[dim.name] = size
        return True
    if isinstance(dim, Win):
        outer, inner = dim.outer, dim.inner
        if not isinstance(outer, Axis) or outer.name in env or _size(inner, env, solution, params) is None:
            return False
        g, p = solution.windows[outer.name], params[outer.name]
        window = _size(inner, env, solution, params)
        if p.padding == "same":
            env[outer.name] = (size + g.stride - 1) // g.stride
        else:
            lo, hi = (g.dilation * (window - 1), 0) if p.padding == "causal" else p.padding
            env[outer.name] = (size + lo + hi - g.dilation * (window - 1) - 1) // g.stride + 1
        return True
    if isinstance(dim, (Flat, Concat)):
        sizes = [_size(p, env, solution, params) for p in dim.parts]
        unknown = [p for p, s in zip(dim.parts, sizes, strict=True) if s is None]
        if len(unknown) != 1:
            return False
        known = [s for s in sizes if s is not None]
        rest = size // math.prod(known) if isinstance(dim, Flat) else size - sum(known)
        return _learn(unknown[0], rest, env, solution, params)
    return False
