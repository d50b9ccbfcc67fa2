r"""The fully visible Boltzmann machine on binary vectors.

.. math::
    P(y) = \frac1Z \exp\big(\tfrac12 y^\top W y + b^\top y\big), \qquad y \in \{0, 1\}^d,

with :math:`W` symmetric and zero on the diagonal. Sampling is site-by-site Gibbs,
:math:`P(y_i = 1 \mid y_{-i}) = \sigma(\sum_j W_{ij} y_j + b_i)`. The log-likelihood gradient
with respect to the coupling :math:`W_{ij} = W_{ji}` (:math:`i < j`) and the bias is

.. math::
    \frac{\partial \log P(y)}{\partial W_{ij}} = \langle y_i y_j \rangle_\text{data}
        - \langle y_i y_j \rangle_\text{model}, \qquad
    \frac{\partial \log P(y)}{\partial b_i} = \langle y_i \rangle_\text{data}
        - \langle y_i \rangle_\text{model},

estimated with Monte-Carlo samples of the model (:func:`flowdist.ebm.train.train_cd` with
``persistent=True`` is maximum likelihood by stochastic approximation). :math:`\log Z` is exact
by enumeration for :math:`d \le 20`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import constraints

from flowdist.ebm.base import UnnormalizedDistribution
from flowdist.ebm.layered import base_rate_logits
from flowdist.ebm.partition import enumerate_log_sum_exp
from flowdist.mcmc.gibbs import bernoulli, site_gibbs_sweep
from flowdist.transforms.base import check_dim
from flowdist.validation import check_float_dtype, check_number, initial_draw

__all__ = ["BoltzmannMachine"]


def _pair_energy(y: Tensor, coupling: Tensor, bias: Tensor) -> Tensor:
    return -0.5 * ((y @ coupling) * y).sum(-1) - y @ bias


class BoltzmannMachine(UnnormalizedDistribution):
    r"""A fully visible binary Boltzmann machine on ``num_units`` units.

    ``weight`` is a parameter of which only the strict upper triangle is used:
    :attr:`coupling` :math:`= \operatorname{triu}(W, 1) + \operatorname{triu}(W, 1)^\top` is
    symmetric with a zero diagonal by construction. One :meth:`chain_step` is one sweep of
    site-by-site Gibbs over all units.
    """

    support = constraints.independent(constraints.boolean, 1)
    max_enumerable_units = 20

    def __init__(
        self,
        num_units: int,
        *,
        init_std: float = 0.01,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        validate_args: bool | None = None,
    ) -> None:
        check_dim("num_units", num_units)
        check_number("init_std", init_std, least=0.0)
        check_float_dtype("dtype", dtype)
        super().__init__(num_units, validate_args=validate_args)
        kw: dict[str, Any] = {"dtype": dtype or torch.get_default_dtype(), "device": device}
        self.num_units = num_units
        w = initial_draw(torch.randn, num_units, num_units, generator=generator, device=device)
        w = w * init_std
        self.weight = nn.Parameter(torch.triu(w, 1).add(torch.triu(w, 1).T).to(**kw))
        self.bias = nn.Parameter(torch.zeros(num_units, **kw))

    @property
    def coupling(self) -> Tensor:
        """The symmetric, zero-diagonal coupling matrix used by the model."""
        upper = torch.triu(self.weight, 1)
        return upper + upper.T

    def energy(self, x: Tensor) -> Tensor:
        r""":math:`E(y) = -\tfrac12 y^\top W y - b^\top y`."""
        self._check(x)
        return _pair_energy(x, self.coupling, self.bias)

    def _exact_log_partition(self) -> Tensor:
        coupling, bias = self.coupling.double(), self.bias.double()
        return enumerate_log_sum_exp(
            lambda y: -_pair_energy(y, coupling, bias),
            self.num_units,
            max_units=self.max_enumerable_units,
            what="the units",
            device=bias.device,
        )

    def init_chain(self, num_chains: int, generator: torch.Generator | None) -> Tensor:
        """Every unit an independent fair coin."""
        p = torch.full(
            (num_chains, self.num_units), 0.5, dtype=self.bias.dtype, device=self.bias.device
        )
        return bernoulli(p, generator)

    def chain_step(self, state: Tensor, generator: torch.Generator | None) -> Tensor:
        """One systematic-scan sweep of site-by-site Gibbs."""
        return site_gibbs_sweep(state, self.coupling, self.bias, generator)

    def sufficient_statistics(self, x: Tensor) -> list[Tensor]:
        r""":math:`\langle y y^\top \rangle` (strict upper triangle, the gradient with respect to
        ``weight``) and :math:`\langle y \rangle`, batch averages."""
        return [torch.triu(x.T @ x / x.shape[0], 1), x.mean(0)]

    def annealing_path(self, data: Tensor | None = None) -> _BoltzmannPath:
        return _BoltzmannPath(self, base_rate_logits(data, self.num_units, self.bias))


class _BoltzmannPath:
    r""":math:`\log f_\beta(y) = (1-\beta) b_A^\top y + \beta(\tfrac12 y^\top W y + b^\top y)`."""

    def __init__(self, model: BoltzmannMachine, base: Tensor) -> None:
        self.coupling, self.bias, self.base = model.coupling, model.bias, base
        self.log_z0 = float(F.softplus(base.double()).sum())

    def init(self, num_chains: int, generator: torch.Generator | None) -> Tensor:
        p = torch.sigmoid(self.base).expand(num_chains, -1).contiguous()
        return bernoulli(p, generator)

    def _bias(self, beta: float) -> Tensor:
        return (1.0 - beta) * self.base + beta * self.bias

    def log_f(self, state: Tensor, beta: float) -> Tensor:
        return -_pair_energy(state, beta * self.coupling, self._bias(beta)).double()

    def transition(self, state: Tensor, beta: float, generator: torch.Generator | None) -> Tensor:
        return site_gibbs_sweep(state, beta * self.coupling, self._bias(beta), generator)
