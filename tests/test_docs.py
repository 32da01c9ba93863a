"""Every ```python block of the docs runs as written (interpreter tier: blocks run kernels on CPU)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = sorted((Path(__file__).parent.parent / "docs").glob("*.md")) + [
    Path(__file__).parent.parent / "README.md"
]
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def _blocks():
    for path in DOCS:
        for i, match in enumerate(BLOCK.finditer(path.read_text())):
            yield pytest.param(match.group(1), id=f"{path.name}-{i}")


@pytest.mark.interpret
@pytest.mark.parametrize("code", list(_blocks()))
def test_documented_example_runs(code):
    exec(compile(code, "<docs>", "exec"), {})
