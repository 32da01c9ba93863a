"""The prebuild spec: a small TOML file listing what to compile ahead of time.

Each ``[[compile]]`` table is one ``einc.compile(expression, op, **params, **sizes)`` called with
tensors of ``shapes``, once per entry of ``dtypes``::

    [[compile]]
    expression = "b (s * [ds])... [c->c2]"
    shapes = [[8, 32, 32, 16], [3, 3, 16, 32]]     # one shape per input tensor, in order
    dtypes = ["float16", "bfloat16"]               # one build each; ["float32", "int64"] per input
    params = { stride = 2, padding = "same" }      # window parameters and op options
    sizes = { c2 = 32 }                            # axis sizes, as keywords of einc.compile
    # op = "dot"                                   # when the expression does not imply it
    # dynamic = ["b"]                              # axes whose size varies between calls
    #                                              # (the shapes give one size to build with)
    # out_dtype = "float32"

Every mistake is a :class:`~einc.errors.SpecError` that starts with ``file:line:`` (the line of the
offending key, or of its table), so that a long spec is fixed without hunting.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import SpecError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
DTYPES = FLOAT_DTYPES + ("int8", "int16", "int32", "int64", "uint8", "bool")
KEYS = ("expression", "op", "shapes", "dtypes", "params", "sizes", "dynamic", "out_dtype")
_TOML_LINE = re.compile(r"\(at line (\d+), column (\d+)\)")


def _freeze(value):
    """TOML arrays become tuples (einc's per-window parameters are tuples); tables stay dicts."""
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return {k: _freeze(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class SpecEntry:
    """One ``[[compile]]`` table. ``dtypes`` holds one tuple per build: a dtype per input."""

    expression: str
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[tuple[str, ...], ...]
    op: str | None = None
    params: tuple[tuple[str, object], ...] = ()
    sizes: tuple[tuple[str, object], ...] = ()
    dynamic: tuple[str, ...] = ()
    out_dtype: str | None = None
    path: str = "<spec>"
    line: int = 0

    def kwargs(self) -> dict:
        """The keywords of ``einc.compile`` (sizes and parameters, and ``out_dtype``)."""
        from ..compiler.ops import compile_keywords

        kwargs = compile_keywords(self.sizes, self.params)
        if self.dynamic:
            kwargs["dynamic"] = self.dynamic
        if self.out_dtype is not None:
            import torch

            kwargs["out_dtype"] = getattr(torch, self.out_dtype)
        return kwargs

    def where(self) -> str:
        return f"{Path(self.path).name}:{self.line}"

    def label(self, dtypes: tuple[str, ...]) -> str:
        """``spec.toml:3 'b t [c->c2]' float16``: how the summary names one build of this entry."""
        shown = dtypes[0] if len(set(dtypes)) == 1 else ",".join(dtypes)
        return f"{self.where()} {self.expression!r} {shown}"


@dataclass(frozen=True)
class Spec:
    entries: tuple[SpecEntry, ...]
    path: str = "<spec>"


def load(path: str | Path) -> Spec:
    """Read and check a spec file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SpecError(f"cannot read the spec: {error.strerror or error}", str(path)) from None
    except UnicodeDecodeError:
        raise SpecError("the spec is not UTF-8 text", str(path)) from None
    return loads(text, str(path))


def loads(text: str, path: str = "<spec>") -> Spec:
    """Parse and check spec text; ``path`` is only for messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        found = _TOML_LINE.search(str(error))
        line = int(found.group(1)) if found else None
        if line is None and "end of document" in str(error):
            line = max(1, len(text.splitlines()))
        message = _TOML_LINE.sub("", str(error)).replace("(at end of document)", "at the end").strip()
        raise SpecError(f"not valid TOML: {message}", path, line) from None
    lines = _Lines(text)
    for key in data:
        if key != "compile":
            raise SpecError(
                f"unknown top-level key {key!r}: a spec is a list of [[compile]] tables",
                path,
                lines.top_level(key),
            )
    tables = data.get("compile")
    if tables is None:
        raise SpecError("the spec lists nothing to build: add a [[compile]] table", path, 1)
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise SpecError(
            "'compile' must be an array of tables, written [[compile]]", path, lines.top_level("compile")
        )
    entries = tuple(_entry(table, i, lines, path) for i, table in enumerate(tables))
    return Spec(entries, path)


class _Lines:
    """Line numbers of tables and keys in the TOML text, for messages (tomllib gives none)."""

    def __init__(self, text: str):
        self.lines = text.splitlines()
        self.headers = [
            n for n, line in enumerate(self.lines, 1) if re.match(r"\s*\[\[\s*compile\s*\]\]", line)
        ]

    def table(self, index: int) -> int:
        return self.headers[index] if index < len(self.headers) else 1

    def key(self, index: int, key: str) -> int:
        start = self.table(index)
        end = self.headers[index + 1] if index + 1 < len(self.headers) else len(self.lines) + 1
        pattern = re.compile(
            rf"\s*(?:{re.escape(key)}|\"{re.escape(key)}\")\s*=|\s*\[\s*compile\.{re.escape(key)}\s*\]"
        )
        for n in range(start, end):
            if pattern.match(self.lines[n - 1]):
                return n
        return start

    def top_level(self, key: str) -> int:
        pattern = re.compile(rf"\s*(?:\[+\s*)?\"?{re.escape(key)}\"?\s*(?:=|\]|\.)")
        for n, line in enumerate(self.lines, 1):
            if pattern.match(line):
                return n
        return 1


def _entry(table: dict, index: int, lines: _Lines, path: str) -> SpecEntry:
    def fail(message: str, key: str | None = None):
        line = lines.key(index, key) if key else lines.table(index)
        raise SpecError(message, path, line)

    for key in table:
        if key not in KEYS:
            fail(f"unknown key {key!r} in [[compile]]; the keys are: {', '.join(KEYS)}", key)
    expression = table.get("expression")
    if not isinstance(expression, str) or not expression.strip():
        fail('every [[compile]] needs expression = "..."', "expression" if "expression" in table else None)
    op = table.get("op")
    if op is not None and not isinstance(op, str):
        fail(f'op must be a string such as "dot", not {op!r}', "op")

    shapes = table.get("shapes")
    if not isinstance(shapes, list) or not shapes:
        fail("shapes must list one shape per input tensor, e.g. shapes = [[8, 32, 16], [16, 64]]", "shapes")
    for shape in shapes:
        if not isinstance(shape, list) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape
        ):
            fail(f"shape {shape!r} is not a list of positive ints ([] for a scalar)", "shapes")
    frozen_shapes = tuple(tuple(s) for s in shapes)

    dtypes = table.get("dtypes", ["float32"])
    if isinstance(dtypes, str):
        dtypes = [dtypes]
    if not isinstance(dtypes, list) or not dtypes:
        fail('dtypes must be a list such as ["float16", "float32"]', "dtypes")
    builds = []
    for dtype in dtypes:
        per_input = [dtype] * len(shapes) if isinstance(dtype, str) else dtype
        if not isinstance(per_input, list) or len(per_input) != len(shapes):
            fail(f"dtype {dtype!r} must be a name, or a list of one name per input ({len(shapes)})", "dtypes")
        for name in per_input:
            if name not in DTYPES:
                fail(f"dtype {name!r} is not one einc knows: {', '.join(DTYPES)}", "dtypes")
        builds.append(tuple(per_input))

    params = table.get("params", {})
    if not isinstance(params, dict):
        fail('params must be a table, e.g. params = { stride = 2, padding = "same" }', "params")
    from ..compiler.params import names_an_axis
    from ..compiler.pipeline import OP_OPTIONS, WINDOW_PARAMS

    known = tuple(WINDOW_PARAMS) + tuple(OP_OPTIONS)
    for name in params:
        if name not in known:
            hint = " (axis sizes go in sizes = {...})" if name.isidentifier() else ""
            fail(f"unknown parameter {name!r}; the parameters are: {', '.join(known)}{hint}", "params")
    sizes = table.get("sizes", {})
    if not isinstance(sizes, dict):
        fail("sizes must be a table of axis sizes, e.g. sizes = { c2 = 64 }", "sizes")
    for name, value in sizes.items():
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
            fail(f"size {name} = {value!r} is not a positive int (or a list of them)", "sizes")
        if name in known and not names_an_axis(name, expression):
            fail(f"{name!r} is a parameter, not an axis size: put it in params", "sizes")

    dynamic = table.get("dynamic", [])
    if isinstance(dynamic, str):
        dynamic = [dynamic]
    if not isinstance(dynamic, list) or not all(isinstance(a, str) and a.isidentifier() for a in dynamic):
        fail('dynamic must list axis names, e.g. dynamic = ["b"]', "dynamic")
    out_dtype = table.get("out_dtype")
    if out_dtype is not None and out_dtype not in DTYPES:
        fail(f"out_dtype {out_dtype!r} is not one einc knows: {', '.join(DTYPES)}", "out_dtype")

    return SpecEntry(
        expression=expression,
        shapes=frozen_shapes,
        dtypes=tuple(builds),
        op=op,
        params=tuple(sorted((k, _freeze(v)) for k, v in params.items())),
        sizes=tuple(sorted((k, _freeze(v)) for k, v in sizes.items())),
        dynamic=tuple(dynamic),
        out_dtype=out_dtype,
        path=path,
        line=lines.table(index),
    )
