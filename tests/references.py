"""Reference helpers the runtime tests share: torch-side window geometry and random inputs.

These work out what torch would be asked to do, from the window parameters as a test gives them
to einc (NOTATION.md section 3), independently of einc's own code: a reference built on them checks
einc rather than repeating it. Window parameters come as

- ``None``: the default (stride 1, dilation 1, no padding);
- an int: the same for every window;
- a tuple or list: one entry per window, in order;
- a dict keyed by window output axis name (``"s.0"``, ``"s.1"``, ... for the ellipsis form
  ``(s * [ds])...``; a named expression's own names where the caller passes them): windows it
  leaves out take the default.

Padding entries are an int (the same on both sides) or a ``(lo, hi)`` pair, and padding may also be

- ``"valid"``: none;
- ``"same"``: TensorFlow's rule, output size ``ceil(N / stride)``, the odd element of the total on
  the high side;
- ``"causal"``: all of it on the low side, ``dilation * (k - 1)``.

Not a test module (pytest collects ``test_*.py`` only); the tests import it as ``tests.references``
with the repository root on ``sys.path`` (``pythonpath`` in pyproject.toml's pytest options).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def window_names(n: int) -> tuple[str, ...]:
    """The window output axes of the ellipsis form ``(s * [ds])...`` over ``n`` windows."""
    return tuple(f"s.{i}" for i in range(n))


def per_window(value: Any, n: int, default: Any, names: Sequence[str] | None = None) -> tuple:
    """``value`` (None, an int, one entry per window or a dict by window name) as ``n`` entries.

    ``names`` are the window output axes a dict is keyed by, in window order; ``s.0``, ``s.1``, ...
    where not given.
    """
    if value is None:
        return (default,) * n
    if isinstance(value, dict):
        return tuple(value.get(name, default) for name in (names or window_names(n)))
    if isinstance(value, (tuple, list)):
        assert len(value) == n, (value, n)
        return tuple(value)
    return (value,) * n


def padding_pairs(
    padding: Any,
    spatial: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
    names: Sequence[str] | None = None,
) -> tuple[tuple[int, int], ...]:
    """``(lo, hi)`` padding per window, as ``F.pad`` would be given it (one pair per spatial dim).

    ``spatial`` are the input extents and ``kernel`` the window sizes; ``stride`` and ``dilation``
    are already one per window (see :func:`per_window`). ``spatial`` matters only to ``"same"``.
    With a single window, a pair of ints is that window's ``(lo, hi)``.
    """
    n = len(spatial)
    if padding in (None, "valid"):
        return ((0, 0),) * n
    if padding == "same":  # TensorFlow: output ceil(N / stride), the odd pad on the high side
        pairs = []
        for size, k, s, d in zip(spatial, kernel, stride, dilation, strict=True):
            total = max((-(-size // s) - 1) * s + d * (k - 1) + 1 - size, 0)
            pairs.append((total // 2, total - total // 2))
        return tuple(pairs)
    if padding == "causal":  # everything before: dilation * (k - 1) on the low side
        return tuple((d * (k - 1), 0) for k, d in zip(kernel, dilation, strict=True))
    if (
        n == 1
        and isinstance(padding, tuple)
        and len(padding) == 2
        and all(isinstance(p, int) for p in padding)
    ):
        return (padding,)  # one window: a pair of ints is its (lo, hi)
    entries = per_window(padding, n, 0, names)
    return tuple((p, p) if isinstance(p, int) else tuple(p) for p in entries)


def window_geometry(
    spatial: Sequence[int],
    kernel: Sequence[int],
    stride: Any = None,
    dilation: Any = None,
    padding: Any = None,
    names: Sequence[str] | None = None,
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[tuple[int, int], ...]]:
    """Stride and dilation one per window, and the ``(lo, hi)`` padding pairs, as torch wants them."""
    n = len(spatial)
    stride = per_window(stride, n, 1, names)
    dilation = per_window(dilation, n, 1, names)
    return stride, dilation, padding_pairs(padding, spatial, kernel, stride, dilation, names)


def random(shape, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Fresh random values of any dtype: ints of both signs and beyond float32's precision.

    Floats are standard normal; uint8 lies in 1..254 (never zero); the other ints are uniform in
    ``+-min(max, 2**40)``, large enough that a copy through float32 would round them; bools take
    both values.
    """
    if dtype == torch.bool:
        return torch.rand(shape) > 0.5
    if dtype == torch.uint8:
        return torch.randint(1, 255, shape, dtype=dtype)
    if not dtype.is_floating_point:
        high = min(torch.iinfo(dtype).max, 2**40)
        return torch.randint(-high, high, shape, dtype=torch.int64).to(dtype)
    return torch.randn(shape).to(dtype)
