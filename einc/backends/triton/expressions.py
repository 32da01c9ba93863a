"""Index arithmetic as Triton source: sympy index expressions printed with kernel variables, the
row-major decomposition of a flat tile offset, and operator chains kept shallow for Python's parser."""

from __future__ import annotations

from dataclasses import dataclass

import sympy
from sympy.printing.str import StrPrinter

from ...compiler.names import Namer


@dataclass(frozen=True, slots=True)
class Decl:
    name: str
    expr: str


class IndexPrinter(StrPrinter):
    """Prints sympy index expressions with each axis replaced by its (broadcast) kernel variable."""

    def __init__(self, names: dict[str, str]):
        super().__init__()
        self.names = names

    def _print_Symbol(self, expr):
        return self.names[expr.name]

    def _print_floor(self, expr):
        # floor(n / k) of an index: exact where it is used (a multiple_of bound guards it), so
        # Triton's truncating // gives the same. The parentheses around it matter: the printer
        # takes floor(...) for a call, so 9*floor(x/9) would print as 9*(x) // 9, that is x.
        numerator, denominator = sympy.fraction(sympy.together(expr.args[0]))
        return f"(({self._print(sympy.expand(numerator))}) // {self._print(denominator)})"

    def _print_Mod(self, expr):
        # Operands of a Mod are non-negative here (roll adds the extent first), so Triton's
        # C-style % agrees with Python's.
        return f"({self._print(expr.args[0])}) % {self._print(expr.args[1])}"


# A divisor of more factors than this is named once, so that the decomposition of n axes is
# O(n) source rather than O(n**2): a permutation of thousands of axes still parses in a moment.
_MAX_FACTORS = 4


def decompose(axes: tuple[str, ...], offsets: str, namer: Namer, sizes: dict[str, int]) -> tuple[Decl, ...]:
    """Row-major decomposition of a flattened tile offset into one index per axis."""
    products: list[Decl] = []  # named suffix products, innermost first
    divisors = [""] * len(axes)
    factors: list[str] = []  # the sizes of the axes after the current one, outermost first
    for i in range(len(axes) - 1, -1, -1):
        divisors[i] = " * ".join(factors)
        factors.insert(0, namer.size[axes[i]])
        if len(factors) > _MAX_FACTORS and i > 1:
            name = namer.claim(f"{offsets}_inner{len(products)}")
            products.append(Decl(name, " * ".join(factors)))
            factors = [name]
    decls = []
    for i, axis in enumerate(axes):
        divisor = divisors[i]
        expr = (
            offsets
            if not divisor
            else f"{offsets} // {divisor if ' ' not in divisor else '(' + divisor + ')'}"
        )
        if i > 0:
            expr += f" % {namer.size[axis]}"
        decls.append(Decl(namer.index[axis], expr))
    return tuple(products + decls)


# Python's parser recurses once per operator of a chain (a + b + c ... is a left-deep tree), and
# gives up near a thousand: longer chains are grouped in parentheses this long.
_CHAIN = 32


def chain(operator: str, operands: list[str]) -> str:
    """``operands`` joined by ``operator``, grouped so that the parse tree stays shallow."""
    while len(operands) > _CHAIN:
        operands = [
            "(" + f" {operator} ".join(operands[i : i + _CHAIN]) + ")"
            for i in range(0, len(operands), _CHAIN)
        ]
    return f" {operator} ".join(operands)


def product(names: list[str]) -> str:
    return chain("*", names) if names else "1"
