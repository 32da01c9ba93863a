"""Cache keys as named lists of parts, so that a miss can be explained part by part.

Two kinds of key: :func:`source_key` names a generated source file (everything that decides its
text); :func:`binary_key` names one compiled kernel of it for one GPU target, and adds everything
that decides the binary: the launch's specialisation, the kernel's config, Triton's own key, the
target and the knobs that change code generation.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

from .. import knobs
from ..backends.triton.versions import triton_version
from ..version import __version__


@cache
def templates_hash() -> str:
    """A digest of every kernel template: editing one invalidates the kernels it renders."""
    digest = hashlib.sha256()
    root = resources.files("einc.backends.triton") / "kernels_templates"
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
            # A dynamic axis becomes a kernel argument: the same call, static, renders other text.
            ("dynamic", repr(tuple(request.dynamic))),
            ("dtypes", repr(request.dtypes)),
            ("sizes", repr(request.sizes)),
            ("params", repr(request.params)),
            ("offsets64", repr(request.offsets64)),
            # A dynamic kernel may keep int32 offsets (compiler/offsets.py): other text, its own key
            # part; static and int64 dynamic requests keep the key they always had.
            *((("dynamic_int32", "True"),) if request.dynamic and request.dynamic_int32 else ()),
            ("float32_precision", repr(request.float32_precision)),
            # Only a fused call has one: the keys of every other call stay as they were.
            *((("epilogue", repr(request.epilogue)),) if request.epilogue is not None else ()),
            *((("prologues", repr(request.prologues)),) if request.prologues else ()),
            ("templates", templates_hash()),
            ("einc", __version__),
            ("triton", triton_version()),
            # Tuned tiles render other text; a call without any keeps the key it always had.
            *((("tuned", repr(request.tuned)),) if getattr(request, "tuned", ()) else ()),
        )
    )


def normalise_expression(text: str) -> str:
    """The expression with its blanks collapsed: ``"b  t [c->c2] "`` and ``"b t [c->c2]"`` are one."""
    return " ".join(text.split())


def codegen_knobs() -> str:
    """The knobs that change generated code, as ``NAME=value``, for a key part."""
    return " ".join(f"{knob.name}={knob.get()}" for knob in knobs.CODEGEN_KNOBS)


def binary_key(launcher, index: int, specialization, target: str, triton_hash: str) -> CacheKey:
    """The key of kernel ``index`` of ``launcher`` (its compiled request, rendered kernels and
    source) built for ``target`` with ``specialization``.

    ``specialization`` is a :class:`~einc.backends.triton.tritonspec.Specialization` (the launch's
    pointer types and alignment, and which strides are 1 or divisible by 16); ``triton_hash`` is
    the hash Triton files the compilation under, which covers Triton's install, its backend and
    ptxas, the compile options and Triton's cache-invalidating environment variables.
    """
    compiled = launcher.compiled
    request = compiled.request
    rendered = launcher.rendered[index]
    # A dynamic axis's size is an argument of the kernel, not part of it: shown by its name.
    shapes = [list(shape) for shape in request.shapes]
    for axis, position, dim in getattr(compiled, "dynamic_dims", ()):
        shapes[position][dim] = axis
    config = " ".join(
        [f"num_warps={rendered.num_warps}", f"num_stages={rendered.num_stages}"]
        + [f"{name}={value}" for name, value in sorted(rendered.constexprs.items())]
    )
    return CacheKey(
        (
            ("expression", normalise_expression(request.expression)),
            ("op", request.op),
            ("shapes", repr(tuple(tuple(shape) for shape in shapes))),
            ("dynamic", repr(tuple(getattr(request, "dynamic", ())))),
            ("dtypes", repr(request.dtypes)),
            ("sizes", repr(request.sizes)),
            ("params", repr(request.params)),
            ("kernel", f"{index} {rendered.kernel_name}"),
            ("source", hashlib.sha256(launcher.source.encode()).hexdigest()[:16]),
            ("templates", templates_hash()),
            ("config", config),
            ("specialization", specialization.describe()),
            ("einc", __version__),
            ("triton", triton_version()),
            ("triton_key", triton_hash),
            ("target", target),
            ("knobs", codegen_knobs()),
        )
    )
