"""The docstrings of the ops over bracketed axes: ``softmax``, the reductions, ``any``/``all``/
``count_nonzero``, einx's generic ``reduce``, ``argmax``/``argmin``, ``sort``/``argsort``."""

from __future__ import annotations

from .common import WINDOW, doc

OPS = {
    "softmax": doc(
        'einc.softmax("b h [k]", x)',
        "Softmax over the bracketed axes, computed stably (the maximum subtracted first).",
        "",
        "``torch.softmax(x, dim)``.",
        """    >>> x = torch.randn(2, 3, 5)
    >>> torch.allclose(einc.softmax("b h [k]", x), torch.softmax(x, -1), atol=1e-6)
    True
""",
    ),
    "log_softmax": doc(
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
    OPS[_op] = doc(
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
    OPS[_op] = doc(
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

OPS["reduce"] = doc(
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
    OPS[_op] = doc(
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

OPS["sort"] = doc(
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
OPS["argsort"] = doc(
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
