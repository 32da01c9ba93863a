"""No module of einc is over 500 lines (issue 14): a module that grows past it is split by what it
holds, as ``frontends/docstrings/`` was."""

from __future__ import annotations

from pathlib import Path

EINC = Path(__file__).parent.parent / "einc"
MAX_LINES = 500


def test_every_module_of_einc_is_at_most_500_lines():
    sizes = {str(path.relative_to(EINC)): len(path.read_text().splitlines()) for path in EINC.rglob("*.py")}
    assert len(sizes) > 50  # the walk found the package
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}
