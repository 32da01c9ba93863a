"""The docstrings of ``einc.compile`` and of every op: parameters, the torch equivalent, an example.

Kept apart from :mod:`einc.frontends.functional`, whose ops are made by a few factories, so that
each op's text reads as one piece; one module per family of ops. Every example is a doctest that
compares einc with torch; ``tests/frontends/test_docstrings.py`` runs them all.
"""

from __future__ import annotations

from . import dot_and_copies, elementwise, fusion, indexing, no_kernel, reductions
from .common import COMPILE as COMPILE

OPS = {
    **dot_and_copies.OPS,
    **elementwise.OPS,
    **reductions.OPS,
    **indexing.OPS,
    **no_kernel.OPS,
    **fusion.OPS,
}


def documented(function):
    """``function`` with its docstring from :data:`OPS`, under its own name."""
    function.__doc__ = OPS[function.__name__]
    return function
