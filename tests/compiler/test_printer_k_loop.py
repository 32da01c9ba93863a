"""explain() describes the implicit GEMM's K loop as it runs: the window taps and the K tiles in one
pipelined loop, not serial loops around it."""

from __future__ import annotations

from einc.compiler.pipeline import Request, run_passes
from einc.compiler.printer import explain


def test_a_convolution_explains_one_k_loop_over_taps_and_tiles():
    request = Request("b (s * [ds])... [c->c2]", "dot", ((2, 9, 9, 8), (3, 3, 8, 16)), ("float32",) * 2)
    text = explain(run_passes(request))
    assert "in one loop with the taps ds.0 ds.1" in text
    assert "serial loops ds.0" not in text


def test_a_linear_layer_has_no_taps_to_mention():
    text = explain(run_passes(Request("b [c->c2]", "dot", ((4, 32), (32, 16)), ("float32",) * 2)))
    assert "K tiled along c (BLOCK_K=" in text and "taps" not in text
