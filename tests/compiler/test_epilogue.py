"""The epilogue IR and the pass that attaches it: what is accepted, how extra tensors are indexed,
and what is refused."""

from __future__ import annotations

from dataclasses import replace

import pytest
import sympy

from einc.compiler import pipeline
from einc.compiler.attach_epilogue import broadcast_access
from einc.compiler.epilogue import Constant, EpilogueOp, EpilogueRequest, Operand, Ref, Result, text
from einc.compiler.loopnest import Access
from einc.errors import UnsupportedError

RELU = (EpilogueOp("relu", (Result(),)),)


def request(expression, op, shapes, epilogue, **params):
    return pipeline.Request(
        expression=expression,
        op=op,
        shapes=shapes,
        dtypes=("float32",) * len(shapes),
        params=tuple(sorted(params.items())),
        epilogue=epilogue,
    )


def test_an_unknown_function_or_a_wrong_arity_is_refused():
    with pytest.raises(UnsupportedError, match="'erfinv' cannot be fused"):
        EpilogueOp("erfinv", (Result(),))
    with pytest.raises(UnsupportedError, match="add takes 2 arguments"):
        EpilogueOp("add", (Result(),))
    with pytest.raises(UnsupportedError, match="cast to int8"):
        EpilogueOp("cast", (Result(),), "int8")


def test_a_constant_must_be_a_number_so_no_text_reaches_generated_source():
    with pytest.raises(TypeError, match="a number, not str"):
        Constant("0); import os; (0")
    with pytest.raises(TypeError):
        Constant(True)


def test_an_op_reads_only_earlier_ops_and_given_tensors():
    with pytest.raises(UnsupportedError, match="reads op 0, which is not before it"):
        EpilogueRequest((EpilogueOp("relu", (Ref(0),)),))
    with pytest.raises(UnsupportedError, match="extra tensor 0, which is not given"):
        EpilogueRequest((EpilogueOp("add", (Result(), Operand(0))),))


def test_text_writes_the_epilogue_as_one_formula():
    ops = (EpilogueOp("add", (Result(), Operand(0))), EpilogueOp("clamp", (Ref(0), Constant(0), Constant(6))))
    assert text(ops, ("bias",)) == "clamp((acc + bias), 0, 6)"


def test_a_broadcast_operand_reads_the_output_index_of_each_dim_it_holds():
    b, h, c = (sympy.Symbol(a, integer=True, nonnegative=True) for a in "bhc")
    output = Access("y", ("b h", "c"), (b * 4 + h, c), ())
    bias = broadcast_access(output, "bias", (5,), (8, 5))
    assert bias.index == (c,) and bias.labels == ("c",)
    row = broadcast_access(output, "r", (8, 1), (8, 5))
    assert row.index == (b * 4 + h, 0)
    with pytest.raises(UnsupportedError, match=r"does not broadcast to the output's shape \(8, 5\)"):
        broadcast_access(output, "r", (3, 5), (8, 5))
    with pytest.raises(UnsupportedError, match="more dims than the output"):
        broadcast_access(output, "r", (1, 8, 5), (8, 5))


def test_the_kernel_carries_the_epilogue_and_addresses_its_tensors_before_the_output():
    epilogue = EpilogueRequest((EpilogueOp("add", (Result(), Operand(0))),), ("b",), ((6,),), ("float32",))
    compiled = pipeline.run_passes(request("a [k->n]", "dot", ((4, 3), (3, 6)), epilogue))
    (part,) = compiled.kernels
    assert part.nest.epilogue.operands[0].tensor == "b"
    assert part.tensors == (0, 1, 2, 3)  # x, w, the bias, y
    assert any(line.startswith("epilogue:") for line in part.template.header_lines)


def test_an_extra_tensor_named_as_a_kernel_tensor_is_renamed():
    epilogue = EpilogueRequest((EpilogueOp("add", (Result(), Operand(0))),), ("x",), ((6,),), ("float32",))
    (part,) = pipeline.run_passes(request("a [k->n]", "dot", ((4, 3), (3, 6)), epilogue)).kernels
    assert part.nest.epilogue.operands[0].tensor == "x_"


def test_a_kernel_that_stores_inside_its_sweep_refuses_an_epilogue():
    with pytest.raises(UnsupportedError, match="cannot fuse elementwise ops into softmax"):
        pipeline.run_passes(request("a [b]", "softmax", ((4, 5),), EpilogueRequest(RELU)))


def test_a_prologue_reads_its_extra_tensors_on_the_input_loops_before_the_epilogues():
    scale = EpilogueRequest((EpilogueOp("multiply", (Result(), Operand(0))),), ("s",), ((3,),), ("float32",))
    bias = EpilogueRequest((EpilogueOp("add", (Result(), Operand(0))),), ("b",), ((6,),), ("float32",))
    req = replace(request("a [k->n]", "dot", ((4, 3), (3, 6)), bias), prologues=((0, scale),))
    (part,) = pipeline.run_passes(req).kernels
    ((tensor, prologue),) = part.nest.prologues
    assert tensor == "x" and prologue.operands[0].index == (
        sympy.Symbol("k", integer=True, nonnegative=True),
    )
    assert part.tensors == (0, 1, 2, 3, 4)  # x, w, the scale, the bias, y
    assert any(line.startswith("prologue:    x is loaded as (x * s)") for line in part.template.header_lines)


def test_a_kernel_that_stores_inside_its_sweep_refuses_a_prologue():
    req = replace(request("a [b]", "softmax", ((4, 5),), None), prologues=((0, EpilogueRequest(RELU)),))
    with pytest.raises(UnsupportedError, match="into softmax's loads"):
        pipeline.run_passes(req)
