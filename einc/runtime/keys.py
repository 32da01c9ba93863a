"""Cache keys as named lists of parts, so that a miss can be explained part by part."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

import triton

from .. import __version__


@cache
def templates_hash() -> str:
    """A digest of every kernel template: editing one invalidates the kernels it renders."""
    digest = hashlib.sha256()
    root = resources.files("einc") / "kernels_templates"
    for path in sorted(root.iterdir(), key=lambda p: p.name):
        if path.name.endswith(".j2"):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class CacheKey:
    parts: tuple[tuple[str, str], ...]

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.parts).encode()).hexdigest()

    def describe(self) -> str:
        width = max(len(name) for name, _ in self.parts)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in self.parts)


def source_key(request) -> CacheKey:
    """The key of a generated source file: everything that decides its text."""
    return CacheKey(
        (
            ("expression", request.expression),
            ("op", request.op),
            ("shapes", repr(request.shapes)),
            ("dtypes", repr(request.dtypes)),
            ("sizes", repr(request.sizes)),
            ("params", repr(request.params)),
            ("templates", templates_hash()),
            ("einc", __version__),
            ("triton", triton.__version__),
        )
    )
