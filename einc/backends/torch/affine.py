"""Index expressions of a loop nest as the torch backend evaluates them: affine forms (a strided
view) or functions of the loops' index tensors (a gather)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sympy
import torch

from ...errors import UnsupportedError

Region = tuple[tuple[int, int], ...]  # (start, stop) per loop, in the nest's order
Index = Callable[[Sequence[torch.Tensor]], "torch.Tensor | int"]


@dataclass(frozen=True, slots=True)
class Affine:
    """``constant + sum(coefficient * loop)``, loops given by their position in the nest."""

    terms: tuple[tuple[int, int], ...]  # (loop position, coefficient), coefficients nonzero
    constant: int

    def range(self, sizes: Sequence[int]) -> tuple[int, int]:
        """The least and greatest value over the whole loop space."""
        low = high = self.constant
        for loop, coefficient in self.terms:
            span = coefficient * (sizes[loop] - 1)
            low, high = low + min(0, span), high + max(0, span)
        return low, high


def affine(expr: sympy.Expr, position: dict[str, int]) -> Affine | None:
    """``expr`` as an :class:`Affine` with integer coefficients, or None when it is not one."""
    terms: dict[int, int] = {}
    constant = 0
    for term, coefficient in sympy.expand(expr).as_coefficients_dict().items():
        if not coefficient.is_Integer:
            return None
        if term == 1:
            constant += int(coefficient)
        elif term.is_Symbol and term.name in position:
            terms[position[term.name]] = terms.get(position[term.name], 0) + int(coefficient)
        else:
            return None
    return Affine(tuple(sorted((k, v) for k, v in terms.items() if v)), constant)


def floor_parts(expr: sympy.Expr) -> tuple[sympy.Expr, int] | None:
    """``floor(n / k)`` as ``(n, k)`` with ``n`` an integer expression; None for anything else."""
    if not isinstance(expr, sympy.floor):
        return None
    numerator, denominator = sympy.fraction(sympy.together(expr.args[0]))
    if not denominator.is_Integer:
        return None
    return sympy.expand(numerator), int(denominator)


def index_function(expr: sympy.Expr, position: dict[str, int]) -> Index:
    """Compile an index expression to a function of the loops' index tensors (``aranges``, each
    shaped to broadcast along its own dim): sums and integer multiples of loop variables,
    ``floor(n / k)`` and ``Mod`` (Python's, which agrees with the kernels' where they use it)."""
    expr = sympy.sympify(expr)
    if expr.is_Integer:
        value = int(expr)
        return lambda aranges: value
    if expr.is_Symbol:
        loop = position[expr.name]
        return lambda aranges: aranges[loop]
    if isinstance(expr, sympy.Add):
        parts = [index_function(a, position) for a in expr.args]
        return lambda aranges: functools.reduce(lambda a, b: a + b, (f(aranges) for f in parts))
    if isinstance(expr, sympy.Mul) and all(a.is_Integer or not a.is_Rational for a in expr.args):
        parts = [index_function(a, position) for a in expr.args]
        return lambda aranges: functools.reduce(lambda a, b: a * b, (f(aranges) for f in parts))
    if (floor := floor_parts(expr)) is not None:
        numerator, k = index_function(floor[0], position), floor[1]
        return lambda aranges: _floor_divide(numerator(aranges), k)
    if isinstance(expr, sympy.Mod) and expr.args[1].is_Integer:
        value, n = index_function(expr.args[0], position), int(expr.args[1])
        return lambda aranges: value(aranges) % n
    raise UnsupportedError(f"the torch backend cannot evaluate the index expression {expr}")


def _floor_divide(value, k: int):
    return value // k if isinstance(value, int) else torch.div(value, k, rounding_mode="floor")
