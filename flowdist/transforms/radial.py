r"""Radial flow step (Rezende & Mohamed, 2015), with an exact closed-form inverse.

.. math::
    f(z) = z + \beta\, h(\alpha, r)\,(z - z_0), \qquad r = \lVert z - z_0\rVert,
    \quad h(\alpha, r) = \frac{1}{\alpha + r},

with :math:`\alpha = \operatorname{softplus}(\alpha') > 0` and
:math:`\beta = -\alpha + \operatorname{softplus}(\beta') > -\alpha` (invertibility). Since
:math:`1 - r h = \alpha h`, the log-determinant is

.. math::
    \log\left|\det \frac{\partial f}{\partial z}\right|
      = (d - 1)\log(1 + \beta h) + \log(1 + \beta\alpha h^2).

**Inverse.** :math:`y - z_0 = (1 + \beta h(r))(z - z_0)`, so :math:`s = \lVert y - z_0\rVert`
satisfies :math:`s = r + \beta r/(\alpha + r)`, the quadratic
:math:`r^2 + (\alpha + \beta - s) r - \alpha s = 0`. Its one non-negative root, computed without
cancellation, is

.. math::
    r = \begin{cases} 2\alpha s / (B + D) & B > 0 \\ (D - B)/2 & B \le 0 \end{cases},
    \qquad B = \alpha + \beta - s,\; D = \sqrt{B^2 + 4\alpha s},

and :math:`z = z_0 + (y - z_0)/(1 + \beta h(r))`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from flowdist.transforms.base import VectorBijector

__all__ = ["RadialTransform"]


class RadialTransform(VectorBijector):
    r"""Radial flow step :math:`f(z) = z + \beta (z - z_0)/(\alpha + \lVert z - z_0\rVert)`.

    Args:
        dim: the event size :math:`d`.
        generator: random generator for the initial parameters (uniform in :math:`\pm 1/\sqrt d`).
        cache_size: 1 (default) keeps the latest forward/inverse pair.
    """

    param_names = ("z0", "alpha_raw", "beta_raw")

    @classmethod
    def param_shapes(cls, dim: int) -> tuple[tuple[int, ...], ...]:
        return (dim,), (), ()

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (self.z0.shape[-1],)

    def alpha_beta(self) -> tuple[Tensor, Tensor]:
        r"""The constrained :math:`\alpha > 0` and :math:`\beta > -\alpha`."""
        alpha = F.softplus(self.alpha_raw)
        return alpha, F.softplus(self.beta_raw) - alpha

    def _ladj(self, alpha: Tensor, beta: Tensor, h: Tensor) -> Tensor:
        d = self.z0.shape[-1]
        return (d - 1) * torch.log1p(beta * h) + torch.log1p(beta * alpha * h * h)

    def _call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        alpha, beta = self.alpha_beta()
        diff = x - self.z0
        h = 1 / (alpha + torch.linalg.vector_norm(diff, dim=-1))
        y = x + (beta * h).unsqueeze(-1) * diff
        return y, self._ladj(alpha, beta, h)

    def _inverse_and_ladj(self, y: Tensor) -> tuple[Tensor, Tensor]:
        alpha, beta = self.alpha_beta()
        diff = y - self.z0
        s = torch.linalg.vector_norm(diff, dim=-1)
        big_b = alpha + beta - s
        d = torch.sqrt(big_b * big_b + 4 * alpha * s)
        denominator = (big_b.abs() + d).clamp_min(torch.finfo(d.dtype).tiny)
        r = torch.where(big_b > 0, 2 * alpha * s / denominator, 0.5 * (d - big_b))
        h = 1 / (alpha + r)
        x = self.z0 + diff / (1 + beta * h).unsqueeze(-1)
        return x, -self._ladj(alpha, beta, h)
