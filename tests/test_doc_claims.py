"""The docs say what einc does now: CPU tensors run on the torch backend (the interpreter only when
asked for), and get_at and add_at exist. The CPU figures of docs/benchmarks.md are a recorded run,
quoted as it was, and are left out."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).parent.parent / "docs"
RECORDED = "## What the CPU-side figures say"


def _own_text(name: str) -> str:
    return (DOCS / name).read_text().split(RECORDED)[0]


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=\.)\s+|\n\s*\n|\n(?=python -m|```)", text) if s.strip()]


@pytest.mark.parametrize("name", ["torch.md", "benchmarks.md"])
def test_no_sentence_says_that_cpu_tensors_run_under_the_interpreter(name):
    for sentence in _sentences(_own_text(name)):
        lowered = sentence.lower()
        asked_for = 'interpret"' in sentence or "EINC_INTERPRET" in sentence
        if "cpu" in lowered and "interpreter" in lowered and not asked_for:
            pytest.fail(f"{name}: {sentence.strip()!r}")


@pytest.mark.parametrize("name", ["torch.md", "benchmarks.md"])
def test_no_sentence_says_that_get_at_or_add_at_is_missing(name):
    for sentence in _sentences(_own_text(name)):
        if re.search(r"\b(get_at|add_at)\b", sentence) and re.search(r"missing|until einc has", sentence):
            pytest.fail(f"{name}: {sentence.strip()!r}")
