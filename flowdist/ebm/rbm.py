r"""Restricted Boltzmann machines: binary (:class:`BernoulliRBM`) and Gaussian-visible
(:class:`GaussianRBM`) units.

**Bernoulli RBM.** :math:`E(v, h) = -v^\top W h - b^\top v - c^\top h`, free energy
:math:`F(v) = -b^\top v - \sum_j \operatorname{softplus}(c_j + v^\top W_{:j})`, block Gibbs
:math:`h \sim \sigma(c + W^\top v)`, :math:`v \sim \sigma(b + W h)`.

**Gaussian RBM** (real-valued visible units with standard deviations :math:`\sigma_i`):

.. math::
    E(v, h) = \sum_i \frac{(v_i - b_i)^2}{2\sigma_i^2} - \sum_{ij} \frac{v_i}{\sigma_i} W_{ij} h_j
        - c^\top h,

so :math:`p(h_j = 1 \mid v) = \sigma(c_j + \sum_i W_{ij} v_i / \sigma_i)`,
:math:`p(v \mid h) = \mathcal N(b + \sigma \odot W h, \operatorname{diag}\sigma^2)` and
:math:`F(v) = \sum_i \frac{(v_i - b_i)^2}{2\sigma_i^2} - \sum_j
\operatorname{softplus}(c_j + \sum_i W_{ij} v_i/\sigma_i)`. Completing the square,

.. math::
    \log Z = \tfrac d2 \log 2\pi + \sum_i \log \sigma_i + \log \sum_h \exp\big(c^\top h
        + (b/\sigma)^\top W h + \tfrac12 \lVert W h \rVert^2\big),

exact by enumerating the hidden units. The free energy is a potential for Pyro's HMC/NUTS::

    from pyro.infer.mcmc import MCMC, NUTS
    kernel = NUTS(potential_fn=grbm.potential_fn())
    mcmc = MCMC(kernel, num_samples=500, warmup_steps=200,
                initial_params={"x": torch.zeros(grbm.num_visible)})
    mcmc.run()
    x = mcmc.get_samples()["x"]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import constraints

from flowdist.ebm.base import UnnormalizedDistribution
from flowdist.ebm.layered import LayeredBoltzmannMachine
from flowdist.ebm.partition import enumerate_log_sum_exp
from flowdist.mcmc.gibbs import bernoulli
from flowdist.transforms.base import check_dim
from flowdist.validation import check_count, check_float_dtype, check_number, initial_draw

__all__ = ["BernoulliRBM", "GaussianRBM"]


class BernoulliRBM(LayeredBoltzmannMachine):
    r"""A binary restricted Boltzmann machine with ``num_visible`` and ``num_hidden`` units.

    ``log_partition()`` is exact while the smaller layer has at most ``max_enumerable_units``
    (25) units; ``estimate_log_partition("ais", data=train_x)`` otherwise. Train with
    :func:`flowdist.ebm.train.train_cd` (CD-k or persistent CD).
    """

    def __init__(self, num_visible: int, num_hidden: int, **kwargs: Any) -> None:
        """Keyword arguments (``init_std``, ``generator``, ``dtype``, ``device``,
        ``validate_args``, ``compute_dtype``) as for :class:`LayeredBoltzmannMachine`."""
        super().__init__((num_visible, num_hidden), **kwargs)

    @property
    def weight(self) -> Tensor:
        """:math:`W`, shape ``(num_visible, num_hidden)``."""
        return self.weights[0]

    @property
    def visible_bias(self) -> Tensor:
        return self.biases[0]

    @property
    def hidden_bias(self) -> Tensor:
        return self.biases[1]

    def hidden_probs(self, x: Tensor) -> Tensor:
        r""":math:`p(h = 1 \mid v) = \sigma(c + W^\top v)`."""
        return torch.sigmoid(x @ self.weight + self.hidden_bias)

    def visible_probs(self, h: Tensor) -> Tensor:
        r""":math:`p(v = 1 \mid h) = \sigma(b + W h)`."""
        return torch.sigmoid(h @ self.weight.T + self.visible_bias)

    @torch.no_grad()  # an estimate of the gradient, not a function to differentiate
    def contrastive_gradient(
        self,
        x: Tensor,
        k: int,
        generator: torch.Generator | None = None,
        state: Any = None,
    ) -> tuple[list[Tensor], Any]:
        r"""CD-``k`` / PCD-``k`` gradient in the fewest matrix products.

        The chain alternates :math:`v \sim p(v \mid h)`, :math:`h \sim p(h \mid v)`, starting
        from :math:`h_0 \sim p(h \mid x)` (CD) or from the hidden units of the persistent
        ``state`` (the visible units of a state are not used). With :math:`P = \sigma(c +
        W^\top v)` the Rao-Blackwellised hidden means of the :math:`n` data rows and the
        :math:`m` chain rows,

        .. math::
            \nabla_W = \tfrac1n x^\top P_x - \tfrac1m v_k^\top P_{v_k}
                = [x;\, v_k]^\top [P_x / n;\, -P_{v_k} / m],

        one product for both terms, and for PCD one product gives :math:`P_x` and
        :math:`P_{v_k}` together. An update costs :math:`2k + 3` products of the size of a
        mini-batch — as few as scikit-learn's PCD — computed in ``compute_dtype``. With
        ``torch.bfloat16`` they run faster on CPUs with AVX-512 BF16 or AMX (not on a GPU at
        MNIST size, where kernel launches dominate: ``docs/ebm.md``), the parameters and the
        returned gradient stay at the parameters' precision, and the Bernoulli draws of wide
        layers take 16 random bits each instead of 32 (:func:`~flowdist.mcmc.gibbs.bernoulli`:
        a law within :math:`2^{-17}` of the probabilities, whose rounding in a 16-bit
        ``compute_dtype`` is far larger).
        """
        check_count("k", k, least=1)
        w = self.weight
        cd = self.compute_dtype or w.dtype
        wc, bc, cc = w.to(cd), self.visible_bias.to(cd), self.hidden_bias.to(cd)
        bits = self.bernoulli_bits

        def probs(bias: Tensor, rows: Tensor, weight: Tensor) -> Tensor:
            return torch.addmm(bias, rows, weight).to(w.dtype).sigmoid_()  # a new tensor

        n = x.shape[0]
        m = n if state is None else state[1].shape[0]
        # [x; v_k] in one buffer: the chain's visible units are drawn into its lower rows
        rows = torch.empty((n + m, x.shape[1]), dtype=cd, device=x.device)
        xc, v = rows[:n], rows[n:]
        xc.copy_(x)
        if state is None:
            p_x = probs(cc, xc, wc)
            h = bernoulli(p_x, generator, cd, bits=bits)
        else:
            h = state[1].to(cd)
        for step in range(k):
            bernoulli(probs(bc, h, wc.T), generator, out=v, bits=bits)
            if step < k - 1:
                h = bernoulli(probs(cc, v, wc), generator, cd, bits=bits)
        if state is None:
            p_v = probs(cc, v, wc)
        else:
            p_both = probs(cc, rows, wc)
            p_x, p_v = p_both[:n], p_both[n:]
        cols = torch.empty((n + m, w.shape[1]), dtype=cd, device=x.device)
        torch.div(p_x, n, out=cols[:n])
        torch.div(p_v, -m, out=cols[n:])
        v = v.to(x.dtype)
        grads = [(rows.T @ cols).to(w.dtype), x.mean(0) - v.mean(0), p_x.mean(0) - p_v.mean(0)]
        return grads, (v, bernoulli(p_v, generator, bits=bits))


class GaussianRBM(UnnormalizedDistribution):
    r"""An RBM with Gaussian visible units (see the module docstring).

    ``sigma`` is the initial standard deviation (scalar or per unit); with
    ``learn_sigma=True`` :math:`\log\sigma` is a parameter, clamped after every update to
    :math:`\sigma \ge` ``min_sigma`` — a learned variance otherwise collapses onto the data
    points, the known divergence of Gaussian RBMs (an initial ``sigma`` below ``min_sigma`` is
    then refused). Fit data standardised per pixel (or set
    ``sigma`` to the data's scale) and use a learning rate around 1e-3.
    """

    support = constraints.independent(constraints.real, 1)

    def __init__(
        self,
        num_visible: int,
        num_hidden: int,
        *,
        sigma: float | Tensor = 1.0,
        learn_sigma: bool = False,
        min_sigma: float = 0.05,
        init_std: float = 0.01,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        validate_args: bool | None = None,
    ) -> None:
        check_dim("num_visible", num_visible)
        check_dim("num_hidden", num_hidden)
        check_number("init_std", init_std, least=0.0)
        check_number("min_sigma", min_sigma, positive=True)
        check_float_dtype("dtype", dtype)
        if not isinstance(sigma, Tensor):
            check_number("sigma", sigma, positive=True)
        elif sigma.shape not in ((), (1,), (num_visible,)):
            raise ValueError(
                f"sigma must be a number or a tensor of shape ({num_visible},), "
                f"got shape {tuple(sigma.shape)}"
            )
        super().__init__(num_visible, validate_args=validate_args)
        kw: dict[str, Any] = {"dtype": dtype or torch.get_default_dtype(), "device": device}
        self.num_visible, self.num_hidden = num_visible, num_hidden
        self.weight = nn.Parameter(
            initial_draw(torch.randn, num_visible, num_hidden, generator=generator, device=device)
            .mul(init_std)
            .to(**kw)
        )
        self.visible_bias = nn.Parameter(torch.zeros(num_visible, **kw))
        self.hidden_bias = nn.Parameter(torch.zeros(num_hidden, **kw))
        log_sigma = torch.log(torch.as_tensor(sigma, **kw)).expand(num_visible).clone()
        if not bool(torch.isfinite(log_sigma).all()):
            raise ValueError(f"sigma must be positive and finite, got {sigma!r}")
        if learn_sigma and bool((torch.as_tensor(sigma, dtype=torch.float64) < min_sigma).any()):
            raise ValueError(
                f"sigma must be at least min_sigma={min_sigma} when learn_sigma=True (the first "
                f"update would clamp it up), got {sigma!r}"
            )
        if learn_sigma:
            self.log_sigma = nn.Parameter(log_sigma)
        else:
            self.register_buffer("log_sigma", log_sigma)
        self.min_sigma = min_sigma

    @property
    def sigma(self) -> Tensor:
        return self.log_sigma.exp()

    def hidden_input(self, x: Tensor) -> Tensor:
        r""":math:`c + W^\top (v / \sigma)`."""
        return (x / self.sigma) @ self.weight + self.hidden_bias

    def energy(self, x: Tensor) -> Tensor:
        r"""The free energy :math:`F(v)`."""
        self._check(x)
        quad = (((x - self.visible_bias) / self.sigma) ** 2).sum(-1) / 2
        return quad - F.softplus(self.hidden_input(x)).sum(-1)

    def potential_fn(self, site: str = "x") -> Callable[[dict[str, Tensor]], Tensor]:
        r"""The free energy as a Pyro ``potential_fn``: ``{site: v} -> F(v)`` (summed over any
        batch), for :class:`pyro.infer.mcmc.HMC` / :class:`~pyro.infer.mcmc.NUTS`."""
        return lambda params: self.energy(params[site]).sum()

    def _exact_log_partition(self) -> Tensor:
        w, c = self.weight.double(), self.hidden_bias.double()
        b_over_s = (self.visible_bias / self.sigma).double()

        def log_f(h: Tensor) -> Tensor:
            wh = h @ w.T
            return h @ c + wh @ b_over_s + 0.5 * (wh**2).sum(-1)

        rest = enumerate_log_sum_exp(
            log_f,
            self.num_hidden,
            max_units=self.max_enumerable_units,
            what="the hidden layer",
            device=w.device,
        )
        return rest + 0.5 * self.num_visible * math.log(2 * math.pi) + self.log_sigma.double().sum()

    def _sample_visible(self, h: Tensor, generator: torch.Generator | None) -> Tensor:
        mean = self.visible_bias + self.sigma * (h @ self.weight.T)
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
        return mean + self.sigma * noise

    def init_chain(self, num_chains: int, generator: torch.Generator | None) -> Tensor:
        """Visible units drawn from :math:`\\mathcal N(b, \\sigma^2)` (the model at W = 0)."""
        h = torch.zeros(
            num_chains, self.num_hidden, dtype=self.weight.dtype, device=self.weight.device
        )
        return self._sample_visible(h, generator)

    def chain_step(self, state: Tensor, generator: torch.Generator | None) -> Tensor:
        """Block Gibbs: :math:`h \\sim p(h \\mid v)`, then :math:`v \\sim p(v \\mid h)`."""
        h = bernoulli(torch.sigmoid(self.hidden_input(state)), generator)
        return self._sample_visible(h, generator)

    def after_update(self) -> None:
        """Keep a learned :math:`\\sigma \\ge` ``min_sigma`` (called by the trainer after each
        step); a fixed one is left as given."""
        if isinstance(self.log_sigma, nn.Parameter):
            with torch.no_grad():
                self.log_sigma.clamp_(min=math.log(self.min_sigma))

    def annealing_path(self, data: Tensor | None = None) -> _GaussianPath:
        r"""From :math:`\mathcal N(b, \sigma^2)` (``data`` is not needed: the base shares the
        model's visible biases and variances)."""
        return _GaussianPath(self)


class _GaussianPath:
    r"""AIS path :math:`W \to \beta W, c \to \beta c` from :math:`\mathcal N(b, \sigma^2)`
    (times uniform hidden units); state = (v, unscaled hidden input)."""

    def __init__(self, model: GaussianRBM) -> None:
        self.model = model
        self.log_z0 = (
            0.5 * model.num_visible * math.log(2 * math.pi)
            + float(model.log_sigma.detach().double().sum())
            + model.num_hidden * math.log(2.0)
        )

    def init(self, num_chains: int, generator: torch.Generator | None) -> Any:
        v = self.model.init_chain(num_chains, generator)
        return v, self.model.hidden_input(v)

    def log_f(self, state: Any, beta: float) -> Tensor:
        v, pre = state
        m = self.model
        quad = (((v - m.visible_bias) / m.sigma) ** 2).sum(-1).double() / 2
        return F.softplus(beta * pre.double()).sum(-1) - quad

    def transition(self, state: Any, beta: float, generator: torch.Generator | None) -> Any:
        _, pre = state
        h = bernoulli(torch.sigmoid(beta * pre), generator)
        v = self.model._sample_visible(beta * h, generator)
        return v, self.model.hidden_input(v)
