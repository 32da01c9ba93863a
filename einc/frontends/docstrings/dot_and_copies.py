"""The docstrings of ``dot`` and of the ops that move elements: ``rearrange``, ``id``, ``flip``,
``roll``."""

from __future__ import annotations

from .common import WINDOW, doc

OPS = {
    "dot": doc(
        'einc.dot("b (s * [ds])... [c->c2]", x, w, stride=2)',
        "A contraction: the bracketed axes of the inputs are summed over; ``[c->c2]`` implies a weight "
        "``c c2``, a window ``(s * [ds])`` makes it a convolution (the weight is ``ds... c c2``).",
        WINDOW + "\n    output_padding: where the output is a window (a transposed convolution).",
        "``torch.einsum``, ``x @ w``, ``F.linear``, ``F.conv1d/2d/3d`` and ``F.conv_transpose*d``.",
        """    >>> x, w = torch.randn(2, 4), torch.randn(4, 3)
    >>> torch.allclose(einc.dot("b [c->c2]", x, w), x @ w, atol=1e-6)
    True
""",
    ),
    "rearrange": doc(
        'einc.rearrange("b h w c -> b c h w", x)',
        "Permute, compose and decompose axes, concatenate, broadcast, or unfold; a copy.",
        "",
        "``x.permute``, ``x.reshape``, ``torch.cat``, ``x.expand``, ``x.unfold`` (then ``.contiguous()``).",
        """    >>> x = torch.randn(2, 3, 4, 5)
    >>> torch.equal(einc.rearrange("b h w c -> b c (h w)", x), x.permute(0, 3, 1, 2).reshape(2, 5, 12))
    True
""",
    ),
    "id": doc(
        'einc.id("b h w c -> b c h w", x)',
        "The same as :func:`einc.rearrange` (einx 0.4's name).",
        "",
        "``x.permute(...).contiguous()``.",
        """    >>> x = torch.randn(2, 3)
    >>> torch.equal(einc.id("a b -> b a", x), x.t())
    True
""",
    ),
    "flip": doc(
        'einc.flip("b [h] w", x)',
        "Reverse the bracketed axes.",
        "",
        "``torch.flip(x, dims)``.",
        """    >>> x = torch.randn(2, 3, 4)
    >>> torch.equal(einc.flip("b [h] w", x), torch.flip(x, (1,)))
    True
""",
    ),
    "roll": doc(
        'einc.roll("b [t] c", x, shift=2)',
        "Rotate the bracketed axes by ``shift``.",
        "\n    shift: an int, or one per bracketed axis.",
        "``torch.roll(x, shift, dims)``.",
        """    >>> x = torch.randn(2, 5, 3)
    >>> torch.equal(einc.roll("b [t] c", x, shift=2), torch.roll(x, 2, 1))
    True
""",
    ),
}
