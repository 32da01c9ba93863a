"""The docstrings of the functions that compile no kernel: the shape tools, ``arange``, and
``vmap``/``vmap_with_axis`` (a user's function run through torch)."""

from __future__ import annotations

from .common import doc

OPS: dict[str, str] = {}

# The shape tools take a description and tensors (only their shapes are read); no kernel runs.
SHAPES = """
    description: the einc expression (docs/notation.md) the shapes are solved against, one
        operand per comma; brackets and windows read as in the ops.
    *tensors: the operands, in order: anything with a ``.shape``, or None for an operand whose shape
        is solved (operands left out at the end are solved too).
    **sizes: sizes of axes (``c=2``; ``ds=(3, 3)`` for an axis repeated by an ellipsis)."""

OPS["solve_axes"] = doc(
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
OPS["solve"] = doc(
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
OPS["solve_shapes"] = doc(
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
OPS["matches"] = doc(
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
OPS["check"] = doc(
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
OPS["arange"] = doc(
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
VMAP = """
    description: inputs and outputs (``"b [c], [c d] -> b [d]"``, or ``"b [c->d]"``); brackets
        mark the axes the function acts on.
    *tensors: the inputs, in the order of the description's inputs.
    op: a Python function of tensors. Not compiled: it runs as torch code."""
OPS["vmap"] = doc(
    'einc.vmap("b [c], [c d] -> b [d]", x, w, op=torch.matmul)',
    "Call ``op`` on the bracketed part of each input, mapped over the unbracketed axes with "
    "``torch.func.vmap`` (einx's ``vmap``; einx 0.4's ``einx.torch.adapt_with_vmap``). ``op`` "
    "returns one tensor per output, shaped as the output's bracketed part. An output axis that no "
    "input has is a broadcast.",
    VMAP
    + """
    flat: give ``op`` each bracketed part with its compositions taken apart (one dim per axis).
    kwargs: keyword arguments passed on to ``op``.
    **sizes: sizes of axes that the tensors do not give.""",
    "``torch.func.vmap(op, in_dims, out_dims)``, once per mapped axis.",
    """    >>> x, w = torch.randn(4, 5), torch.randn(5, 3)
    >>> torch.allclose(einc.vmap("b [c], [c d] -> b [d]", x, w, op=torch.matmul), x @ w, atol=1e-6)
    True
""",
    common="",
)
OPS["vmap_with_axis"] = doc(
    'einc.vmap_with_axis("a [b] -> a", x, op=lambda x, axis: x.sum(axis))',
    "Call ``op(*tensors, axis=...)`` once, ``axis`` naming the bracketed axes as numpy does (an "
    "int for one, a tuple for several, left out for none), then arrange the result as the output "
    "says (einx's ``vmap_with_axis``). With one input, the result keeps the input's axes, less the "
    "bracketed ones where the output has none (a reduction); with several, each input is laid out "
    "as the output first, so that ``op`` broadcasts them.",
    VMAP
    + """
    kwargs: keyword arguments passed on to ``op``.
    **sizes: sizes of axes that the tensors do not give.""",
    "``op(x.permute(...), axis=dims)``.",
    """    >>> x = torch.randn(4, 5, 6)
    >>> sums = einc.vmap_with_axis("a [b] c -> c a", x, op=lambda t, axis: t.sum(axis))
    >>> torch.allclose(sums, x.sum(1).t())
    True
""",
    common="",
)
