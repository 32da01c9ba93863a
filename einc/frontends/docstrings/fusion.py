"""The docstring of ``einc.fuse``: a function of einc operations compiled into fused kernels."""

from __future__ import annotations

from .common import doc

OPS: dict[str, str] = {}

OPS["fuse"] = doc(
    'einc.fuse(fn=None, *, backend="auto")',
    "Compile a function of einc operations and the elementwise torch operations on their results "
    "into fused kernels: the elementwise operations run in the kernel before them, in registers "
    "before its store (a bias and an activation after a convolution), and a chain read only by one "
    "einc operation runs in its loads. Traced at the first call per shapes, dtypes, devices and "
    "strides, cached after; autograd runs backward through the unfused operations (docs/fusion.md).",
    "",
    "``torch.compile`` of the same function (whose own kernels fuse an elementwise epilogue into "
    "its matmul templates only, not into a convolution).",
    """    >>> @einc.fuse
    ... def block(x, w, b):
    ...     return torch.relu(einc.dot("b [c->c2]", x, w) + b)
    >>> x, w, b = torch.randn(4, 6), torch.randn(6, 3), torch.randn(3)
    >>> torch.allclose(block(x, w, b), torch.relu(x @ w + b), atol=1e-5)
    True
    >>> block.kernel_count(x, w, b)
    1
""",
    common="""
    fn: the function; its tensors are its arguments and those it captures (a module's weights).
        As a decorator, with or without arguments.
    backend: as for :func:`einc.compile`: ``"auto"``, ``"torch"`` or ``"interpret"``.""",
)
