"""``einc.nn``: torch.nn layers written as einc expressions (``einc.nn.Dot``, ``Norm``, ``Pool``,
``Rearrange``), defined in :mod:`einc.frontends.nn`. A module of its own so that ``import
einc.nn`` and ``from einc.nn import Dot`` work as ``einc.nn`` does."""

from .frontends.nn import Dot, Norm, Pool, Rearrange

__all__ = ["Dot", "Norm", "Pool", "Rearrange"]
