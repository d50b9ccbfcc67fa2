r"""Ready-made flows on :math:`\mathbb R^d` from Rezende & Mohamed (2015): planar and radial."""

from __future__ import annotations

import torch

from flowdist.flows.core import Flow, StandardNormal
from flowdist.transforms.base import check_dim
from flowdist.transforms.planar import PlanarStack
from flowdist.transforms.radial import RadialTransform

__all__ = ["PlanarFlow", "RadialFlow"]


class PlanarFlow(Flow):
    r"""``K`` planar steps on :math:`\mathcal N(0, I_d)`: :math:`x = f_K \circ \dots \circ f_1(z_0)`
    with :math:`f_k(z) = z + \hat u_k \tanh(w_k^\top z + b_k)`, as one fused
    :class:`~flowdist.transforms.PlanarStack`.
    """

    def __init__(self, dim: int, K: int, *, generator: torch.Generator | None = None) -> None:
        super().__init__([PlanarStack(dim, K, generator=generator)], StandardNormal(dim))


class RadialFlow(Flow):
    r"""``K`` radial steps on :math:`\mathcal N(0, I_d)`."""

    def __init__(self, dim: int, K: int, *, generator: torch.Generator | None = None) -> None:
        check_dim("K", K)
        super().__init__(
            [RadialTransform(dim, generator=generator) for _ in range(K)], StandardNormal(dim)
        )
