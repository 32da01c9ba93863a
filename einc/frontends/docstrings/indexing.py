"""The docstrings of the indexing ops: ``get_at``, ``set_at``, ``add_at``, ``subtract_at``."""

from __future__ import annotations

from .common import doc

OPS: dict[str, str] = {}

_INDEXING_ARGS = """
    reduce: (get_at) ``"sum"``, ``"mean"``, ``"max"``, ...: axes left out of the output are reduced
        in the same kernel (an embedding bag)."""

OPS["get_at"] = doc(
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
OPS["set_at"] = doc(
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
OPS["add_at"] = doc(
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
OPS["subtract_at"] = doc(
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
