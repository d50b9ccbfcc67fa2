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

With ``flow="iaf"`` the steps are inverse autoregressive flows (Kingma et al. 2016) instead:
:math:`z_k = \mu_k(z_{k-1}, h) + \sigma_k(z_{k-1}, h) \odot z_{k-1}` with
:math:`(\mu_k, \log\sigma_k)_i` depending on :math:`z_{k-1, <i}` and :math:`h` through a MADE
that reads :math:`h` as context, so :math:`\log|\det| = \sum_i \log \sigma_{k,i}` and a
sample costs one MADE pass per step; the ordering of the units is reversed between steps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flowdist.flows import FlowDistribution
from flowdist.transforms import (
    Bijector,
    ConditionalTransform,
    ContextualTransform,
    MaskedAutoregressiveTransform,
    PlanarTransform,
)
from flowdist.transforms.base import check_dim

__all__ = ["AmortizedGuide", "check_module", "feature_size", "trial_output"]


def check_module(name: str, module: Any) -> None:
    """Raise a :class:`TypeError` naming ``name`` unless ``module`` is an :class:`nn.Module`."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(module).__name__}")


def trial_output(name: str, module: nn.Module, in_shape: Sequence[int]) -> Tensor:
    """``module``'s output for a batch of two zero inputs of shape ``in_shape`` (in its
    parameters' dtype and device); a :class:`ValueError` naming ``name`` if it cannot take
    them."""
    param = next(module.parameters(), torch.empty(0))
    try:
        with torch.no_grad():
            return module(torch.zeros(2, *in_shape, dtype=param.dtype, device=param.device))
    except RuntimeError as err:
        raise ValueError(
            f"{name} cannot take inputs of shape (batch, {', '.join(map(str, in_shape))}): {err}"
        ) from err


def feature_size(body: nn.Module, in_shape: Sequence[int]) -> int:
    """The number of features ``body`` outputs for one input of shape ``in_shape``."""
    out = trial_output("encoder", body, in_shape)
    if out.dim() != 2:
        raise ValueError(f"encoder must output (batch, features), got shape {tuple(out.shape)}")
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
            (``param_names``, ``param_shapes``, ``from_tensors``), or ``"iaf"`` for inverse
            autoregressive steps whose MADE reads the features as context.
    """

    def __init__(
        self,
        body: nn.Module,
        in_shape: Sequence[int],
        z_dim: int,
        *,
        flow_steps: int = 0,
        flow: type[Bijector] | str = PlanarTransform,
    ) -> None:
        super().__init__()
        check_module("body", body)
        check_dim("z_dim", z_dim)
        if isinstance(flow_steps, bool) or not isinstance(flow_steps, int) or flow_steps < 0:
            raise ValueError(f"flow_steps must be a non-negative integer, got {flow_steps!r}")
        self.body = body
        self.z_dim = z_dim
        features = feature_size(body, in_shape)
        self.head = nn.Linear(features, 2 * z_dim)
        self.iaf = flow == "iaf"
        if self.iaf:
            steps = [
                ContextualTransform(
                    MaskedAutoregressiveTransform(
                        z_dim,
                        (max(64, 2 * z_dim),) * 2,
                        context_features=features,
                        order=range(z_dim, 0, -1) if k % 2 else None,
                    ),
                    features,
                )
                for k in range(flow_steps)
            ]
        elif isinstance(flow, type) and issubclass(flow, Bijector):
            n_params = sum(math.prod(s) for s in flow.param_shapes(z_dim)) if flow_steps else 0
            steps = [
                ConditionalTransform(flow, z_dim, features, hyper=nn.Linear(features, n_params))
                for _ in range(flow_steps)
            ]
        else:
            raise TypeError(f"flow must be 'iaf' or a Bijector class, got {flow!r}")
        self.steps = nn.ModuleList(steps)

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
        steps = [step(h) for step in self.steps]
        return FlowDistribution(base, [t.inv for t in steps] if self.iaf else steps)
