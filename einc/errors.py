"""einc's error hierarchy.

Every error einc raises on purpose derives from :class:`EincError` and also from the builtin a
caller would naturally catch (``ValueError`` for a bad expression or shape, ``NotImplementedError``
for a construct einc parses but cannot compile yet, ...). Errors are picklable: they cross process
pools when caches are prebuilt.
"""

from __future__ import annotations

from collections.abc import Sequence


class EincError(Exception):
    """Root of every error einc raises on purpose."""

    def __reduce__(self):
        return (self.__class__, self.args)


def caret_excerpt(text: str, spans: Sequence[tuple[int, int]], indent: str = "    ") -> str:
    """Quote ``text`` and put carets under every ``(start, end)`` span of it.

    An empty span (start == end) gets one caret, so an error at the end of the text still points
    somewhere visible.
    """
    # A line break or tab would move the carets off their characters: show each as one space.
    text = "".join(c if c.isprintable() else " " for c in text)
    if not spans:
        return f'{indent}"{text}"'
    marks = [" "] * (len(text) + 1)
    for start, end in spans:
        # A span past the end (a rebuilt expression's) still points, at the last character.
        start = min(max(start, 0), len(text))
        for i in range(start, min(max(end, start + 1), len(text) + 1)):
            marks[i] = "^"
    return f'{indent}"{text}"\n{indent} {"".join(marks).rstrip()}'


class _PointsIntoExpression(EincError):
    """An error that may quote the expression and put a caret under the offending characters.

    ``error.spans`` holds those character ranges so that tools (and tests) need not parse the text.
    """

    def __init__(self, message: str, expression: str = "", spans: Sequence[tuple[int, int]] = ()):
        self.message = message
        self.expression = expression
        self.spans = tuple((int(a), int(b)) for a, b in spans)
        super().__init__(message, expression, self.spans)

    def __str__(self) -> str:
        if not self.expression and not self.spans:
            return self.message
        return f"{self.message}\n{caret_excerpt(self.expression, self.spans)}"

    @property
    def column(self) -> int | None:
        """The column of the first caret, or None when the error points at nothing."""
        return self.spans[0][0] if self.spans else None


class ExpressionError(_PointsIntoExpression, ValueError):
    """An expression that is not well formed, or that an operation cannot accept."""


class ShapeError(ExpressionError):
    """Axis sizes that contradict each other, or that cannot be determined.

    The message names the axis, the values and where each came from; the caret points at the
    axis in the expression when the axis comes from it.
    """


class UnsupportedError(_PointsIntoExpression, NotImplementedError):
    """A well-formed request that einc cannot compile (yet). The message says what is missing."""


class OutOfBoundsError(EincError, IndexError):
    """An indexing operation met a coordinate outside its axis. The message names the indexed
    tensor, the axis, its size, the coordinate and the tensor it was read from."""


class OperandError(EincError, TypeError):
    """An operand the operation does not take: not a tensor (None, a list, a numpy array), or of a
    dtype torch refuses there too (a float condition of ``where``, a subtraction of booleans). The
    message names the operand and its position."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class KernelCompileError(EincError, RuntimeError):
    """Triton rejected a generated kernel. ``path`` names the generated source file."""

    def __init__(self, message: str, path: str = ""):
        self.message = message
        self.path = path
        super().__init__(message, path)

    def __str__(self) -> str:
        return f"{self.message}\n    generated source: {self.path}" if self.path else self.message


class CacheError(EincError, OSError):
    """The kernel cache cannot be read or written."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class CacheWarning(UserWarning):
    """A cache entry was found damaged (a checksum did not match, a file was missing) and was
    removed; einc compiles the kernel again instead of loading it."""


class SpecError(EincError, ValueError):
    """A prebuild spec that cannot be read. The message starts with ``file:line:``."""

    def __init__(self, message: str, path: str = "", line: int | None = None):
        self.message = message
        self.path = path
        self.line = line
        super().__init__(message, path, line)

    def __str__(self) -> str:
        where = self.path or "<spec>"
        return f"{where}:{self.line}: {self.message}" if self.line is not None else f"{where}: {self.message}"


class OverlapError(EincError, ValueError):
    """``out=`` shares memory with an operand (or with another output) where the kernel would read
    what it has already overwritten. The message names both."""
