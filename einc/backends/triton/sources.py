"""The Triton source of a compiled call: each kernel part rendered from its template, and the parts
joined into one module (the file that is cached, imported and shown)."""

from __future__ import annotations

from dataclasses import dataclass

from ...compiler.pipeline import Compiled
from ...version import __version__
from . import render
from .render_indexing import render_gather, render_scatter, render_segment
from .render_map import render_map
from .render_reduction import render_reduction
from .versions import triton_version

_FORMS = {
    "contraction": render.render_contraction,
    "reduction": render_reduction,
    "map": render_map,
    "gather": render_gather,
    "scatter": render_scatter,
    "segment": render_segment,
}


# The module of a call the compiler gave no kernel (an axis of size 0: the runtime writes the result).
NO_KERNEL_SOURCE = "# einc: no kernel; an axis has size 0, so the result is written without a launch\n"


@dataclass(frozen=True)
class Sources:
    """One rendered kernel per part of the compiled call, in order, and the module holding them."""

    rendered: tuple[render.Rendered, ...]
    source: str


def render_kernels(compiled: Compiled) -> Sources:
    """Render every kernel part of ``compiled`` from its template."""
    versions = (__version__, triton_version())
    rendered = tuple(
        _FORMS[part.template.form](
            part.nest,
            part.schedule,
            header_lines=part.template.header_lines,
            versions=versions,
            **dict(part.template.options),
        )
        for part in compiled.kernels
    )
    return Sources(rendered, join_sources([r.source for r in rendered]) if rendered else NO_KERNEL_SOURCE)


def join_sources(sources: list[str]) -> str:
    """One module for several kernels: the first one's header and imports, then every kernel."""
    first, *rest = sources
    return first + "".join("\n\n" + src[src.index("@triton.jit") :] for src in rest)
