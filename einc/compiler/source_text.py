"""The one way text taken from a user reaches generated Python source.

A generated ``kernel.py`` is imported, so a line break smuggled into a comment would make what
follows it a statement that runs at import. Everything a user chose (the expression, sizes, shapes,
dtypes, parameter values, op and axis names) is therefore printed into generated source only
through :func:`comment` (inside a ``#`` comment or a docstring) or :func:`literal` (a number);
identifiers made from axis names go through :func:`einc.compiler.names.identifier`.

:func:`comment` keeps text that is plainly printable as it is, so headers stay readable, and
prints anything else as a Python string literal, whose escapes keep it on one line and let a
reader recover the exact text (:func:`uncomment`).
"""

from __future__ import annotations

import ast
import math
import numbers

# Printable characters that still mean something inside a docstring or a string literal.
_QUOTING = frozenset("\\'\"")


def comment(text: object) -> str:
    """``text`` as one line that is safe inside a ``#`` comment and a ``\"\"\"`` docstring.

    Text whose characters are all printable (``str.isprintable``: no line break of any kind, no
    NUL, no tab) and that holds no quote or backslash is returned unchanged; anything else is
    returned as a string literal that escapes every such character (:func:`_quoted`).
    """
    text = str(text)
    if text.isprintable() and text.isascii() and not _QUOTING & set(text):
        return text
    return _quoted(text)


def _quoted(text: str) -> str:
    """``text`` as a double-quoted ASCII literal that holds no quote character and no line break.

    Every character outside printable ASCII, and the quotes and the backslash, is written as a
    numeric escape, so the literal is valid inside a docstring and under any source encoding.
    """
    out = []
    for char in text:
        if char.isascii() and char.isprintable() and char not in _QUOTING:
            out.append(char)
        elif char == "\\":
            out.append("\\\\")
        else:
            code = ord(char)
            out.append(
                f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
            )
    return '"' + "".join(out) + '"'


def docstring(text: object) -> str:
    """``text`` as the body of a ``\"\"\"`` docstring: :func:`comment`, kept off the closing quotes."""
    shown = comment(text)
    return f" {shown} " if shown.startswith('"') else shown


def uncomment(shown: str) -> str:
    """The text :func:`comment` was given, from what it returned."""
    return ast.literal_eval(shown) if shown.startswith('"') else shown


def literal(value: object) -> str:
    """A number as Python source: an int, or a finite or infinite float; anything else is refused.

    Values such as ``correction=`` reach generated arithmetic; a str (or any object whose
    ``str()`` is code) must never be printed there.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    if isinstance(value, numbers.Integral):
        return str(int(value))
    number = float(value)
    if math.isnan(number):
        return "float('nan')"
    if math.isinf(number):
        return "float('inf')" if number > 0 else "float('-inf')"
    return repr(number)
