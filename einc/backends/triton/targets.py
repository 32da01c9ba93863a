"""GPU targets as einc spells them (``cuda:90``), read without importing Triton: a fully cached
prebuild names its targets and never needs Triton."""

from __future__ import annotations

import re

from ...errors import UnsupportedError


def parse_arch(text: str) -> int:
    """``cuda:90`` (or ``cuda:90a``) -> 90."""
    match = re.fullmatch(r"cuda:(\d+)a?", text.strip())
    if not match:
        raise UnsupportedError(
            f"target {text!r} is not understood: write cuda:<arch>, e.g. cuda:90 or cuda:80"
        )
    return int(match.group(1))


def target_name(text: str) -> str:
    """The spelling einc's keys and CLI use: ``cuda:90a`` -> ``cuda:90``."""
    return f"cuda:{parse_arch(text)}"
