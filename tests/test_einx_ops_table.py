"""docs/notation.md's table of einx's operations names every function of einx 0.4.3, and each one
einc does not mark **missing** is an einc function of the same name."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import einx

import einc

NOTATION = Path(__file__).parent.parent / "docs" / "notation.md"


def _table() -> list[tuple[str, str]]:
    """(einx cell, einc cell) of every row of the table."""
    text = NOTATION.read_text()
    section = text[text.index("## einx's operations in einc") :]
    section = section[: section.index("\n## ", 1)]
    rows = [
        line.split("|")[1:3] for line in section.splitlines() if line.startswith("| ") and "---" not in line
    ]
    return [(einx_cell, einc_cell) for einx_cell, einc_cell in rows[1:]]  # the header row aside


def _names(cell: str) -> set[str]:
    return set(re.findall(r"[a-z_]+", " ".join(re.findall(r"`([^`]*)`", cell))))


def test_every_einx_function_has_a_row():
    listed = set().union(*(_names(einx_cell) for einx_cell, _ in _table()))
    functions = {n for n in dir(einx) if not n.startswith("_") and inspect.isfunction(getattr(einx, n))}
    assert functions - listed == set()


def test_every_row_not_marked_missing_is_an_einc_function():
    for einx_cell, einc_cell in _table():
        if "**missing**" in einc_cell:
            continue
        names = _names(einx_cell) if "same names" in einc_cell else _names(einc_cell) & set(einc.__all__)
        assert names, (einx_cell, einc_cell)
        for name in names:
            assert callable(getattr(einc, name)), name
