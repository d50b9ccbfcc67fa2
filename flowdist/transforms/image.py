r"""Image pre-processing for density estimation: uniform dequantisation and RealNVP's logit
transform, with the bookkeeping between the scales at which log-likelihoods are reported.

**Dequantisation.** Pixels with :math:`L` levels, :math:`k \in \{0, \dots, L-1\}^D`, become
:math:`y = (k + u)/L \in [0, 1)^D` with :math:`u \sim \mathcal U[0, 1)^D`. A density :math:`p` on
:math:`[0, 1]^D` defines the discrete model :math:`P(k) = \int_{[k, k+1)/L} p(y)\,dy`, and by
Jensen's inequality

.. math::
    \log P(k) \ge \mathbb E_u\left[\log p\big((k + u)/L\big)\right] - D \log L,

so nats on the :math:`[0, 1]` scale convert to a bound on the discrete log-likelihood by
subtracting :math:`D \log L`, and to bits per dimension by
:math:`-\big(\log p - D \log L\big) / (D \log 2)` (:func:`bits_per_dim`).

**Logit.** RealNVP models :math:`z = \operatorname{logit}(\alpha + (1 - 2\alpha) y)` instead of
:math:`y`; as a bijector inside the flow its Jacobian,

.. math::
    \log\left|\det \frac{\partial z}{\partial y}\right| = \sum_i \Big(\log(1 - 2\alpha)
        - \log p_i - \log(1 - p_i)\Big), \qquad p_i = \alpha + (1 - 2\alpha) y_i,

enters :math:`\log p(y)` through the change of variables, so a flow whose last transform is
``LogitTransform(...).inv`` reports densities on the :math:`[0, 1]` scale.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import constraints

from flowdist.transforms.base import check_dim
from flowdist.transforms.permutation import StatelessBijector

__all__ = ["LogitTransform", "bits_per_dim", "dequantize", "discrete_log_likelihood"]


def _check_levels(levels: int) -> None:
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 2:
        raise ValueError(f"levels must be an integer >= 2, got {levels!r}")


def dequantize(x: Tensor, levels: int = 256, *, generator: torch.Generator | None = None) -> Tensor:
    r"""Uniform dequantisation :math:`(k + u)/L`, :math:`u \sim \mathcal U[0, 1)`.

    Args:
        x: integer pixel values :math:`k \in \{0, \dots, L - 1\}` (an integer or floating
            tensor); the result has ``x``'s dtype if floating, else the default dtype.
        levels: :math:`L`.
        generator: random generator of :math:`u`.
    """
    _check_levels(levels)
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.numel() and (x.min() < 0 or x.max() >= levels):
        raise ValueError(
            f"x must hold pixel levels in [0, {levels}) (levels={levels}), got values in "
            f"[{x.min().item()}, {x.max().item()}]"
        )
    if x.is_floating_point() and not torch.equal(x, x.floor()):
        raise ValueError(f"x must hold integer pixel levels 0..{levels - 1}, got fractions")
    dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
    u = torch.rand(x.shape, generator=generator, dtype=dtype, device=x.device)
    return (x.to(dtype) + u) / levels


def discrete_log_likelihood(log_prob: Tensor, num_dims: int, levels: int = 256) -> Tensor:
    r"""Nats on the :math:`L`-level scale: :math:`\log p - D \log L`, a lower bound on
    :math:`\log P(k)` when ``log_prob`` is the density on :math:`[0, 1]^D` at dequantised
    data."""
    check_dim("num_dims", num_dims)
    _check_levels(levels)
    return log_prob - num_dims * math.log(levels)


def bits_per_dim(log_prob: Tensor, num_dims: int, levels: int = 256) -> Tensor:
    r"""Bits per dimension on the :math:`L`-level scale,
    :math:`-(\log p - D \log L) / (D \log 2)`, from the density on :math:`[0, 1]^D`."""
    return -discrete_log_likelihood(log_prob, num_dims, levels) / (num_dims * math.log(2))


class LogitTransform(StatelessBijector):
    r"""RealNVP's pre-processing :math:`z = \operatorname{logit}(\alpha + (1 - 2\alpha) y)`
    from :math:`[0, 1]` to :math:`\mathbb R`, elementwise on events of ``event_shape``. Put
    ``LogitTransform(...).inv`` last in a flow to model pixels in :math:`[0, 1]`.

    Args:
        event_shape: the event shape, e.g. ``C, H, W`` or ``D``.
        alpha: :math:`\alpha \in [0, 1/2)`, keeping the logit away from :math:`\pm\infty`
            (RealNVP: 0.05).
    """

    def __init__(self, *event_shape: int, alpha: float = 0.05) -> None:
        super().__init__()
        if not event_shape:
            raise ValueError("event_shape: give at least one dimension")
        for n in event_shape:
            check_dim("event_shape", n)
        if not 0 <= alpha < 0.5:
            raise ValueError(f"alpha must lie in [0, 0.5), got {alpha}")
        self._event_shape = tuple(event_shape)
        self.alpha = float(alpha)
        n = len(event_shape)
        pad = self.alpha / (1 - 2 * self.alpha)  # the logit is finite on [-pad, 1 + pad]
        self.domain = constraints.independent(constraints.interval(-pad, 1 + pad), n)
        self.codomain = constraints.independent(constraints.real, n)

    @property
    def event_shape(self) -> tuple[int, ...]:
        return self._event_shape

    def _sum(self, v: Tensor) -> Tensor:
        return v.sum(tuple(range(-len(self._event_shape), 0)))

    def _call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        p = self.alpha + (1 - 2 * self.alpha) * x
        z = torch.log(p) - torch.log1p(-p)
        log_dp = -torch.log(p) - torch.log1p(-p)
        return z, self._sum(log_dp) + math.prod(self._event_shape) * math.log1p(-2 * self.alpha)

    def _inverse_and_ladj(self, z: Tensor) -> tuple[Tensor, Tensor]:
        x = (torch.sigmoid(z) - self.alpha) / (1 - 2 * self.alpha)
        log_dp = -F.softplus(-z) - F.softplus(z)  # log σ(z) + log(1 - σ(z))
        return x, self._sum(log_dp) - math.prod(self._event_shape) * math.log1p(-2 * self.alpha)
