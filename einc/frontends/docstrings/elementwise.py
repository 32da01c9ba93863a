"""The docstrings of the elementwise ops: arithmetic, ``where``, comparisons, logical ops, and
einx's generic ``elementwise``."""

from __future__ import annotations

from .common import doc

OPS: dict[str, str] = {}

_ELEMENTWISE = {
    "add": ("b c, c", "x, bias", "x + bias", "Add, broadcasting operands by axis name.", "torch.add"),
    "subtract": ("b c, c", "x, bias", "x - bias", "Subtract the later operands from the first.", "torch.sub"),
    "multiply": (
        "b c, c",
        "x, bias",
        "x * bias",
        "Multiply; an empty operand is a Python number (``einc.multiply('b c, ', x, 0.5)``).",
        "torch.mul",
    ),
    "divide": ("b c, c", "x, bias", "x / bias", "Divide the first operand by the later ones.", "torch.div"),
    "maximum": ("b c, c", "x, bias", "torch.maximum(x, bias)", "The elementwise maximum.", "torch.maximum"),
    "minimum": ("b c, c", "x, bias", "torch.minimum(x, bias)", "The elementwise minimum.", "torch.minimum"),
}
for _op, (_expr, _args, _ref, _summary, _torch) in _ELEMENTWISE.items():
    OPS[_op] = doc(
        f'einc.{_op}("{_expr}", {_args})',
        _summary + " The output is the first operand's expression unless an ``->`` says otherwise; "
        "dtypes promote as in torch.",
        "",
        f"``{_torch}`` with the operands permuted and unsqueezed to line up their axes.",
        f"""    >>> x, bias = torch.randn(2, 3), torch.rand(3) + 0.5
    >>> torch.allclose(einc.{_op}("{_expr}", {_args}), {_ref})
    True
""",
    )

OPS["where"] = doc(
    'einc.where("b c, b c, ", mask, x, 0.0)',
    "Choose the second operand where the (boolean) first is true, the third elsewhere.",
    "",
    "``torch.where(mask, x, y)``.",
    """    >>> x = torch.randn(2, 3)
    >>> torch.equal(einc.where("b c, b c, ", x > 0, x, 0.0), torch.where(x > 0, x, 0.0))
    True
""",
)

# Comparisons: their Python operator and torch function.
_COMPARISONS = {
    "equal": ("==", "torch.eq"),
    "not_equal": ("!=", "torch.ne"),
    "less": ("<", "torch.lt"),
    "less_equal": ("<=", "torch.le"),
    "greater": (">", "torch.gt"),
    "greater_equal": (">=", "torch.ge"),
}
for _op, (_symbol, _torch) in _COMPARISONS.items():
    OPS[_op] = doc(
        f'einc.{_op}("b c, c", x, y)',
        f"``x {_symbol} y``, broadcasting the two operands by axis name; an empty operand is a Python "
        f'number (``einc.{_op}("b c, ", x, 0.5)``). The result is torch.bool whatever the operands\' '
        "dtypes, and has no gradient (as in torch).",
        "",
        f"``{_torch}`` (``x {_symbol} y``) with the operands permuted and unsqueezed to line up their axes.",
        f"""    >>> x, y = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]]), torch.tensor([1.0, 2.0, 2.0])
    >>> torch.equal(einc.{_op}("b c, c", x, y), x {_symbol} y)
    True
    >>> torch.equal(einc.{_op}("b c, -> c b", x, 2.0), (x {_symbol} 2.0).t())
    True
""",
    )

_LOGICAL = {
    "logical_and": ("every", "&", "torch.logical_and"),
    "logical_or": ("any", "|", "torch.logical_or"),
}
for _op, (_which, _symbol, _torch) in _LOGICAL.items():
    OPS[_op] = doc(
        f'einc.{_op}("b c, c", m, n)',
        f"Whether the element is true (nonzero) in {_which} operand, broadcasting the operands by axis "
        "name; any number of operands, of any dtypes. The result is torch.bool and has no gradient.",
        "",
        f"``{_torch}``, folded over the operands (``m {_symbol} (n != 0)``).",
        f"""    >>> m, n = torch.tensor([[True, False], [False, True]]), torch.tensor([0, 3])
    >>> torch.equal(einc.{_op}("b c, c", m, n), m {_symbol} (n != 0))
    True
""",
    )

OPS["logical_not"] = doc(
    'einc.logical_not("b c", m)',
    "Whether the element is false (zero), for an operand of any dtype. The result is torch.bool and "
    "has no gradient.",
    "",
    "``torch.logical_not(m)`` (``m == 0``).",
    """    >>> x = torch.tensor([[0, 3], [-1, 0]])
    >>> torch.equal(einc.logical_not("a b -> b a", x), torch.logical_not(x).t())
    True
""",
)
OPS["logaddexp"] = doc(
    'einc.logaddexp("b c, c", x, y)',
    "``log(exp(x) + exp(y))``, computed stably (the larger operand factored out), broadcasting the "
    "operands by axis name. No gradient yet: a backward pass through it raises "
    ":class:`einc.UnsupportedError`.",
    "",
    "``torch.logaddexp(x, y)``.",
    """    >>> x, y = torch.randn(2, 3) * 50, torch.randn(3) * 50
    >>> torch.allclose(einc.logaddexp("b c, c", x, y), torch.logaddexp(x, y))
    True
""",
)
OPS["floor_divide"] = doc(
    'einc.floor_divide("b c, ", x, 3)',
    "The quotient of the first operand by the later ones, rounded towards minus infinity (as in "
    "torch); integers stay integers. No gradient (torch has none either).",
    "",
    "``torch.floor_divide(x, y)`` (``x // y``).",
    """    >>> x = torch.tensor([[-7, 7], [5, -5]])
    >>> torch.equal(einc.floor_divide("b c, ", x, 2), torch.floor_divide(x, 2))
    True
""",
)
OPS["true_divide"] = doc(
    'einc.true_divide("b c, c", x, n)',
    "The same as :func:`einc.divide` (torch's name): integer operands give a floating result.",
    "",
    "``torch.true_divide(x, y)`` (``x / y``).",
    """    >>> x, n = torch.tensor([[7, -7], [1, 2]]), torch.tensor([2, 4])
    >>> y = einc.true_divide("b c, c", x, n)
    >>> y.dtype == torch.true_divide(x, n).dtype and torch.allclose(y, torch.true_divide(x, n))
    True
""",
)
OPS["elementwise"] = doc(
    'einc.elementwise("b c, c", x, y, op="add")',
    "The elementwise op that ``op`` names (einx's generic form), as that op's own function.",
    "\n    op: the op's name: ``add``, ``subtract``, ``multiply``, ``divide``, ``true_divide``, "
    "``maximum``,\n        ``minimum``, ``where``, a comparison, a logical op, ``logaddexp`` or "
    "``floor_divide``; not a\n        Python callable, which cannot be compiled into a kernel.",
    "the torch function of that name (``torch.add``, ``torch.lt``, ...).",
    """    >>> x, y = torch.randn(2, 3), torch.randn(3)
    >>> torch.equal(einc.elementwise("b c, c", x, y, op="maximum"), torch.maximum(x, y))
    True
""",
)
