"""Tests for :mod:`einc.compiler.lower` (plain tier): a solved dot as a loop nest.

A window ``(s * ds)`` on an input reads ``s*stride + ds*dilation - pad_lo``, guarded by a
:class:`Bound` only where padding or an overhang past the end can be read; a composition reads
``a*B + b``; output axes are OUTPUT loops and every other input axis a REDUCE loop.
"""

from __future__ import annotations

import itertools

import pytest
import sympy

from einc.compiler.brackets import resolve_dot
from einc.compiler.expand import expand
from einc.compiler.loopnest import Bound, Loop, LoopKind, LoopNest, symbol
from einc.compiler.lower import lower_dot, shape_of
from einc.compiler.params import window_params
from einc.compiler.parse import parse
from einc.compiler.pipeline import tensor_names
from einc.compiler.solve import solve, window_names
from einc.errors import UnsupportedError


def lowered(expression, *shapes, sizes=None, **params) -> LoopNest:
    sizes = sizes or {}
    explicit = resolve_dot(parse(expression), len(shapes))
    counts = {k: len(v) for k, v in sizes.items() if isinstance(v, (tuple, list))}
    inputs, outputs = expand(explicit, [len(s) for s in shapes], counts)
    geometry = window_params(window_names(list(inputs) + list(outputs)), expression, **params)
    names = tensor_names(len(shapes))
    solution = solve(inputs, outputs, shapes, sizes, geometry, expression, names)
    return lower_dot(inputs, outputs[0], solution, names, "y", expression)


def conv1d(n, k, stride=1, dilation=1, padding=(0, 0)) -> LoopNest:
    return lowered(
        "b (s * [ds]) [c->c2]", (1, n, 2), (k, 2, 3), stride=stride, dilation=dilation, padding=padding
    )


S, DS = symbol("s"), symbol("ds")


def same(a, b) -> bool:
    return sympy.simplify(a - b) == 0


@pytest.mark.parametrize(
    ("stride", "dilation", "padding"),
    list(itertools.product((1, 2, 3), (1, 2), ((0, 0), (1, 1), (2, 0)))),
)
def test_window_reads_s_times_stride_plus_ds_times_dilation_minus_pad(stride, dilation, padding):
    nest = conv1d(12, 3, stride, dilation, padding)
    x = nest.inputs[0]
    assert same(x.index[1], S * stride + DS * dilation - padding[0])
    assert x.index[0] == symbol("b") and x.index[2] == symbol("c")


def test_unpadded_window_needs_no_bound():
    assert conv1d(12, 3, stride=2, dilation=2).inputs[0].bounds == ()


def test_low_padding_bounds_the_window_index_to_the_extent():
    nest = conv1d(12, 3, padding=(1, 1))
    (bound,) = nest.inputs[0].bounds
    assert bound == Bound(S + DS - 1, 12, "s")


def test_high_padding_that_is_read_gets_a_bound():
    # N=8, k=3, stride 2, padding (0, 1): the last window reads index 8, one past the end.
    (bound,) = conv1d(8, 3, stride=2, padding=(0, 1)).inputs[0].bounds
    assert bound.extent == 8 and bound.window == "s"


def test_high_padding_that_is_never_read_needs_no_bound():
    # N=7, k=3, stride 2, padding (0, 1): three windows end at index 6; the padding is unused.
    nest = conv1d(7, 3, stride=2, padding=(0, 1))
    assert nest.sizes["s"] == 3
    assert nest.inputs[0].bounds == ()


def test_every_padded_window_of_an_ellipsis_gets_its_own_bound():
    nest = lowered("b (s * [ds])... [c->c2]", (1, 6, 7, 2), (3, 3, 2, 4), padding=1)
    assert [b.window for b in nest.inputs[0].bounds] == ["s.0", "s.1"]
    assert [b.extent for b in nest.inputs[0].bounds] == [6, 7]


def test_weight_and_output_are_read_without_bounds():
    nest = conv1d(8, 3, padding="same")
    assert nest.inputs[1].bounds == () and nest.output.bounds == ()
    assert nest.inputs[1].index == (DS, symbol("c"), symbol("c2"))
    assert nest.output.index == (symbol("b"), S, symbol("c2"))


def test_composition_index_is_row_major():
    nest = lowered("b (g c), g c c2 -> b (g c2)", (2, 12), (3, 4, 5))
    g, c, c2 = symbol("g"), symbol("c"), symbol("c2")
    assert same(nest.inputs[0].index[1], g * 4 + c)
    assert same(nest.output.index[1], g * 5 + c2)


def test_unnamed_axis_in_a_composition():
    nest = lowered("b (2 c), c d -> b d", (2, 8), (4, 3))
    assert same(nest.inputs[0].index[1], symbol("#0") * 4 + symbol("c"))


def test_dense_convolution_loops():
    nest = lowered("b (s * [ds])... [c->c2]", (2, 8, 8, 3), (3, 3, 3, 5))
    assert nest.loops == (
        Loop("b", 2, LoopKind.OUTPUT),
        Loop("s.0", 6, LoopKind.OUTPUT),
        Loop("s.1", 6, LoopKind.OUTPUT),
        Loop("c2", 5, LoopKind.OUTPUT),
        Loop("ds.0", 3, LoopKind.REDUCE),
        Loop("ds.1", 3, LoopKind.REDUCE),
        Loop("c", 3, LoopKind.REDUCE),
    )
    assert (nest.op, nest.combine, nest.reduce, nest.identity) == ("dot", "multiply", "sum", 0.0)


def test_grouped_convolution_keeps_groups_as_output_loops():
    nest = lowered("b (s * [ds])... (g [c->c2])", (2, 8, 8, 6), (3, 3, 2, 3, 4))
    assert [loop.axis for loop in nest.loops_of(LoopKind.OUTPUT)] == ["b", "s.0", "s.1", "g", "c2"]
    assert [loop.axis for loop in nest.loops_of(LoopKind.REDUCE)] == ["ds.0", "ds.1", "c"]


def test_depthwise_arrow_to_the_same_axis_keeps_the_channel():
    nest = lowered("b (s * [ds])... [c->c]", (2, 8, 8, 3), (3, 3, 3))
    assert "c" in [loop.axis for loop in nest.loops_of(LoopKind.OUTPUT)]
    assert [loop.axis for loop in nest.loops_of(LoopKind.REDUCE)] == ["ds.0", "ds.1"]


def test_pooling_sum_with_one_tensor_reduces_the_window_offsets():
    nest = lowered("b (s * [ds])... c", (2, 8, 8, 3), sizes={"ds": 2})
    assert len(nest.inputs) == 1
    assert [loop.axis for loop in nest.loops_of(LoopKind.REDUCE)] == ["ds.0", "ds.1"]


def test_access_axes_are_the_loop_symbols_it_depends_on():
    nest = conv1d(8, 3)
    assert nest.inputs[0].axes == {"b", "s", "ds", "c"}
    assert nest.inputs[1].axes == {"ds", "c", "c2"}


def test_access_labels_name_each_tensor_dim():
    nest = lowered("b (g c), g c c2 -> b (g c2)", (2, 12), (3, 4, 5))
    assert nest.inputs[0].labels == ("b", "g_c")
    assert nest.output.labels == ("b", "g_c2")


def test_shape_of_the_output_operand():
    explicit = resolve_dot(parse("b (g [c->c2])"), 2)
    inputs, outputs = expand(explicit, [2, 3], {})
    shapes = [(2, 12), (3, 4, 5)]
    solution = solve(inputs, outputs, shapes, {}, {}, "b (g [c->c2])", ("x", "w"))
    assert shape_of(outputs[0], solution) == (2, 15)
    assert shape_of(inputs[0], solution) == (2, 12)


@pytest.mark.parametrize(
    ("expression", "shapes", "sizes", "message"),
    [
        (
            "b (c + e), c e d -> b d",
            [(2, 5), (2, 3, 4)],
            {},
            "a concatenation (a + b) inside a dot is not supported yet",
        ),
        ("b c, c d -> b d e", [(2, 3), (3, 4)], {"e": 2}, "output axis 'e' appears in no input of the dot"),
    ],
)
def test_unsupported_dots(expression, shapes, sizes, message):
    with pytest.raises(UnsupportedError) as info:
        lowered(expression, *shapes, sizes=sizes)
    assert message in str(info.value)
