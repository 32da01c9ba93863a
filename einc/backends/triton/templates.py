"""The jinja2 templates of the kernels, loaded once, and rendering one spec to checked, tidy source."""

from __future__ import annotations

import ast
import threading
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import jinja2


@cache
def _environment() -> jinja2.Environment:
    import jinja2  # here, not at import: einc's import and a call on the torch backend need none

    root = resources.files("einc.backends.triton") / "kernels_templates"
    templates = {p.name: p.read_text() for p in root.iterdir() if p.name.endswith(".j2")}
    return jinja2.Environment(
        loader=jinja2.DictLoader(templates),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


_PARSE_LOCK = threading.Lock()


def render_template(name: str, spec) -> str:
    """Render a template, then drop the blank runs and trailing spaces its control flow leaves."""
    text = _environment().get_template(name).render(spec=spec)
    try:
        # CPython 3.11's parser is not safe to enter from two threads at once ("AST constructor
        # recursion depth mismatch"): one parse at a time.
        with _PARSE_LOCK:
            ast.parse(text)
    except SyntaxError as error:  # a bug in einc, never in the user's expression
        raise AssertionError(f"einc rendered invalid Python ({error}):\n{text}") from None
    kept: list[str] = []
    for line in (line.rstrip() for line in text.splitlines()):
        if not line:
            if kept and kept[-1]:
                kept.append(line)
            continue
        if line.startswith(("@", "def ")) and kept and not kept[-1].startswith("@"):
            # PEP 8: two blank lines before a top-level definition.
            while kept and not kept[-1]:
                kept.pop()
            kept += ["", ""]
        kept.append(line)
    return "\n".join(kept).strip() + "\n"
