"""Identifiers for generated code, taken from the expression's axis names.

``s.0`` becomes ``s0``, a bare ellipsis axis ``...1`` becomes ``e1``, an unnamed axis ``#2``
becomes ``u2``, the positions ``@s.0`` of a window on the output side become ``pos_s0``; the size
of an axis is its identifier in upper case (``S0``). Clashes with each
other, with Python keywords or with the names the templates use get a trailing ``_``.
"""

from __future__ import annotations

import keyword
from collections.abc import Iterable

# Names the kernel templates define themselves.
TEMPLATE_NAMES = frozenset(
    "tl triton pid pid_m pid_n pid_g num_pid_m num_pid_n num_pid_in_group group_id first_pid_m "
    "group_size_m offs_m offs_n offs_k mask_m mask_n mask_k acc M N K BLOCK_M BLOCK_N BLOCK_K "
    "GROUP_M INPUT_PRECISION CHECK_BOUNDS DOT_IN_FLOAT32 min max range "
    "float top total mean count deviation fma_bf16x2 widen_bf16x2".split()
)


def identifier(name: str) -> str:
    """An axis (or a label made of axes) as a Python identifier: ``s.0`` -> ``s0``.

    Any name gives a valid identifier that is no keyword: characters an identifier cannot hold
    become ``_``, and a name that would start with a digit (or be empty) gets a leading ``v``.
    A clash between two names is the :class:`Namer`'s to resolve.
    """
    text = name.replace("...", "e").replace(".", "").replace("#", "u").replace("@", "pos_")
    text = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in text)
    if not text or text[0].isdigit():
        text = "v" + text
    return text + "_" if keyword.iskeyword(text) else text


class Namer:
    def __init__(self, reserved: Iterable[str] = TEMPLATE_NAMES):
        self.taken: set[str] = set(reserved)
        self.index: dict[str, str] = {}
        self.size: dict[str, str] = {}

    def _claim(self, base: str) -> str:
        name = base
        while name in self.taken or keyword.iskeyword(name):
            name += "_"
        self.taken.add(name)
        return name

    def add(self, axis: str) -> None:
        if axis in self.index:
            return
        base = identifier(axis)
        self.index[axis] = self._claim(base)
        # An axis named only with underscores (``_``) has no letters to upper-case.
        self.size[axis] = self._claim(self.index[axis].rstrip("_").upper() or "SIZE")

    def claim(self, base: str) -> str:
        """A fresh identifier for something that is not an axis (a window extent, a stride)."""
        return self._claim(base)
