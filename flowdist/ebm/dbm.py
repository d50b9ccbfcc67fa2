r"""The deep Boltzmann machine (Salakhutdinov & Hinton 2009).

Binary layers :math:`v, h^{(1)}, \dots, h^{(L)}` (:math:`L \ge 2`) with the layered energy of
:mod:`flowdist.ebm.layered`. Learning follows the paper:

* **Pre-training**, greedy and layer-wise: RBMs whose inputs are doubled where the layer will
  later receive input from two sides in the DBM (the bottom RBM's up-pass
  :math:`\sigma(2 W^\top v + c)`, the top RBM's down-pass :math:`\sigma(2 W h + b)`, both for
  the middle ones), which compensates for the double counting once stacked.
* **Joint training**: the data term of the gradient from a fully factorized mean-field
  posterior :math:`q(h \mid v) = \prod_{l,j} \mu_{lj}^{h_{lj}}(1-\mu_{lj})^{1-h_{lj}}`, fixed
  point of :math:`\mu^{(l)} = \sigma(b^{(l)} + W^{(l-1)\top}\mu^{(l-1)} + W^{(l)} \mu^{(l+1)})`;
  the model term from persistent Gibbs chains alternating odd and even layers, started from
  training rows (:func:`flowdist.ebm.train.train_cd` with ``persistent=True``).

**Evaluation.** :math:`\log Z` by AIS (chains on the odd layers, the others summed out), and
the variational lower bound

.. math::
    \log p(v) \ge \mathbb E_q[-E(v, h)] + \mathcal H(q) - \log Z,

where :math:`\mathbb E_q[-E(v,h)] = -E(v, \mu)` since the energy is linear in each layer.
:math:`\log p(v)` itself is exact while the even hidden layers hold at most 25 units.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from flowdist.ebm.base import UnnormalizedDistribution
from flowdist.ebm.layered import LayeredBoltzmannMachine, layer_input
from flowdist.ebm.rbm import BernoulliRBM
from flowdist.ebm.train import TrainingHistory, check_data, train_cd
from flowdist.mcmc.gibbs import bernoulli
from flowdist.validation import check_count

__all__ = ["DeepBoltzmannMachine"]


class _ScaledRBM(BernoulliRBM):
    """An RBM whose up-pass and down-pass inputs are multiplied by ``up`` and ``down`` (the
    tied-weight doubling used to pre-train a DBM)."""

    def __init__(self, num_visible: int, num_hidden: int, up: float, down: float, **kw) -> None:
        super().__init__(num_visible, num_hidden, **kw)
        self.up, self.down = up, down

    # BernoulliRBM's fused update hard-codes the unscaled conditionals
    contrastive_gradient = UnnormalizedDistribution.contrastive_gradient

    def layer_input(self, index: int, layers: Sequence[Tensor | None]) -> Tensor:
        w, b = self.weights[0], self.biases[index]
        if index == 1:
            return b + self.up * (layers[0] @ w)
        return b + self.down * (layers[1] @ w.T)


class DeepBoltzmannMachine(LayeredBoltzmannMachine):
    r"""A deep Boltzmann machine with ``layer_sizes = (n_v, n_1, ..., n_L)``, :math:`L \ge 2`."""

    #: AIS sums out the visible and even hidden layers, as in Salakhutdinov & Hinton (2009):
    #: for two hidden layers the chains live on :math:`h^{(1)}` alone, and
    #: :math:`f_\beta(h^{(1)})` integrates :math:`v` and :math:`h^{(2)}` analytically.
    annealing_summed_parity = 0

    def __init__(self, layer_sizes: Sequence[int], **kw: Any) -> None:
        if (
            isinstance(layer_sizes, (str, bytes))
            or not isinstance(layer_sizes, Sequence)
            or len(layer_sizes) < 3
        ):
            raise ValueError(
                f"layer_sizes must give the visible and >= 2 hidden layers, got {layer_sizes!r}; "
                "use BernoulliRBM for one hidden layer"
            )
        super().__init__(layer_sizes, **kw)

    def mean_field(self, x: Tensor, num_iters: int = 10) -> list[Tensor]:
        r"""The mean-field posterior means :math:`[v, \mu^{(1)}, \dots, \mu^{(L)}]`.

        Initialised by a bottom-up pass with doubled inputs below the top layer, then
        ``num_iters`` sweeps of the fixed-point updates (odd layers, then even ones).
        """
        self._check(x)
        check_count("num_iters", num_iters)
        top = len(self.layer_sizes) - 1
        weights, biases = list(self.weights), list(self.biases)
        from_visible = x @ weights[0]  # fixed: computed once, not in every sweep
        mus = [x]
        for i in range(1, top + 1):
            below = from_visible if i == 1 else mus[-1] @ weights[i - 1]
            mus.append(torch.sigmoid((2.0 if i < top else 1.0) * below + biases[i]))
        order = [*range(1, top + 1, 2), *range(2, top + 1, 2)]  # odd layers, then even
        for _ in range(num_iters):
            for i in order:
                if i == 1:
                    above = mus[2] @ weights[1].T
                    mus[1] = torch.sigmoid(biases[1] + from_visible + above)
                else:
                    mus[i] = torch.sigmoid(layer_input(i, mus, weights, biases))
        return mus

    def positive_statistics(
        self, x: Tensor, generator: torch.Generator | None = None
    ) -> list[Tensor]:
        """Data term of the gradient from the mean-field posterior (deterministic)."""
        return self.statistics(self.mean_field(x))

    def variational_lower_bound(self, x: Tensor, num_iters: int = 30) -> Tensor:
        r""":math:`-E(v, \mu) + \mathcal H(q) - \log Z \le \log p(v)`, per example, with the exact
        or AIS :math:`\log Z` (see :attr:`log_partition_method`; a bound above 0 proves an AIS
        estimate too low and warns)."""
        log_z, method = self._log_z()
        with torch.no_grad():
            mus = self.mean_field(x, num_iters)
            entropy = sum(
                torch.special.entr(m).sum(-1) + torch.special.entr(1 - m).sum(-1) for m in mus[1:]
            )
            bound = -self.joint_energy(mus) + entropy - log_z
        return self._warn_if_impossible(bound, method, "the variational lower bound on log p(x)")

    def pretrain(
        self,
        data: Tensor,
        *,
        epochs: int,
        lr: float = 0.05,
        batch_size: int = 100,
        k: int = 1,
        generator: torch.Generator | None = None,
        progress: bool = False,
    ) -> list[TrainingHistory]:
        r"""Greedy layer-wise pre-training with CD-``k`` (see the module docstring); sets every
        weight and bias. Each layer's training data are samples of the layer below's
        doubled-input posterior."""
        check_data(self, data)
        top = len(self.layer_sizes) - 1
        histories, x, rbms = [], data, []
        for i in range(top):
            rbm = _ScaledRBM(
                self.layer_sizes[i],
                self.layer_sizes[i + 1],
                up=2.0 if i < top - 1 else 1.0,
                down=2.0 if i > 0 else 1.0,
                generator=generator,
                dtype=data.dtype,
                device=data.device,
            )
            histories.append(
                train_cd(
                    rbm,
                    x,
                    epochs=epochs,
                    lr=lr,
                    batch_size=batch_size,
                    k=k,
                    generator=generator,
                    progress=progress,
                )
            )
            rbms.append(rbm)
            with torch.no_grad():
                x = bernoulli(torch.sigmoid(rbm.layer_input(1, [x, None])), generator=generator)
        with torch.no_grad():
            self.biases[0].copy_(rbms[0].visible_bias)
            self.biases[top].copy_(rbms[-1].hidden_bias)
            for i, rbm in enumerate(rbms):
                self.weights[i].copy_(rbm.weight)
                if i > 0:
                    self.biases[i].copy_((rbms[i - 1].hidden_bias + rbm.visible_bias) / 2)
        return histories
