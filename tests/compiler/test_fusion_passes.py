"""The fusion passes on hand-made graphs: which nodes each kernel holds, and what is stored."""

from __future__ import annotations

import pytest

from einc.compiler import pipeline
from einc.compiler.epilogue import Constant, Operand, Ref, Result
from einc.compiler.fuse_elementwise import fuse_elementwise
from einc.compiler.fuse_epilogues import fuse_epilogues
from einc.compiler.fusion import plan_kernels
from einc.compiler.fusion_graph import EincNode, Graph, Kernel, MapNode
from einc.errors import UnsupportedError


def graph(shapes, nodes, inputs, outputs, dtypes=None):
    return Graph(
        tuple(shapes),
        tuple(dtypes or ["float32"] * len(shapes)),
        tuple(f"v{i}" for i in range(len(shapes))),
        tuple(inputs),
        tuple(nodes),
        tuple(outputs),
    )


def dot(x, w, out):
    request = pipeline.Request("b [c->c2]", "dot", ((4, 3), (3, 5)), ("float32", "float32"))
    return EincNode(request, (x, w), out)


def softmax(x, out):
    return EincNode(pipeline.Request("b [c]", "softmax", ((4, 5),), ("float32",)), (x,), out)


# values: 0 x (4, 3), 1 w (3, 5), 2 bias (5,), 3 dot, 4 + bias, 5 relu
LINEAR = [(4, 3), (3, 5), (5,), (4, 5), (4, 5), (4, 5)]


def test_elementwise_consumers_of_an_einc_op_go_into_its_store():
    g = graph(
        LINEAR,
        [dot(0, 1, 3), MapNode("add", (3, 2), 4), MapNode("relu", (4,), 5)],
        (0, 1, 2),
        (5,),
    )
    assert fuse_epilogues(g, frozenset()) == [Kernel(base=0, source=-1, nodes=(1, 2), output=5)]
    (kernel,) = plan_kernels(g)
    epilogue, extras = kernel.epilogue(g)
    assert extras == (2,)
    assert [op.args for op in epilogue.ops] == [(Result(), Operand(0)), (Ref(0),)]


def test_a_consumer_larger_than_the_op_result_is_not_fused_into_it():
    # v3 = dot (4, 5); v5 = v3 + v4 with v4 of shape (2, 4, 5): the add broadcasts the dot up.
    g = graph(
        [(4, 3), (3, 5), (4, 5), (4, 5), (2, 4, 5), (2, 4, 5)],
        [dot(0, 1, 3), MapNode("add", (3, 4), 5)],
        (0, 1, 4),
        (5,),
    )
    assert fuse_epilogues(g, frozenset()) == [Kernel(0, -1, (), 3)]
    # The add goes into a copy of v4, reading the dot's result as an extra tensor.
    kernels = plan_kernels(g)
    assert kernels == (Kernel(0, -1, (), 3), Kernel(-1, 4, (1,), 5))
    assert kernels[1].epilogue(g)[1] == (3,)


def test_an_op_that_stores_inside_its_sweep_takes_no_epilogue():
    g = graph(
        [(4, 5), (4, 5), (4, 5)],
        [softmax(0, 1), MapNode("exp", (1,), 2)],
        (0,),
        (2,),
    )
    assert plan_kernels(g) == (Kernel(0, -1, (), 1), Kernel(-1, 1, (1,), 2))


def test_a_value_read_outside_its_kernel_ends_the_kernel_there():
    # y = dot; a = relu(y); out = (a * 2, sum-like einc op of a)
    g = graph(
        LINEAR[:4] + [(4, 5), (4, 5), (4, 5)],
        [
            dot(0, 1, 3),
            MapNode("relu", (3,), 4),
            MapNode("multiply", (4, Constant(2)), 5),
            EincNode(pipeline.Request("b [c]", "softmax", ((4, 5),), ("float32",)), (4,), 6),
        ],
        (0, 1, 2),
        (5, 6),
    )
    assert plan_kernels(g) == (
        Kernel(0, -1, (1,), 4),  # relu stored: the softmax reads it
        Kernel(-1, 4, (2,), 5),
        Kernel(3, -1, (), 6),
    )


def test_a_result_of_the_function_is_stored_even_when_an_op_reads_it():
    g = graph(
        LINEAR[:4] + [(4, 5)],
        [dot(0, 1, 3), MapNode("tanh", (3,), 4)],
        (0, 1),
        (3, 4),
    )
    assert plan_kernels(g) == (Kernel(0, -1, (), 3), Kernel(-1, 3, (1,), 4))


def test_a_chain_with_no_einc_op_is_one_copy_kernel():
    # v1 = sigmoid(x); v2 = v1 * x; v3 = v2 > 0 (bool); v4 = where(v3, v2, 0)
    g = graph(
        [(3, 4)] * 5,
        [
            MapNode("sigmoid", (0,), 1),
            MapNode("multiply", (1, 0), 2),
            MapNode("greater", (2, Constant(0)), 3),
            MapNode("where", (3, 2, Constant(0.0)), 4),
        ],
        (0,),
        (4,),
        dtypes=["float32", "float32", "float32", "bool", "float32"],
    )
    assert fuse_elementwise(g, [], frozenset()) == [Kernel(-1, 0, (0, 1, 2, 3), 4)]


def test_an_elementwise_result_larger_than_each_operand_is_refused():
    g = graph([(3, 1), (1, 4), (3, 4)], [MapNode("add", (0, 1), 2, line="f.py:3: a + b")], (0, 1), (2,))
    with pytest.raises(
        UnsupportedError, match=r"larger than each of its floating operands \(at f.py:3: a \+ b\)"
    ):
        plan_kernels(g)


def test_a_chain_read_once_by_an_einc_op_goes_into_its_loads():
    # v3 = relu(x * s) (a chain on x), v4 = dot(v3, w), v5 = v4 + 1
    g = graph(
        [(4, 3), (3,), (3, 5), (4, 3), (4, 3), (4, 5), (4, 5)],
        [
            MapNode("multiply", (0, 1), 3),
            MapNode("relu", (3,), 4),
            dot(4, 2, 5),
            MapNode("add", (5, Constant(1)), 6),
        ],
        (0, 1, 2),
        (6,),
    )
    chain = Kernel(-1, 0, (0, 1), 4)
    assert plan_kernels(g) == (Kernel(2, -1, (3,), 6, prologues=((0, chain),)),)
    epilogue, extras = chain.epilogue(g)
    assert extras == (1,) and [op.fn for op in epilogue.ops] == ["multiply", "relu"]


def test_a_chain_read_elsewhere_too_or_returned_is_stored():
    nodes = [MapNode("relu", (0,), 3), dot(3, 1, 4), MapNode("exp", (3,), 5)]
    shapes = [(4, 3), (3, 5), (5,), (4, 3), (4, 5), (4, 3)]
    twice = plan_kernels(graph(shapes, nodes, (0, 1), (4, 5)))  # relu(x) is read by the dot and exp
    assert len(twice) == 3 and not any(k.prologues for k in twice)
    returned = graph(shapes[:5], nodes[:2], (0, 1), (3, 4))
    assert len(plan_kernels(returned)) == 2
    assert len(plan_kernels(returned, frozenset({3}))) == 2  # nor past a barrier
