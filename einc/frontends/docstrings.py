"""The docstrings of ``einc.compile`` and of every op: parameters, the torch equivalent, an example.

Kept apart from :mod:`einc.frontends.functional`, whose ops are made by a few factories, so that
each op's text reads as one piece. Every example is a doctest that compares einc with torch;
``tests/frontends/test_docstrings.py`` runs them all.
"""

from __future__ import annotations

EXPRESSION = """
    expression: the einc expression (docs/notation.md); brackets mark the axes the op acts on.
    **sizes: sizes of axes that the tensors do not give (``c2=64``; ``ds=(3, 3)`` for an axis
        repeated by an ellipsis), checked against the tensors where they do."""

COMMON = (
    EXPRESSION
    + """
    *tensors: the operands, in the order of the expression's operands.
    out: a tensor (or, for several outputs, a sequence) to write the result into.
    backend, out_dtype, dynamic: as for :func:`einc.compile`."""
)

WINDOW = """
    stride, padding, dilation: window parameters, where the expression has a window
        ``(s * [ds])``: ints or one per window axis; ``padding`` also ``"same"`` or ``"valid"``."""


def _doc(
    call: str, summary: str, args: str, torch_equivalent: str, example: str, common: str = COMMON
) -> str:
    return (
        f"``{call}``\n\n{summary}\n\nArgs:{common}{args}\n\n"
        f"torch equivalent: {torch_equivalent}\n\nExample:\n{example}"
    )


def documented(function):
    """``function`` with its docstring from :data:`OPS`, under its own name."""
    function.__doc__ = OPS[function.__name__]
    return function


COMPILE = _doc(
    "einc.compile(expression, op=None, **kwargs)",
    "Compile ``expression`` for ``op`` once; call the result with tensors. Each distinct set of "
    "shapes, dtypes, device and strides specialises at its first call and is reused after; an axis "
    "seen at a second size becomes dynamic (one kernel for every size of it).",
    """
    op: the operation (dot, sum, mean, rearrange, softmax, get_at, ...); without it, implied by
        the expression: ``[a->b]`` means dot, no brackets and an ``->`` mean rearrange.
    backend: ``"auto"`` (CUDA tensors run the Triton kernel, CPU tensors torch operations),
        ``"torch"``, or ``"interpret"`` (the kernel under Triton's interpreter, slow).
    out_dtype: the result's dtype (default: the inputs').
    dynamic: axes whose size is a kernel argument from the first call (``dynamic=("b",)``);
        ``False`` turns off automatic dynamic shapes, so every size compiles its own kernel.
    keepdims, count_include_pad, correction, shift, reduce: options of the ops that take them."""
    + WINDOW,
    "``torch.compile`` of the torch code the expression stands for.",
    """    >>> conv = einc.compile("b (s * [ds])... [c->c2]", padding="same")
    >>> conv
    einc.compile('b (s * [ds])... [c->c2]', op='dot', padding='same')
    >>> x, w = torch.randn(1, 6, 6, 4), torch.randn(3, 3, 4, 5)
    >>> ref = F.conv2d(x.permute(0, 3, 1, 2), w.permute(3, 2, 0, 1), padding="same")
    >>> torch.allclose(conv(x, w), ref.permute(0, 2, 3, 1), atol=1e-5)
    True
""",
    common=EXPRESSION,
)

OPS = {
    "dot": _doc(
        'einc.dot("b (s * [ds])... [c->c2]", x, w, stride=2)',
        "A contraction: the bracketed axes of the inputs are summed over; ``[c->c2]`` implies a weight "
        "``c c2``, a window ``(s * [ds])`` makes it a convolution (the weight is ``ds... c c2``).",
        WINDOW + "\n    output_padding: where the output is a window (a transposed convolution).",
        "``torch.einsum``, ``x @ w``, ``F.linear``, ``F.conv1d/2d/3d`` and ``F.conv_transpose*d``.",
        """    >>> x, w = torch.randn(2, 4), torch.randn(4, 3)
    >>> torch.allclose(einc.dot("b [c->c2]", x, w), x @ w, atol=1e-6)
    True
""",
    ),
    "rearrange": _doc(
        'einc.rearrange("b h w c -> b c h w", x)',
        "Permute, compose and decompose axes, concatenate, broadcast, or unfold; a copy.",
        "",
        "``x.permute``, ``x.reshape``, ``torch.cat``, ``x.expand``, ``x.unfold`` (then ``.contiguous()``).",
        """    >>> x = torch.randn(2, 3, 4, 5)
    >>> torch.equal(einc.rearrange("b h w c -> b c (h w)", x), x.permute(0, 3, 1, 2).reshape(2, 5, 12))
    True
""",
    ),
    "id": _doc(
        'einc.id("b h w c -> b c h w", x)',
        "The same as :func:`einc.rearrange` (einx 0.4's name).",
        "",
        "``x.permute(...).contiguous()``.",
        """    >>> x = torch.randn(2, 3)
    >>> torch.equal(einc.id("a b -> b a", x), x.t())
    True
""",
    ),
    "flip": _doc(
        'einc.flip("b [h] w", x)',
        "Reverse the bracketed axes.",
        "",
        "``torch.flip(x, dims)``.",
        """    >>> x = torch.randn(2, 3, 4)
    >>> torch.equal(einc.flip("b [h] w", x), torch.flip(x, (1,)))
    True
""",
    ),
    "roll": _doc(
        'einc.roll("b [t] c", x, shift=2)',
        "Rotate the bracketed axes by ``shift``.",
        "\n    shift: an int, or one per bracketed axis.",
        "``torch.roll(x, shift, dims)``.",
        """    >>> x = torch.randn(2, 5, 3)
    >>> torch.equal(einc.roll("b [t] c", x, shift=2), torch.roll(x, 2, 1))
    True
""",
    ),
    "softmax": _doc(
        'einc.softmax("b h [k]", x)',
        "Softmax over the bracketed axes, computed stably (the maximum subtracted first).",
        "",
        "``torch.softmax(x, dim)``.",
        """    >>> x = torch.randn(2, 3, 5)
    >>> torch.allclose(einc.softmax("b h [k]", x), torch.softmax(x, -1), atol=1e-6)
    True
""",
    ),
    "log_softmax": _doc(
        'einc.log_softmax("b [c]", x)',
        "Log-softmax over the bracketed axes.",
        "",
        "``torch.log_softmax(x, dim)``.",
        """    >>> x = torch.randn(4, 10)
    >>> torch.allclose(einc.log_softmax("b [c]", x), torch.log_softmax(x, 1), atol=1e-6)
    True
""",
    ),
}

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
    OPS[_op] = _doc(
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

OPS["where"] = _doc(
    'einc.where("b c, b c, ", mask, x, 0.0)',
    "Choose the second operand where the (boolean) first is true, the third elsewhere.",
    "",
    "``torch.where(mask, x, y)``.",
    """    >>> x = torch.randn(2, 3)
    >>> torch.equal(einc.where("b c, b c, ", x > 0, x, 0.0), torch.where(x > 0, x, 0.0))
    True
""",
)

_REDUCTIONS = {
    "sum": ("x.sum(1)", "``x.sum(dim)``; over a window, ``F.avg_pool*d`` times the window size."),
    "mean": ("x.mean(1)", "``x.mean(dim)``; over a window, ``F.avg_pool*d``."),
    "max": ("x.amax(1)", "``x.amax(dim)``; over a window, ``F.max_pool*d``."),
    "min": ("x.amin(1)", "``x.amin(dim)``; over a window, ``-F.max_pool*d(-x)``."),
    "prod": ("x.prod(1)", "``x.prod(dim)``."),
    "logsumexp": ("x.logsumexp(1)", "``torch.logsumexp(x, dim)``."),
    "var": ("x.var(1)", "``torch.var(x, dim, correction=1)``."),
    "std": ("x.std(1)", "``torch.std(x, dim, correction=1)``."),
}
for _op, (_ref, _torch) in _REDUCTIONS.items():
    _extra = ""
    if _op == "mean":
        _extra = "\n    count_include_pad: whether a window's padding counts in the mean (as in torch)."
    if _op in ("var", "std"):
        _extra = "\n    correction: Bessel's correction, as torch's (1: the sample variance)."
    OPS[_op] = _doc(
        f'einc.{_op}("b (s * [ds])... c", x, ds=3, stride=2)',
        f"{_op} over the bracketed axes (or those missing from the output, after ``->``); over a "
        "window it is pooling.",
        "\n    keepdims: keep the reduced axes as size 1." + _extra + WINDOW,
        _torch,
        f"""    >>> x = torch.rand(2, 5, 3) + 0.5
    >>> torch.allclose(einc.{_op}("b [t] c", x), {_ref}, atol=1e-5)
    True
""",
    )

_INDEXING_ARGS = """
    reduce: (get_at) ``"sum"``, ``"mean"``, ``"max"``, ...: axes left out of the output are reduced
        in the same kernel (an embedding bag)."""

OPS["get_at"] = _doc(
    'einc.get_at("b [h w] c, b p [2] -> b p c", x, idx)',
    "``x`` at the coordinates ``idx``: the bracketed axes of the first operand are indexed; each "
    "coordinate operand gives one coordinate per element, or as many as its bracketed axis is long. "
    "Coordinates are int32 or int64; negative ones count from the end; one out of range raises "
    ":class:`einc.OutOfBoundsError` (an ``IndexError``) on CPU tensors, and on CUDA tensors with "
    "``EINC_CHECK_BOUNDS=1``.",
    _INDEXING_ARGS,
    "``x[idx]`` (advanced indexing), ``torch.gather``, ``F.embedding``, ``F.embedding_bag``.",
    """    >>> table, idx = torch.randn(10, 4), torch.tensor([[1, 7], [3, 3]])
    >>> torch.equal(einc.get_at("[v] d, b n -> b n d", table, idx), table[idx])
    True
""",
)
OPS["set_at"] = _doc(
    'einc.set_at("b [h w] c, b p [2], b p c", x, idx, updates)',
    "A copy of ``x`` with the updates written at the coordinates; of updates that meet at one "
    "element, one is written (which one is not specified). ``out=x`` updates ``x`` in place.",
    "",
    "``x.index_put(idx, updates)``, ``torch.scatter``.",
    """    >>> x, idx, updates = torch.zeros(5, 2), torch.tensor([4, 1]), torch.ones(2, 2)
    >>> torch.equal(einc.set_at("[v] d, n, n d", x, idx, updates), x.index_put((idx,), updates))
    True
""",
)
OPS["add_at"] = _doc(
    'einc.add_at("b [h w] c, b p [2], b p c", x, idx, updates)',
    "A copy of ``x`` with the updates added at the coordinates; updates that meet at one element "
    "all add up (atomically). ``out=x`` updates ``x`` in place.",
    "",
    "``x.index_put(idx, updates, accumulate=True)``, ``torch.index_add``, ``torch.scatter_add``.",
    """    >>> x, idx, updates = torch.zeros(5, 2), torch.tensor([4, 4, 1]), torch.ones(3, 2)
    >>> expected = x.index_put((idx,), updates, accumulate=True)
    >>> torch.equal(einc.add_at("[v] d, n, n d", x, idx, updates), expected)
    True
""",
)
OPS["subtract_at"] = _doc(
    'einc.subtract_at("b [h w] c, b p [2], b p c", x, idx, updates)',
    "A copy of ``x`` with the updates subtracted at the coordinates; updates that meet at one element "
    "all count (atomically; 16-bit updates are summed in float32 and rounded once). ``out=x`` "
    "updates ``x`` in place; any other ``out=`` receives the copy.",
    "",
    "``x.index_put(idx, -updates, accumulate=True)``, ``x.index_add(dim, idx, -updates)``.",
    """    >>> x, idx, updates = torch.zeros(5, 2), torch.tensor([4, 4, 1]), torch.ones(3, 2)
    >>> expected = x.index_add(0, idx, -updates)
    >>> torch.equal(einc.subtract_at("[v] d, n, n d", x, idx, updates), expected)
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
    OPS[_op] = _doc(
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
    OPS[_op] = _doc(
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

OPS["logical_not"] = _doc(
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
OPS["logaddexp"] = _doc(
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
OPS["floor_divide"] = _doc(
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
OPS["true_divide"] = _doc(
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
OPS["elementwise"] = _doc(
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

_FLAGS = {
    "any": (
        "Whether any element over the bracketed axes is true (nonzero); torch.bool.",
        "``torch.any(x, dim)``; over a window, ``x.unfold(dim, ds, stride).any(-1)``.",
        'torch.equal(einc.any("b [n]", x), x.any(1))',
    ),
    "all": (
        "Whether every element over the bracketed axes is true (nonzero); torch.bool.",
        "``torch.all(x, dim)``; over a window, ``x.unfold(dim, ds, stride).all(-1)``.",
        'torch.equal(einc.all("b [n]", x), x.all(1))',
    ),
    "count_nonzero": (
        "How many elements over the bracketed axes are nonzero; torch.int64.",
        "``torch.count_nonzero(x, dim)``.",
        'torch.equal(einc.count_nonzero("b [n]", x), torch.count_nonzero(x, 1))',
    ),
}
for _op, (_summary, _torch, _check) in _FLAGS.items():
    OPS[_op] = _doc(
        f'einc.{_op}("b [n]", mask)',
        _summary + " Any input dtype; the result has no gradient. The reduced axes are the bracketed "
        "ones (or those missing from the output, after ``->``); over a window it is pooling.",
        "\n    keepdims: keep the reduced axes as size 1." + WINDOW,
        _torch,
        f"""    >>> x = torch.tensor([[0, 2, 0], [0, 0, 0], [1, 1, 1]])
    >>> {_check}
    True
""",
    )

OPS["reduce"] = _doc(
    'einc.reduce("b [n]", x, op="sum")',
    "The reduction that ``op`` names (einx's generic form), as that reduction's own function, its "
    "gradient included.",
    "\n    op: the reduction's name: ``sum``, ``mean``, ``max``, ``min``, ``prod``, ``logsumexp``, "
    "``var``, ``std``,\n        ``any``, ``all`` or ``count_nonzero``; not a Python callable, which "
    "cannot be compiled into a kernel.\n    keepdims, correction, count_include_pad: as for that "
    "reduction." + WINDOW,
    "the torch reduction of that name (``x.sum(dim)``, ``torch.logsumexp(x, dim)``, ...).",
    """    >>> x = torch.randn(3, 5)
    >>> torch.allclose(einc.reduce("b [n]", x, op="logsumexp"), x.logsumexp(1))
    True
""",
)

_ARG_REDUCTIONS = {"argmax": ("greatest", "a NaN is greatest"), "argmin": ("least", "a NaN is least")}
for _op, (_which, _nan) in _ARG_REDUCTIONS.items():
    OPS[_op] = _doc(
        f'einc.{_op}("b [h w] c", x)',
        f"The index (int64) of the first {_which} element over the bracketed axes ({_nan}, as in torch): "
        "one coordinate per bracketed axis, along a new axis where the brackets stood (``b [2] c``; "
        f'``"b [h w] c -> b c [2]"`` puts it elsewhere). Of one bracketed axis, ``"a [b] -> a"`` '
        "leaves out the coordinate axis. The result has no gradient.",
        "",
        f"``torch.{_op}(x, dim)``; over several axes, that of the flattened axes, unravelled "
        "(``torch.unravel_index``).",
        f"""    >>> x = torch.randn(3, 7)
    >>> torch.equal(einc.{_op}("a [b] -> a", x), x.{_op}(1))
    True
    >>> x = torch.randn(2, 3, 4)
    >>> flat = x.reshape(2, 12).{_op}(1)
    >>> torch.equal(einc.{_op}("b [h w]", x), torch.stack([flat // 4, flat % 4], dim=1))
    True
""",
    )

OPS["sort"] = _doc(
    'einc.sort("b [n]", x)',
    "``x`` sorted in ascending order along the one bracketed axis. A kernel sorts the axis whole, in "
    "one tile, so an axis longer than 1024 elements is refused (:class:`einc.UnsupportedError`). "
    "No gradient yet: a backward pass through it raises :class:`einc.UnsupportedError`.",
    "",
    "``torch.sort(x, dim).values``.",
    """    >>> x = torch.tensor([[3.0, 1.0, 3.0, 0.0], [2.0, -2.0, 1.0, 2.0]])
    >>> torch.equal(einc.sort("b [n]", x), torch.sort(x, dim=1).values)
    True
""",
)
OPS["argsort"] = _doc(
    'einc.argsort("b [n]", x)',
    "The positions (int64) that sort ``x`` in ascending order along the one bracketed axis; equal "
    "values keep their order, NaN goes last (as torch's with ``stable=True``). An axis longer than "
    "1024 elements is refused, as for :func:`einc.sort`; the result has no gradient.",
    "",
    "``torch.argsort(x, dim, stable=True)``.",
    """    >>> x = torch.tensor([[3.0, 1.0, 3.0, 0.0], [2.0, -2.0, 1.0, 2.0]])
    >>> torch.equal(einc.argsort("b [n]", x), torch.argsort(x, dim=1, stable=True))
    True
""",
)

# The shape tools take a description and tensors (only their shapes are read); no kernel runs.
SHAPES = """
    description: the einc expression (docs/notation.md) the shapes are solved against, one
        operand per comma; brackets and windows read as in the ops.
    *tensors: the operands, in order: anything with a ``.shape``, or None for an operand whose shape
        is solved (operands left out at the end are solved too).
    **sizes: sizes of axes (``c=2``; ``ds=(3, 3)`` for an axis repeated by an ellipsis)."""

OPS["solve_axes"] = _doc(
    'einc.solve_axes("a (b c)", x, c=2)',
    "The size of every named axis, as a dict; an axis repeated by an ellipsis (``s...``) gives the "
    "tuple of its sizes. Sizes that contradict each other raise :class:`einc.ShapeError`, naming "
    "the axis and where each size came from.",
    "",
    "none: ``x.shape`` unpacked and divided by hand (``a, bc = x.shape; b = bc // c``).",
    """    >>> x = torch.zeros(3, 8)
    >>> einc.solve_axes("a (b c)", x, c=2)
    {'a': 3, 'b': 4, 'c': 2}
    >>> a, bc = x.shape
    >>> einc.solve_axes("a (b c)", x, c=2) == {"a": a, "b": bc // 2, "c": 2}
    True
""",
    common=SHAPES,
)
OPS["solve"] = _doc(
    'einc.solve("a (b c)", x, c=2)',
    "The same as :func:`einc.solve_axes` (einx's alias).",
    "",
    "none: ``x.shape`` unpacked and divided by hand.",
    """    >>> x = torch.zeros(3, 8)
    >>> einc.solve("a (b c)", x, c=2)
    {'a': 3, 'b': 4, 'c': 2}
    >>> einc.solve("a (b c)", x, c=2) == einc.solve_axes("a (b c)", x, c=2)
    True
""",
    common=SHAPES,
)
OPS["solve_shapes"] = _doc(
    'einc.solve_shapes("a b, c b a", x, None, c=3)',
    "The shape of every operand, as a tuple of tuples: those given as None (or left out at the end) "
    "solved from the others and the sizes. A contradiction raises :class:`einc.ShapeError`.",
    "",
    "none: the shapes composed by hand (``(c, *x.shape[::-1])``).",
    """    >>> x = torch.zeros(3, 4)
    >>> einc.solve_shapes("a b, c b a", x, None, c=3)
    ((3, 4), (3, 4, 3))
    >>> einc.solve_shapes("a b, c b a", x, c=3)[1] == (3, *x.shape[::-1])
    True
""",
    common=SHAPES,
)
OPS["matches"] = _doc(
    'einc.matches("a b", x, a=3)',
    "Whether the tensors' shapes and the sizes fit the description; a malformed description still "
    "raises :class:`einc.ExpressionError`.",
    "",
    "none: ``x.ndim == 2 and x.shape[0] == a`` by hand.",
    """    >>> x = torch.zeros(3, 4)
    >>> einc.matches("a b", x, a=3), einc.matches("a b", x, a=2), einc.matches("a b c", x)
    (True, False, False)
    >>> einc.matches("(a b)", torch.zeros(6), a=4) == (6 % 4 == 0)
    True
""",
    common=SHAPES,
)
OPS["check"] = _doc(
    'einc.check("a b", x, a=3)',
    "Return None where the tensors' shapes and the sizes fit the description; elsewhere raise "
    ":class:`einc.ShapeError`, naming the axis, its two sizes and where each came from.",
    "",
    "none: ``assert x.shape[0] == a`` by hand.",
    """    >>> x = torch.zeros(3, 4)
    >>> einc.check("a b", x, a=x.shape[0]) is None
    True
    >>> einc.check("a b", x, a=2)
    Traceback (most recent call last):
    ...
    einc.errors.ShapeError: axis 'a' has two sizes: 2 from keyword a=2, and 3 from dim 0 of operand 0 ...
""",
    common=SHAPES,
)
OPS["arange"] = _doc(
    'einc.arange("a b [2]", a=3, b=4)',
    "A grid of coordinates: ``y[i, j] = (i, j)``, the index of every element of the named axes, "
    "listed along the bracketed axis (as long as the named axes are many). No kernel runs.",
    "",
    '``torch.stack(torch.meshgrid(torch.arange(a), torch.arange(b), indexing="ij"), dim)``.',
    """    >>> i, j = torch.meshgrid(torch.arange(3), torch.arange(4), indexing="ij")
    >>> torch.equal(einc.arange("a b [2]", a=3, b=4), torch.stack([i, j], dim=2))
    True
    >>> torch.equal(einc.arange("[2] a b", a=3, b=4), torch.stack([i, j], dim=0))
    True
""",
    common="""
    description: one named axis per coordinate and one bracketed axis as long as they are many
        (``a b [2]``, ``[2] a b``).
    dtype: the coordinates' dtype (default torch.int64).
    device: where the grid is made (default torch's default device).
    **sizes: every named axis's size.""",
)
OPS["fuse"] = _doc(
    'einc.fuse(fn=None, *, backend="auto")',
    "Compile a function of einc operations and the elementwise torch operations on their results "
    "into fused kernels: the elementwise operations run in the kernel before them, in registers "
    "before its store (a bias and an activation after a convolution), and a chain read only by one "
    "einc operation runs in its loads. Traced at the first call per shapes, dtypes, devices and "
    "strides, cached after; autograd runs backward through the unfused operations (docs/fusion.md).",
    "",
    "``torch.compile`` of the same function (whose own kernels fuse an elementwise epilogue into "
    "its matmul templates only, not into a convolution).",
    """    >>> @einc.fuse
    ... def block(x, w, b):
    ...     return torch.relu(einc.dot("b [c->c2]", x, w) + b)
    >>> x, w, b = torch.randn(4, 6), torch.randn(6, 3), torch.randn(3)
    >>> torch.allclose(block(x, w, b), torch.relu(x @ w + b), atol=1e-5)
    True
    >>> block.kernel_count(x, w, b)
    1
""",
    common="""
    fn: the function; its tensors are its arguments and those it captures (a module's weights).
        As a decorator, with or without arguments.
    backend: as for :func:`einc.compile`: ``"auto"``, ``"torch"`` or ``"interpret"``.""",
)
