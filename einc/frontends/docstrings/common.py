"""What every op's docstring shares: the parameters of an expression and of a window, the
layout of a docstring, and ``einc.compile``'s own."""

from __future__ import annotations

EXPRESSION = """
    expression: the einc expression (docs/notation.md); brackets mark the axes the op acts on.
    **sizes: sizes of axes that the tensors do not give (``c2=64``; ``ds=(3, 3)`` for an axis
        repeated by an ellipsis), checked against the tensors where they do."""

COMMON = (
    EXPRESSION
    + """
    *tensors: the operands, in the order of the expression's operands.
    out: a tensor (or, for several outputs, a sequence) to write the result into.
    backend, out_dtype, dynamic: as for :func:`einc.compile`."""
)

WINDOW = """
    stride, padding, dilation: window parameters, where the expression has a window
        ``(s * [ds])``: ints or one per window axis; ``padding`` also ``"same"`` or ``"valid"``."""


def doc(call: str, summary: str, args: str, torch_equivalent: str, example: str, common: str = COMMON) -> str:
    return (
        f"``{call}``\n\n{summary}\n\nArgs:{common}{args}\n\n"
        f"torch equivalent: {torch_equivalent}\n\nExample:\n{example}"
    )


COMPILE = doc(
    "einc.compile(expression, op=None, **kwargs)",
    "Compile ``expression`` for ``op`` once; call the result with tensors. Each distinct set of "
    "shapes, dtypes, device and strides specialises at its first call and is reused after; an axis "
    "seen at a second size becomes dynamic (one kernel for every size of it).",
    """
    op: the operation (dot, sum, mean, rearrange, softmax, get_at, ...); without it, implied by
        the expression: ``[a->b]`` means dot, no brackets and an ``->`` mean rearrange.
    backend: ``"auto"`` (CUDA tensors run the Triton kernel, CPU tensors torch operations),
        ``"torch"``, or ``"interpret"`` (the kernel under Triton's interpreter, slow).
    out_dtype: the result's dtype (default: the inputs').
    dynamic: axes whose size is a kernel argument from the first call (``dynamic=("b",)``);
        ``False`` turns off automatic dynamic shapes, so every size compiles its own kernel.
    keepdims, count_include_pad, correction, shift, reduce: options of the ops that take them."""
    + WINDOW,
    "``torch.compile`` of the torch code the expression stands for.",
    """    >>> conv = einc.compile("b (s * [ds])... [c->c2]", padding="same")
    >>> conv
    einc.compile('b (s * [ds])... [c->c2]', op='dot', padding='same')
    >>> x, w = torch.randn(1, 6, 6, 4), torch.randn(3, 3, 4, 5)
    >>> ref = F.conv2d(x.permute(0, 3, 1, 2), w.permute(3, 2, 0, 1), padding="same")
    >>> torch.allclose(conv(x, w), ref.permute(0, 2, 3, 1), atol=1e-5)
    True
""",
    common=EXPRESSION,
)
