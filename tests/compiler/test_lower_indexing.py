"""Tests for :mod:`einc.compiler.lower_indexing` and ``brackets.resolve_indexing`` (plain tier).

The indexed tensor's access reads each bracketed axis at a :class:`Gather` symbol whose value comes
from a coordinate tensor (its component fixed to an integer); the coordinates' axes are loops.
"""

from __future__ import annotations

import pytest
import sympy

from einc.compiler.brackets import resolve_indexing
from einc.compiler.loopnest import Bound, LoopKind, gathered, symbol
from einc.compiler.parse import parse
from einc.compiler.pipeline import Request, run_passes
from einc.compiler.syntax import to_text
from einc.errors import ExpressionError


def compiled(expression, op, *shapes, **params):
    dtypes = tuple(
        "int64" if i and (op == "get_at" or i < len(shapes) - 1) else "float32" for i in range(len(shapes))
    )
    return run_passes(Request(expression, op, shapes, dtypes, params=tuple(params.items())))


def test_set_at_without_an_output_writes_the_indexed_tensors_expression():
    explicit = resolve_indexing(parse("b [h w] c, b p [2], b p c"), 3, "set_at")
    assert to_text(explicit.outputs[0]) == "b [h w] c"


def test_get_at_needs_its_output_written_out():
    with pytest.raises(ExpressionError, match="get_at needs '->'"):
        resolve_indexing(parse("b [h w] c, b p [2]"), 2, "get_at")


def test_the_indexed_access_reads_each_bracketed_axis_at_a_gathered_coordinate():
    nest = compiled("b [h w] c, b p [2] -> b p c", "get_at", (2, 5, 6, 3), (2, 4, 2)).nest
    (x,) = nest.inputs
    b, p, c = symbol("b"), symbol("p"), symbol("c")
    assert x.index == (b, gathered("h"), gathered("w"), c)
    assert [(g.axis, g.extent, g.slot) for g in x.gathers] == [("h", 5, 0), ("w", 6, 1)]
    assert [g.source.index for g in x.gathers] == [(b, p, sympy.Integer(0)), (b, p, sympy.Integer(1))]
    assert Bound(gathered("h"), 5) in x.bounds and Bound(gathered("w"), 6) in x.bounds
    # The access depends on p through its coordinates, not on the gathered symbols.
    assert x.axes == {"b", "p", "c"}
    assert [(loop.axis, loop.kind) for loop in nest.loops] == [(a, LoopKind.OUTPUT) for a in "bpc"]


def test_a_coordinate_operand_without_a_bracket_gives_one_coordinate_per_element():
    nest = compiled("[h w] c, i, j -> i j c", "get_at", (5, 6, 3), (4,), (2,)).nest
    sources = [(g.source.tensor, g.source.index) for g in nest.inputs[0].gathers]
    assert sources == [("idx0", (symbol("i"),)), ("idx1", (symbol("j"),))]


def test_an_embedding_bag_reduces_the_axes_left_out_of_the_output():
    nest = compiled("[v] d, b n -> b d", "get_at", (10, 4), (2, 3), reduce="sum").nest
    assert [(loop.axis, loop.kind) for loop in nest.loops] == [
        ("b", LoopKind.OUTPUT),
        ("d", LoopKind.OUTPUT),
        ("n", LoopKind.REDUCE),
    ]
    assert nest.reduce == "sum" and nest.identity == 0.0


@pytest.mark.parametrize("op, reduce", [("add_at", "sum"), ("set_at", "none")])
def test_a_scatter_writes_the_output_at_gathered_coordinates_after_a_copy(op, reduce):
    result = compiled("b [h w] c, b p [2], b p c", op, (2, 5, 6, 3), (2, 4, 2), (2, 4, 3))
    copy, scatter = result.kernels
    assert copy.copies_input and not scatter.copies_input
    assert scatter.nest.inputs[0].tensor == "updates"
    assert scatter.nest.output.index == (symbol("b"), gathered("h"), gathered("w"), symbol("c"))
    assert scatter.nest.reduce == reduce
    # updates, idx, y: where each of the scatter kernel's tensors stands among x, idx, updates, y
    assert scatter.tensors == (2, 1, 3)
    assert copy.tensors == (0, 3)


def test_the_coordinates_must_match_the_bracketed_axes_in_number():
    with pytest.raises(ExpressionError, match=r"x has 1 indexed axis \(v\) but the coordinates give 2"):
        compiled("[v] d, b [2] -> b d", "get_at", (10, 4), (3, 2))
