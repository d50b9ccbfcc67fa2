r"""Importance-weighted estimates of :math:`\log p(x)` and the IWAE bound (Burda et al. 2016).

With :math:`z_1, \dots, z_k \sim q_\phi(z \mid x)` and weights
:math:`w_i = p_\theta(x, z_i) / q_\phi(z_i \mid x)`,

.. math::
    \mathcal L_k(x) = \mathbb E\Big[\log \frac1k \sum_{i=1}^k w_i\Big], \qquad
    \mathcal L_1 = \text{ELBO} \le \mathcal L_k \le \mathcal L_{k+1} \le \log p_\theta(x),

and :math:`\mathcal L_k \to \log p_\theta(x)` as :math:`k \to \infty`. :func:`log_weights`
computes :math:`\log w_i` for any model/guide pair by tracing the guide under a particle plate
and replaying the model against it (``pyro.poutine``); :func:`importance_log_likelihood`
evaluates :math:`\log \frac1k \sum_i w_i` with ``k`` up to thousands in memory-bounded chunks,
merged with a running log-sum-exp; :class:`IWAE_ELBO` is the bound as an ``SVI`` objective.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pyro
import torch
from pyro import poutine
from pyro.distributions.util import scale_and_mask
from pyro.poutine.util import site_is_subsample
from torch import Tensor

from flowdist.transforms.base import check_dim

__all__ = ["IWAE_ELBO", "importance_log_likelihood", "log_weights"]

_PARTICLES = "_iw_particles"


def _scored(site: dict[str, Any]) -> bool:
    """Whether a trace node is a sample site with a log-density in the weights."""
    if site["type"] != "sample" or site["name"] == _PARTICLES:
        return False
    return not site["infer"].get("_do_not_score") and site["fn"] is not None


def log_weights(
    model: Callable[..., Any],
    guide: Callable[..., Any],
    *args: Any,
    num_particles: int,
    **kwargs: Any,
) -> tuple[Tensor, Tensor]:
    r""":math:`\log p(x, z_i) - \log q(z_i \mid x)` of ``num_particles`` guide draws, shape
    ``(num_particles, batch)``, and the data plate's subsampling scale.

    The model and guide must put every site inside one data plate at ``dim=-1`` (as flowdist's
    VAEs do); particles are drawn in parallel in a plate at ``dim=-2``. Log-densities are
    unscaled (one data point each); the scale is returned separately.
    Sites masked by ``poutine.mask`` (or ``obs_mask``) count only where their mask is true.
    """
    check_dim("num_particles", num_particles)
    with pyro.plate(_PARTICLES, num_particles, dim=-2):
        guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(
            *args, **kwargs
        )
    total: Tensor | float = 0.0
    scale = 1.0
    for trace, sign in ((model_trace, 1.0), (guide_trace, -1.0)):
        for site in filter(_scored, trace.nodes.values()):
            lp = scale_and_mask(site["fn"].log_prob(site["value"]), mask=site["mask"])
            total = total + sign * lp
            scale = site["scale"]
    if not isinstance(total, Tensor) or total.dim() != 2:
        raise ValueError("log_weights: the model and guide must sample inside a data plate")
    return total, torch.as_tensor(scale)


@torch.no_grad()
def importance_log_likelihood(
    model: Callable[..., Any],
    guide: Callable[..., Any],
    *args: Tensor,
    k: int = 5000,
    batch_size: int = 100,
    max_elements: int = 2**24,
    **kwargs: Any,
) -> tuple[Tensor, Tensor]:
    r"""Per-example importance-sampling estimate :math:`\log \frac1k \sum_{i=1}^k w_i` and the
    ELBO estimate :math:`\frac1k \sum_i \log w_i`, both of shape ``(N,)``.

    ``args`` are the model's data tensors (e.g. ``x`` or ``x, y``), split into batches of
    ``batch_size`` data points, as are keyword tensors with one row per data point (``y=y``;
    other keyword arguments reach the model unchanged); the ``k`` particles of a batch are
    drawn in chunks of at most ``max_elements / (batch_size * numel(x[0]))`` so that memory
    stays bounded whatever ``k``.
    No data points (``len(x) == 0``) give empty results. Seed with ``pyro.set_rng_seed`` for
    reproducibility.
    """
    check_dim("k", k)
    check_dim("batch_size", batch_size)
    check_dim("max_elements", max_elements)
    x = args[0] if args else None
    if not _batched(x):
        raise TypeError(f"x must be a tensor with a batch dimension, got {_describe(x)}")
    n = x.shape[0]
    if not n:
        return x.new_zeros(0), x.new_zeros(0)
    per_point = max(1, args[0][:1].numel())
    iwae, elbo = [], []
    for start in range(0, n, batch_size):
        rows = slice(start, start + batch_size)
        batch = [a[rows] if _batched(a) else a for a in args]
        named = {
            key: a[rows] if _batched(a) and a.shape[0] == n else a for key, a in kwargs.items()
        }
        chunk = max(1, min(k, max_elements // (per_point * batch[0].shape[0])))
        lse = None
        sum_lw = 0.0
        for first in range(0, k, chunk):
            lw, _ = log_weights(model, guide, *batch, num_particles=min(chunk, k - first), **named)
            part = lw.logsumexp(0)
            lse = part if lse is None else torch.logaddexp(lse, part)
            sum_lw = sum_lw + lw.sum(0)
        iwae.append(lse - math.log(k))
        elbo.append(sum_lw / k)
    return torch.cat(iwae), torch.cat(elbo)


class IWAE_ELBO:
    r"""The importance-weighted bound :math:`\mathcal L_k` (Burda et al. 2016) as a training
    objective: loss :math:`= -\text{scale} \sum_b \big(\operatorname{logsumexp}_i \log w_{ib}
    - \log k\big)` with ``k = num_particles`` and the data plate's subsampling scale.

    A callable loss, so ``SVI(model, guide, optim, loss=IWAE_ELBO(k))`` takes it, with the
    ``differentiable_loss`` method of Pyro's ELBOs. Unlike ``pyro.infer.RenyiELBO(alpha=0)``,
    which applies the log-mean-exp to the weight of the whole minibatch, the bound here is per
    data point, as in the paper. Every latent site of the guide must be reparameterised
    (``has_rsample``): the bound's gradient has no score-function term, so a discrete guide
    site (the label of :class:`~flowdist.vae.SemiSupervisedVAE`'s unlabelled data, say) would
    get none and is refused; enumerate it, or use ``TraceEnum_ELBO`` / ``Trace_ELBO``.
    """

    def __init__(self, num_particles: int = 5) -> None:
        check_dim("num_particles", num_particles)
        self.num_particles = num_particles

    def differentiable_loss(
        self, model: Callable[..., Any], guide: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Tensor:
        guide = poutine.trace(guide)
        lw, scale = log_weights(model, guide, *args, num_particles=self.num_particles, **kwargs)
        for site in filter(_scored, guide.trace.nodes.values()):
            if not (site["is_observed"] or site_is_subsample(site) or site["fn"].has_rsample):
                raise ValueError(
                    f"IWAE_ELBO: guide site {site['name']!r} ({type(site['fn']).__name__}) is not "
                    "reparameterised, and this bound has no score-function gradient for it; "
                    "use an ELBO that handles it (TraceEnum_ELBO, Trace_ELBO)"
                )
        bound = lw.logsumexp(0) - math.log(self.num_particles)
        return -(scale * bound.sum())

    __call__ = differentiable_loss


def _batched(value: Any) -> bool:
    """Whether ``value`` is a tensor with a batch dimension to split (anything else is passed
    to the model as it is, for the model to judge)."""
    return isinstance(value, Tensor) and value.dim() > 0


def _describe(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return type(value).__name__
