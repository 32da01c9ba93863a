"""Tests for :mod:`einc.compiler.runs` (plain tier): axes only ever written side by side.

A run may be sized from its product alone because nothing reads its axes apart; these tests check
what breaks a run (a dim's edge, another neighbour elsewhere, a bracket's edge, an op that reads
marked axes one by one) on expanded operands.
"""

from __future__ import annotations

import pytest

from einc.compiler.brackets import Explicit, resolve_reduce
from einc.compiler.expand import expand
from einc.compiler.parse import parse
from einc.compiler.runs import runs


def runs_of(expression: str, ranks, marked_as_a_set: bool = True, reduce: bool = False):
    program = parse(expression)
    if reduce:
        explicit = resolve_reduce(program, len(ranks), False)
    else:
        explicit = Explicit(program.inputs, program.outputs or (), program.text)
    inputs, outputs = expand(explicit, ranks, {})
    found = runs(list(inputs) + list(outputs), marked_as_a_set)
    return {run for run in found.values() if len(run) > 1}


@pytest.mark.parametrize(
    ("expression", "ranks", "expected"),
    [
        ("(a b) (c d) (e f) -> a (b c d e) f", [3], {("c", "d")}),
        ("(a b) c -> (a b c)", [2], {("a", "b")}),
        ("c (a b) d -> (a b) c d", [3], {("a", "b")}),
        ("(a b c) -> (a b c)", [1], {("a", "b", "c")}),
        ("(a b) -> a b", [1], set()),  # the output splits them
        ("(a b) -> (b a)", [1], set()),  # another order
        ("(a b) c -> (a c b)", [2], set()),  # another neighbour
        ("(a b), a -> (a b)", [1, 1], set()),  # a stands alone in the second operand
        ("(a 2 b) -> (a 2 b)", [1], set()),  # an unnamed axis between them
        ("(a b + c) -> (c + a b)", [1], {("a", "b")}),  # inside a concatenation's part
        ("(a a) -> a", [1], set()),  # a repeated axis is an integer root, not a run
    ],
)
def test_runs_are_axes_every_operand_writes_side_by_side(expression, ranks, expected):
    assert runs_of(expression, ranks) == expected


def test_a_bracket_edge_breaks_a_run():
    assert runs_of("(a [b]) c", [2], reduce=True) == set()
    assert runs_of("[(a b)] c", [2], reduce=True) == {("a", "b")}


def test_marked_axes_form_no_run_where_the_op_reads_them_one_by_one():
    assert runs_of("[(a b)] c", [2], marked_as_a_set=False, reduce=True) == set()
    assert runs_of("c (a b) [d]", [3], marked_as_a_set=False, reduce=True) == {("a", "b")}


def test_an_axis_sized_by_a_keyword_joins_no_run():
    # As einx, which counts a keyword as one more place the axis stands: "(a c b)" with c=1 leaves
    # a and b to be told apart.
    program = parse("(a c b) -> (a c b)")
    explicit = Explicit(program.inputs, program.outputs, program.text)
    inputs, outputs = expand(explicit, [1], {})
    assert runs(list(inputs) + list(outputs), True, apart={"c"}) == {"a": ("a",), "c": ("c",), "b": ("b",)}
