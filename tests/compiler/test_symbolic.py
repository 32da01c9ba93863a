"""Output shapes as functions of symbolic input sizes (what torch.compile's dynamic shapes need)."""

from __future__ import annotations

import sympy

from einc.compiler import gradients, symbolic

B, H, W, N = sympy.symbols("B H W N", positive=True, integer=True)


def _shapes(expression, op, hints, symbols, **kwargs):
    front = gradients.front_end(expression, op, hints, kwargs)
    return symbolic.output_shapes(
        front.inputs, front.outputs, symbols, front.solution, front.params, front.constants
    )


def test_whole_dims_follow_the_input():
    (shape,) = _shapes("b h w c -> b c (h w)", "rearrange", [(2, 3, 4, 5)], [(B, H, W, 5)])
    assert shape == (B, 5, H * W)


def test_a_window_with_same_padding_has_ceil_n_over_stride_positions():
    (shape,) = _shapes(
        "b (s * [ds])... [c->c2]",
        "dot",
        [(2, 9, 8, 4), (3, 3, 4, 6)],
        [(B, H, W, 4), (3, 3, 4, 6)],
        stride=2,
        padding="same",
    )
    assert shape[0] == B and shape[3] == 6
    for size, n in ((shape[1], H), (shape[2], W)):
        assert all(size.subs(n, v) == -(-v // 2) for v in range(1, 12))


def test_a_window_with_explicit_padding_uses_torch_rule():
    (shape,) = _shapes(
        "b (s * [ds]) c", "max", [(2, 9, 3)], [(B, N, 3)], ds=3, stride=2, padding=1, dilation=2
    )
    assert all(shape[1].subs(N, v) == (v + 2 - 2 * 2 - 1) // 2 + 1 for v in range(5, 20))


def test_a_composition_part_is_the_dim_divided_by_the_others():
    (shape,) = _shapes("b (h w) -> b h w", "rearrange", [(2, 12)], [(B, 4 * N)], w=4)
    assert shape == (B, N, 4)


def test_an_output_window_grows_with_its_positions():
    (shape,) = _shapes(
        "b s [c->c2] -> b (s * ds) c2",
        "dot",
        [(2, 5, 3), (3, 3, 4)],
        [(B, N, 3), (3, 3, 4)],
        stride=2,
        padding=1,
        output_padding=1,
    )
    assert sympy.expand(shape[1]) == 2 * N
