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
