r"""Amortised variational posteriors :math:`q_\phi(z \mid x)`.

An encoder body maps the input to features :math:`h`; a linear head gives a diagonal Gaussian

.. math::
    q_0(z_0 \mid x) = \mathcal N\big(z_0; \mu(h), \operatorname{diag} \sigma(h)^2\big),
    \qquad z_0 = \mu + \sigma \odot \varepsilon, \; \varepsilon \sim \mathcal N(0, I),

(the reparameterisation: :math:`z_0` is a differentiable function of :math:`\phi` and noise),
optionally followed by :math:`K` bijectors whose parameters are also linear functions of
:math:`h` (Rezende & Mohamed 2015, DLGM+NF), :math:`z_K = f_K \circ \dots \circ f_1(z_0)`, with

.. math::
    \log q_K(z_K \mid x) = \log q_0(z_0 \mid x)
        - \sum_{k=1}^K \log\left|\det \frac{\partial f_k}{\partial z_{k-1}}\right|.

The bijectors are flowdist's amortised :class:`~flowdist.transforms.ConditionalTransform`
(planar by default), and the posterior is a :class:`~flowdist.flows.FlowDistribution`: a sample
and its log-density come out of one forward pass (the log-density of the sampled tensor hits
the bijectors' cache, no inverse is solved).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flowdist.flows import FlowDistribution
from flowdist.transforms import Bijector, ConditionalTransform, PlanarTransform
from flowdist.transforms.base import check_dim

__all__ = ["AmortizedGuide", "feature_size"]


def feature_size(body: nn.Module, in_shape: Sequence[int]) -> int:
    """The number of features ``body`` outputs for one input of shape ``in_shape``."""
    param = next(body.parameters(), torch.empty(0))
    with torch.no_grad():
        out = body(torch.zeros(2, *in_shape, dtype=param.dtype, device=param.device))
    if out.dim() != 2:
        raise ValueError(f"the encoder must output (batch, features), got shape {tuple(out.shape)}")
    return out.shape[-1]


class AmortizedGuide(nn.Module):
    r""":math:`q_\phi(z \mid \text{input})`: encoder body, diagonal-Gaussian head, and
    ``flow_steps`` amortised bijectors of class ``flow``.

    Args:
        body: maps inputs of shape ``(..., *in_shape)`` to features ``(..., F)``.
        in_shape: the shape of one input.
        z_dim: the latent size.
        flow_steps: the number :math:`K` of bijectors after the Gaussian (0: diagonal guide).
        flow: any :class:`~flowdist.transforms.Bijector` with an amortised form
            (``param_names``, ``param_shapes``, ``from_tensors``).
    """

    def __init__(
        self,
        body: nn.Module,
        in_shape: Sequence[int],
        z_dim: int,
        *,
        flow_steps: int = 0,
        flow: type[Bijector] = PlanarTransform,
    ) -> None:
        super().__init__()
        check_dim("z_dim", z_dim)
        if isinstance(flow_steps, bool) or not isinstance(flow_steps, int) or flow_steps < 0:
            raise ValueError(f"flow_steps must be a non-negative integer, got {flow_steps!r}")
        self.body = body
        self.z_dim = z_dim
        features = feature_size(body, in_shape)
        self.head = nn.Linear(features, 2 * z_dim)
        n_params = sum(math.prod(shape) for shape in flow.param_shapes(z_dim)) if flow_steps else 0
        self.steps = nn.ModuleList(
            ConditionalTransform(flow, z_dim, features, hyper=nn.Linear(features, n_params))
            for _ in range(flow_steps)
        )

    def gaussian(self, h: Tensor) -> dist.TorchDistribution:
        r"""The diagonal Gaussian :math:`q_0(z_0 \mid x)` from features ``h``."""
        loc, raw_scale = self.head(h).chunk(2, dim=-1)
        scale = F.softplus(raw_scale).clamp_min(torch.finfo(raw_scale.dtype).eps)
        return dist.Normal(loc, scale).to_event(1)

    def forward(self, inputs: Tensor) -> dist.TorchDistribution:
        h = self.body(inputs)
        base = self.gaussian(h)
        if not self.steps:
            return base
        return FlowDistribution(base, [step(h) for step in self.steps])
