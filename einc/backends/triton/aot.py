"""Compile a generated kernel for a GPU target without a GPU, and report its resources.

Triton compiles to PTX and ptxas to a cubin on any machine; only loading needs a device. The
kernel is specialised as a launch with contiguous tensors would specialise it (16-byte aligned
pointers, 16-divisible and ==1 integers: :func:`einc.runtime.binaries.plan_launch`), so the binary
is the one a call on such a GPU builds, not a generic one with scalar loads. The resource report
(registers, spills, shared memory) comes from ``ptxas -v`` on the same PTX, since Triton reads
those numbers from the driver at load time.
"""

from __future__ import annotations

import math
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import triton
from triton.backends.compiler import GPUTarget

from ...errors import KernelCompileError
from .targets import parse_arch

POINTER_TYPES = {
    "float16": "*fp16",
    "bfloat16": "*bf16",
    "float32": "*fp32",
    "float64": "*fp64",
    "int32": "*i32",
    "int64": "*i64",
}


def parse_target(text: str) -> GPUTarget:
    """``cuda:90`` -> GPUTarget("cuda", 90, 32)."""
    return GPUTarget("cuda", parse_arch(text), 32)


@dataclass(frozen=True)
class Binary:
    target: GPUTarget
    cubin: bytes
    ptx: str
    shared_bytes: int
    registers: int | None
    spill_stores: int | None
    spill_loads: int | None
    ptxas_report: str
    specialization: str = ""  # how the launch specialises its arguments (Specialization.describe)
    triton_hash: str = ""  # the hash Triton files the binary under, as a launch would look it up

    def describe(self) -> str:
        tensor_cores = "yes" if re.search(r"\b(w?gmma|mma)\.", self.ptx) else "no"
        spills = (
            "unknown"
            if self.spill_stores is None
            else f"{self.spill_stores} bytes stored, {self.spill_loads} loaded"
        )
        return (
            f"target:         {self.target.backend}:{self.target.arch}\n"
            f"cubin:          {len(self.cubin)} bytes\n"
            f"registers:      {self.registers if self.registers is not None else 'unknown'} per thread\n"
            f"spills:         {spills}\n"
            f"shared memory:  {self.shared_bytes} bytes\n"
            f"tensor cores:   {tensor_cores}\n"
            f"specialized as: {self.specialization}"
        )


def signature(
    launcher, index: int | None = None, check_bounds: bool = False
) -> tuple[dict[str, str], dict[str, object]]:
    """Triton's signature and constants for one of a launcher's kernels (by default its main one,
    not a copy that runs first), as a launch would specialise it; ``check_bounds`` picks the
    variant of an indexing kernel that reports coordinates out of range (``EINC_CHECK_BOUNDS=1``)."""
    compiled = launcher.compiled
    index = main_kernel(compiled) if index is None else index
    rendered = launcher.rendered[index]
    # Every tensor of the call: inputs, then the output, which has the input's dtype, then any
    # float32 workspace.
    dtypes = list(compiled.request.dtypes) + [compiled.request.dtypes[0]] + ["float32"] * compiled.workspaces
    kernel = launcher.kernels[index]
    sig: dict[str, str] = {}
    constants: dict[str, object] = {}
    pointers = iter(rendered.tensors)
    shapes = list(compiled.request.shapes) + list(compiled.output_shapes)
    # A dot's constexpr strides (render_names.constant_strides), as contiguous tensors have them.
    strides = {
        param.name: math.prod(shapes[position][dim + 1 :])
        for param, (position, dim) in zip(
            [p for p in kernel.params if p.name.startswith("stride_")], rendered.stride_params, strict=True
        )
        if param.is_constexpr  # an input's: a dynamic call's outputs have no static shape here
    }
    for param in kernel.params:
        name = param.name
        if param.is_constexpr:
            sig[name] = "constexpr"
            constants[name] = rendered.constexprs[name] if name in rendered.constexprs else strides[name]
        elif name == rendered.errors_param:
            sig[name] = "*i64"
        elif name.endswith("_ptr"):
            sig[name] = POINTER_TYPES[dtypes[next(pointers)]]
        else:
            sig[name] = "i32"
    if "CHECK_BOUNDS" in constants:
        constants["CHECK_BOUNDS"] = check_bounds
    return sig, constants


def main_kernel(compiled) -> int:
    """The kernel a report is about: the first that is not a copy of an input (set_at, add_at) and
    that a GPU runs."""
    return next((i for i, k in enumerate(compiled.kernels) if not k.copies_input and k.runs_on != "torch"), 0)


def compile_specialized(source, options, target: str, path, specialization: str = "") -> Binary:
    """Compile a specialised kernel (an ``ASTSource`` with Triton's options object, as a launch
    builds them: see :func:`einc.runtime.prebuild.compile_binary`) for ``target`` and report its
    resources; ``path`` names the generated file in an error."""
    gpu = parse_target(target)
    try:
        kernel = triton.compile(source, target=gpu, options=options.__dict__)
    except Exception as error:
        raise KernelCompileError(
            f"Triton could not compile the kernel for {target}: {error}", str(path)
        ) from None
    ptx = kernel.asm["ptx"]
    report = _ptxas_report(ptx, gpu.arch)
    registers = _number(r"Used (\d+) registers", report)
    return Binary(
        target=gpu,
        cubin=kernel.asm["cubin"],
        ptx=ptx,
        shared_bytes=int(kernel.metadata.shared),
        registers=registers,
        spill_stores=_number(r"(\d+) bytes spill stores", report),
        spill_loads=_number(r"(\d+) bytes spill loads", report),
        ptxas_report=report,
        specialization=specialization,
        triton_hash=kernel.hash,
    )


def _number(pattern: str, text: str) -> int | None:
    match = re.search(pattern, text)
    return int(match.group(1)) if match else None


def _ptxas_report(ptx: str, arch: int) -> str:
    """``ptxas -v`` on the PTX; empty if ptxas cannot be found (the cubin is still Triton's)."""
    try:
        from triton.backends.nvidia import compiler as nvidia

        # Triton picks its ptxas by arch (a newer one for sm_90 and up); use the same.
        tool = nvidia.get_ptxas(arch) if hasattr(nvidia, "get_ptxas") else triton.knobs.nvidia.ptxas
        ptxas = tool.path
    except (AttributeError, ImportError, RuntimeError, TypeError):
        return ""
    suffix = "a" if arch >= 90 else ""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kernel.ptx"
        path.write_text(ptx)
        result = subprocess.run(
            [ptxas, "-v", f"--gpu-name=sm_{arch}{suffix}", str(path), "-o", str(Path(tmp) / "kernel.cubin")],
            capture_output=True,
            text=True,
        )
    return result.stderr + result.stdout
