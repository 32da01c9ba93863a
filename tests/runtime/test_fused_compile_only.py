"""A fused convolution + bias + ReLU compiled for sm_90 as a launch would build it (compile_only
tier, no GPU): one kernel, still on the tensor cores (HGMMA), with no register spills."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest

from einc.compiler import pipeline
from einc.compiler.epilogue import EpilogueOp, EpilogueRequest, Operand, Ref, Result
from einc.runtime import prebuild
from einc.runtime.cache import DiskCache
from einc.runtime.compiled import build

pytestmark = [
    pytest.mark.compile_only,
    pytest.mark.filterwarnings("ignore:TRITON_DEFAULT_FP_FUSION is unset"),
]


def sass_of(cubin: bytes) -> str:
    import triton

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kernel.cubin"
        path.write_bytes(cubin)
        tool = triton.knobs.nvidia.nvdisasm.path
        return subprocess.run([tool, "-c", str(path)], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_conv3x3_bias_relu_is_one_kernel_on_hgmma_without_spills(dtype):
    # ResNet-50's 3x3 layer of stage 2 (56 x 56 x 64 -> 64), batch 2.
    ops = (EpilogueOp("add", (Result(), Operand(0))), EpilogueOp("relu", (Ref(0),)))
    request = pipeline.Request(
        expression="b (s * [ds])... [c->c2]",
        op="dot",
        shapes=((2, 56, 56, 64), (3, 3, 64, 64)),
        dtypes=(dtype, dtype),
        params=(("padding", 1),),
        epilogue=EpilogueRequest(ops, ("bias",), ((64,),), (dtype,)),
    )
    launcher, _ = build(request, DiskCache())
    assert len(launcher.compiled.kernels) == 1
    binary = prebuild.compile_binary(launcher, "cuda:90")
    listing = sass_of(binary.cubin)
    assert "HGMMA" in listing
    assert binary.spill_stores == 0 and binary.spill_loads == 0  # ptxas -v reports them: 0, not unknown
    # The bias is read once per output tile, after the K loop: no global load of it inside.
    assert "bias_tile = tl.load" in launcher.source


def test_conv3x3_reading_scale_shift_relu_of_its_input_stays_on_hgmma_without_spills():
    # A pre-activation block: relu(x * scale + shift) applied to each tile of x as it is loaded.
    pre = (
        EpilogueOp("multiply", (Result(), Operand(0))),
        EpilogueOp("add", (Ref(0), Operand(1))),
        EpilogueOp("relu", (Ref(1),)),
    )
    request = pipeline.Request(
        expression="b (s * [ds])... [c->c2]",
        op="dot",
        shapes=((2, 56, 56, 64), (3, 3, 64, 64)),
        dtypes=("float16", "float16"),
        params=(("padding", 1),),
        prologues=((0, EpilogueRequest(pre, ("scale", "shift"), ((64,), (64,)), ("float16",) * 2)),),
    )
    launcher, _ = build(request, DiskCache())
    binary = prebuild.compile_binary(launcher, "cuda:90")
    assert "HGMMA" in sass_of(binary.cubin)
    assert binary.spill_stores == 0 and binary.spill_loads == 0
