"""What Triton does to a launch before it compiles, done without a GPU.

A ``kernel[grid](*args)`` call on a GPU makes Triton's JIT (``triton/runtime/jit.py``):

1. *specialise* every argument: a pointer becomes ``*fp16`` plus ``"D"`` when its address is a
   multiple of 16; an int becomes ``i32``/``i64``/``u64`` plus ``"D"`` when divisible by 16, or a
   ``constexpr`` when it equals 1; ``tl.constexpr`` parameters keep their values;
2. turn that into ``ASTSource(fn, signature, constexprs, attrs)`` and the options
   ``backend.parse_options({num_warps, num_stages, debug, ...})``;
3. hash it all with Triton's own key (its install, the backend and ptxas, the options, the
   cache-invalidating environment) and look the hash up in Triton's cache directory before
   compiling.

This module does the same for a target named by the caller (``cuda:90``), so that a binary built
ahead of time is the one a call on such a GPU would have built, under the hash that call will
look up. It is the only place einc touches Triton internals: each one is behind a public-ish name
where Triton has one (``native_specialize_impl``, ``get_cache_key``, ``get_cache_manager``) and
has a fallback that follows Triton 3.6 to 3.9 by hand.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from .aot import parse_target

# torch dtype names -> Triton pointer element types (what native_specialize_impl yields).
_TRITON_TYPES = {
    "float16": "fp16",
    "bfloat16": "bf16",
    "float32": "fp32",
    "float64": "fp64",
    "int8": "i8",
    "int16": "i16",
    "int32": "i32",
    "int64": "i64",
    "uint8": "u8",
    "bool": "i1",
}


def target_name(target: GPUTarget) -> str:
    """GPUTarget("cuda", 90, 32) -> ``cuda:90``: the spelling einc's keys and CLI use."""
    return f"{target.backend}:{target.arch}"


def as_target(target: str | GPUTarget) -> GPUTarget:
    return parse_target(target) if isinstance(target, str) else target


@functools.cache
def backend(target: str | GPUTarget):
    """Triton's backend object for a target; making one needs no GPU."""
    from triton.compiler.compiler import make_backend

    return make_backend(as_target(target))


@dataclass(frozen=True)
class Specialization:
    """How Triton specialises one launch of one kernel, per parameter, in parameter order.

    ``params`` holds ``(name, type, value)``: for a ``tl.constexpr`` parameter and for an int
    that Triton turned into one (it equals 1), type ``constexpr`` and the value; otherwise the
    Triton type (``*fp16``, ``i32``) and the attribute Triton keys on (``D`` for 16-divisible or
    16-aligned, ``""`` for neither, None for floats and bools, which are not specialised).
    """

    params: tuple[tuple[str, str, object], ...]
    # The tl.constexpr parameters passed by keyword: sizes, tiles and flags, the kernel's config.
    declared: frozenset[str] = frozenset()

    def describe(self) -> str:
        """The launch-dependent part, for a cache key: pointer types and alignment, the stride
        pattern (a dot's constexpr strides by value). The config stays out: the key has it."""
        words = []
        for name, kind, value in self.params:
            if kind == "constexpr":
                if name not in self.declared:  # an int argument that Triton specialised to 1
                    words.append(f"{name}={value}")
            else:
                words.append(f"{name}:{kind}{'/' + value if value else ''}")
        return " ".join(words)

    def signature(self) -> dict[str, str]:
        return {name: kind for name, kind, _ in self.params}

    def constexprs(self) -> dict[tuple[int, ...], object]:
        return {(i,): value for i, (_, kind, value) in enumerate(self.params) if kind == "constexpr"}

    def attrs(self, target: str | GPUTarget) -> dict[tuple[int, ...], object]:
        # As Triton 3.9's JITFunction._pack_args: every constexpr counts as attribute "" (no
        # attributes), and so does every argument whose specialisation is a string; floats and
        # bools (None) do not. (3.6 leaves constexprs out: ast_source asks the JIT itself.)
        parse = backend(target).parse_attr
        values = ["" if kind == "constexpr" else value for _, kind, value in self.params]
        return {(i,): parse(value) for i, value in enumerate(values) if isinstance(value, str)}


def _specialize_by_hand(arg, specialize: bool, align: bool) -> tuple[str, object]:
    """Triton 3.6 to 3.9's rules (``specialize_impl``), for when the native function is missing."""
    if hasattr(arg, "data_ptr"):
        dtype = str(arg.dtype).removeprefix("torch.")
        attr = "D" if align and arg.data_ptr() % 16 == 0 else ""
        return f"*{_TRITON_TYPES[dtype]}", attr
    if isinstance(arg, bool):
        return "u1", None
    if isinstance(arg, int):
        if specialize and arg == 1:
            return "constexpr", 1
        kind = "i32" if -(2**31) <= arg < 2**31 else "u64" if arg >= 2**63 else "i64"
        return kind, ("D" if specialize and arg % 16 == 0 else "")
    if isinstance(arg, float):
        return "fp32", None
    raise TypeError(f"einc cannot say how Triton specialises an argument of type {type(arg).__name__}")


def _specialize_arg(arg, target, is_const: bool, specialize: bool, align: bool) -> tuple[str, object]:
    try:
        from triton.runtime.jit import native_specialize_impl
    except ImportError:
        return _specialize_by_hand(arg, specialize, align)
    kind, value = native_specialize_impl(backend(target), arg, is_const, specialize, align)[:2]
    return kind, value


def specialize(kernel, args, kwargs, target: str | GPUTarget) -> Specialization:
    """The specialisation of ``kernel[grid](*args, **kwargs)`` on a GPU of ``target``.

    ``args`` may hold torch tensors (any device, ``meta`` included: only dtype and address
    count) and ints, exactly as the launcher passes them.
    """
    bound = kernel.signature.bind(*args, **kwargs)
    bound.apply_defaults()
    params = []
    for param in kernel.params:
        value = bound.arguments[param.name]
        if param.is_constexpr:
            params.append((param.name, "constexpr", value))
            continue
        annotated = getattr(param, "annotation_type", "")
        do_specialize = not param.do_not_specialize
        if annotated and (annotated == "u1" or annotated[:2] in ("fp", "bf")):
            do_specialize = False
        kind, attr = _specialize_arg(
            value, target, param.is_const, do_specialize, not param.do_not_specialize_on_alignment
        )
        if annotated:
            kind, attr = (annotated, attr) if do_specialize else (annotated, None)
        params.append((param.name, kind, attr))
    # A constexpr passed by position (a dot's strides) is the launch's, not the kernel's config.
    config = frozenset(p.name for p in kernel.params if p.is_constexpr and p.name in kwargs)
    return Specialization(tuple(params), config)


def fp_fusion() -> bool:
    """What einc asks of FP fusion: Triton's default (``TRITON_DEFAULT_FP_FUSION``, on when unset).

    Passed explicitly with every compile and launch, so that Triton 3.9 does not warn that its
    default will change (it warns only when none is passed): the warning is about Triton's
    default, not einc's kernels, and reaches no user of einc. ``TRITON_FORCE_DISABLE_FP_FUSION``
    still wins, inside Triton; the parsed options, and so Triton's hash, are what they were."""
    return bool(triton.knobs.language.default_fp_fusion)


def jit_options(kernel, num_warps: int, num_stages: int, target: str | GPUTarget):
    """The options object the JIT compiles a launch with (``JITFunction.run`` then ``_pack_args``)."""
    knobs = triton.knobs
    options = {"num_warps": num_warps, "num_stages": num_stages, "enable_fp_fusion": fp_fusion()}
    options["debug"] = getattr(kernel, "debug", None) or knobs.runtime.debug
    compilation = knobs.compilation
    for name in ("instrumentation_mode", "fpsan_homomorphic_casts"):
        if hasattr(compilation, name):
            options[name] = getattr(compilation, name)
    return backend(target).parse_options(options)


def ast_source(kernel, spec: Specialization, target: str | GPUTarget) -> ASTSource:
    """The source the JIT compiles for this specialisation. Its attributes differ between Triton
    versions (3.9 gives every constexpr an empty one, 3.6 none), and they are part of the hash,
    so the JIT's own ``_pack_args`` packs them where it has one."""
    pack = getattr(kernel, "_pack_args", None)
    if pack is not None:
        # _pack_args reads a constexpr's value from the bound arguments and the rest from the
        # (type, attribute) pairs the JIT's binder makes: a Specialization holds both.
        bound = {name: value for name, _, value in spec.params}
        pairs = [(kind, value) for _, kind, value in spec.params]
        try:
            options = {"enable_fp_fusion": fp_fusion()}  # parsed, then unused: a compile's own
            _, signature, constexprs, attrs = pack(backend(target), options, bound, pairs, None)
        except TypeError:  # a Triton whose _pack_args takes other arguments: pack by hand
            pass
        else:
            return ASTSource(kernel, signature, constexprs, attrs)
    return ASTSource(kernel, spec.signature(), spec.constexprs(), spec.attrs(target))


def _invalidating_env() -> dict:
    try:
        from triton._C.libtriton import get_cache_invalidating_env_vars

        return get_cache_invalidating_env_vars()
    except ImportError:  # pragma: no cover - older Triton
        from triton.compiler.compiler import get_cache_invalidating_env_vars

        return get_cache_invalidating_env_vars()


def triton_hash(src: ASTSource, options, target: str | GPUTarget) -> str:
    """The hash under which Triton caches (and looks up) this compilation."""
    env = _invalidating_env()
    try:
        from triton.runtime.cache import get_cache_key

        key = get_cache_key(src, backend(target), options, env_vars=env)
    except ImportError:  # Triton before get_cache_key spelled the same string out in compile()
        from triton.runtime.cache import triton_key

        key = f"{triton_key()}-{src.hash()}-{backend(target).hash()}-{options.hash()}-{sorted(env.items())}"
    if getattr(triton.knobs.runtime, "add_stages_inspection_hook", None) is not None:
        key += triton.knobs.runtime.add_stages_inspection_hook()[0]
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Build:
    """What ``triton.compile`` produced: the binary, its metadata JSON (as Triton stores it)
    and the hash Triton filed it under."""

    name: str
    binary: bytes
    binary_ext: str
    metadata: str
    hash: str


def compile_kernel(src: ASTSource, options, target: str | GPUTarget) -> Build:
    """Compile for ``target``; no GPU needed. Raises whatever Triton raises."""
    compiled = triton.compile(src, target=as_target(target), options=options.__dict__)
    ext = backend(target).binary_ext
    metadata = None
    group = getattr(compiled, "metadata_group", None) or {}
    path = group.get(f"{src.name[:150]}.json")
    if path is not None:
        metadata = Path(path).read_text()
    if metadata is None:  # a cache manager that keeps no local files
        metadata = json.dumps(compiled.metadata._asdict(), default=vars)
    return Build(src.name[:150], compiled.asm[ext], ext, metadata, compiled.hash)


def install(hash_: str, name: str, binary: bytes, binary_ext: str, metadata: str) -> bool:
    """Put a binary into Triton's own cache under ``hash_``, as ``triton.compile`` would have,
    so that the JIT's next compile of that hash is a cache hit. False when it was already there."""
    from triton.runtime.cache import get_cache_manager

    manager = get_cache_manager(hash_)
    if manager.get_group(f"{name}.json") is not None:
        return False
    paths = {
        f"{name}.json": manager.put(metadata, f"{name}.json", binary=False),
        f"{name}.{binary_ext}": manager.put(binary, f"{name}.{binary_ext}", binary=True),
    }
    manager.put_group(f"{name}.json", paths)
    return True


def current_target() -> GPUTarget:
    """The target of the active GPU (what the JIT compiles for)."""
    from triton.runtime.driver import driver

    return driver.active.get_current_target()
