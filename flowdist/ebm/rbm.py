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
from flowdist.mcmc.gibbs import BernoulliDraws, bernoulli
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

    def augmented(self) -> Tensor:
        r"""The augmented matrix :math:`A = \begin{pmatrix} W & b \\ c^\top & 0 \end{pmatrix}`,
        shape ``(num_visible + 1, num_hidden + 1)``, a new tensor at the parameters' precision
        (see :class:`_AugmentedChains`)."""
        v, h = self.weight.shape
        a = self.weight.new_empty((v + 1, h + 1))
        a[:v, :h], a[:v, h], a[v, :h], a[v, h] = self.weight, self.visible_bias, self.hidden_bias, 0
        return a

    def load_augmented(self, a: Tensor) -> None:
        """Copy the blocks of an augmented matrix (:meth:`augmented`) into the parameters."""
        v, h = self.weight.shape
        with torch.no_grad():
            self.weight.copy_(a[:v, :h])
            self.visible_bias.copy_(a[:v, h])
            self.hidden_bias.copy_(a[v, :h])

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
            \nabla_W = \tfrac1n x^\top P_x - \tfrac1m v_k^\top P_{v_k},

        and the three gradients are blocks of one product (:class:`_AugmentedChains`); for
        PCD one product gives :math:`P_x` and :math:`P_{v_k}` together. An update costs
        :math:`2k + 3` products of the size of a mini-batch — as few as scikit-learn's PCD —
        computed in ``compute_dtype``. With ``torch.bfloat16`` they run faster on CPUs with
        AVX-512 BF16 or AMX (not on a GPU at MNIST size, where kernel launches dominate:
        ``docs/ebm.md``), the parameters and the returned gradient stay at the parameters'
        precision, and the Bernoulli draws of wide layers take 16 random bits each instead of
        32 (:func:`~flowdist.mcmc.gibbs.bernoulli`: a law within :math:`2^{-17}` of the
        probabilities, whose rounding in a 16-bit ``compute_dtype`` is far larger). On a CPU
        the gradient product is then exact int8 arithmetic on probabilities rounded
        stochastically to multiples of :math:`1/127`, unbiased within :math:`2^{-9}` of a
        step (:class:`_AugmentedChains`). The gradients are views of one tensor.
        """
        check_count("k", k, least=1)
        n = x.shape[0]
        chains = _AugmentedChains(self, n, n if state is None else state[1].shape[0], x.device)
        if state is not None:
            chains.hidden[:, :-1] = state[1]
        matrix = self.augmented().to(self.compute_dtype or self.weight.dtype)
        grad = chains.gradient(matrix, x, k, generator, persistent=state is not None)
        grad = grad.to(self.weight.dtype).mul_(chains.unit / n)
        v, h = self.weight.shape
        visible, hidden = chains.state
        state = visible.to(x.dtype).contiguous(), hidden.to(x.dtype).contiguous()
        return [grad[:v, :h], grad[:v, h], grad[v, :h]], state

    def _fused_sgd(self, **kwargs: Any) -> _AugmentedSGD | None:
        # subclasses with other conditionals or projections take the generic update
        plain = type(self).contrastive_gradient is BernoulliRBM.contrastive_gradient
        if plain and type(self).after_update is UnnormalizedDistribution.after_update:
            return _AugmentedSGD(self, **kwargs)
        return None


class _AugmentedChains:
    r"""CD-``k`` / PCD-``k`` of a :class:`BernoulliRBM` on its augmented matrix

    .. math::
        A = \begin{pmatrix} W & b \\ c^\top & 0 \end{pmatrix}
        \in \mathbb R^{(V + 1) \times (H + 1)}:

    a unit fixed at 1 appended to a layer adds the other layer's bias in the product,
    :math:`[v, 1]\, A_{:, :H} = W^\top v + c` and :math:`[h, 1]\, A_{:V}^\top = W h + b`
    (the corner is never read), and with :math:`r = n / m`

    .. math::
        n\, \nabla_A = \begin{pmatrix} x & 1 \\ v_k & 1 \end{pmatrix}^{\!\top}
            \begin{pmatrix} P_x & 1 \\ -r P_{v_k} & -r \end{pmatrix}

    is one product: its last column is :math:`n \nabla_b`, its last row :math:`n \nabla_c`.
    So an update is :math:`2k + 3` products and, when ``compute_dtype`` differs from the
    parameters' dtype, one cast of :math:`A` to it, with no separate bias terms. Scaling by
    :math:`n` instead of dividing keeps the column of ones exact in a 16-bit
    ``compute_dtype`` when :math:`n = m`.

    With a 16-bit ``compute_dtype`` on a CPU the gradient product is exact integer arithmetic
    instead (:func:`torch._int_mm`, twice the rate of bf16 there): the left factor is binary,
    so int8, and the right one, :math:`\alpha [P, 1]` with rows scaled by :math:`1` or
    :math:`r` and :math:`\alpha = 127 / \max(1, r)`, is rounded stochastically to integers,
    :math:`Q = \lfloor \alpha s P + u \rfloor` with 8-bit uniforms
    :math:`u \in \{\tfrac{1}{512}, \tfrac{3}{512}, \dots, \tfrac{511}{512}\}`, so
    :math:`\mathbb E[Q] = \alpha s P` within :math:`\tfrac{1}{512}` of a step
    (:math:`2^{-9} / 127` of a probability). The gradient is then
    :math:`n \nabla_A \approx \alpha^{-1} [x, 1; -v_k, -1]^\top Q` (the sign moved to the
    binary factor, as :math:`-Q` has the law of the rounding of :math:`-\alpha s P`): unbiased
    up to that, with independent rounding errors of variance at most
    :math:`\tfrac14 \alpha^{-2}` per row and entry, where a bf16 product rounds every
    :math:`P` and every sum to 8 bits, always the same way. :attr:`unit` is
    :math:`\alpha^{-1}` (else 1).

    ``n`` data rows and ``m`` chains; :attr:`hidden` holds the chains' :math:`[h, 1]`.
    """

    def __init__(self, rbm: BernoulliRBM, n: int, m: int, device: torch.device) -> None:
        v, h = rbm.weight.shape
        self.dtype = rbm.weight.dtype
        cd = rbm.compute_dtype or self.dtype
        self.n = n
        self.draw_visible, self.draw_hidden = (
            BernoulliDraws((m, d), self.dtype, rbm.bernoulli_bits, device) for d in (v, h)
        )
        self.rows = torch.empty((n + m, v + 1), dtype=cd, device=device)  # [x, 1; v_k, 1]
        self.hidden = torch.empty((m, h + 1), dtype=cd, device=device)  # [h, 1]
        self.integer = cd.itemsize == 2 and device.type == "cpu" and hasattr(torch, "_int_mm")
        kw: dict[str, Any] = {"device": device}
        if self.integer:
            alpha = 127 / max(1.0, n / m)
            self.unit = 1 / alpha
            self.scale = torch.full((n + m, 1), alpha, **kw)
            self.scale[n:] *= n / m
            # alpha [P_x, 1; rP, r] + 1/512; that plus u - 1/512; its rounding; the binary factor
            self.cols = torch.empty((n + m, h + 1), **kw)
            self.noisy = torch.empty_like(self.cols)
            self.rounded = torch.empty((n + m, h + 1), dtype=torch.int8, **kw)
            self.signed_rows = torch.empty((n + m, v + 1), dtype=torch.int8, **kw)
            noise = torch.empty((n + m, -(-(h + 1) // 8)), dtype=torch.int64, **kw)
            self.noise, self.noise_bytes = noise, noise.view(torch.uint8)[:, : h + 1]
            self.offset = torch.tensor(1 / 512, **kw)
            self.cols[:, h:] = self.scale + self.offset
        else:
            self.unit = 1.0
            self.scale = torch.ones((n + m, 1), dtype=self.dtype, **kw)
            self.scale[n:] = -n / m
            self.cols = torch.empty((n + m, h + 1), dtype=cd, **kw)  # [P_x, 1; -rP, -r]
            self.cols[:, h:] = self.scale
        self.rows[:, v] = 1
        self.hidden[:, h] = 1

    @property
    def state(self) -> tuple[Tensor, Tensor]:
        """Views of the chains' visible and hidden units."""
        return self.rows[self.n :, :-1], self.hidden[:, :-1]

    def gradient(
        self,
        matrix: Tensor,
        x: Tensor,
        k: int,
        generator: torch.Generator | None,
        persistent: bool,
    ) -> Tensor:
        r""":math:`n \nabla_A /` :attr:`unit` in ``compute_dtype`` (int32 when rounded to
        integers), from :math:`A` in ``compute_dtype`` (``matrix``), after ``k`` steps of the
        chains, started from :attr:`hidden` (``persistent``) or from :math:`h \sim p(h \mid x)`;
        leaves :math:`v_k` and a new :math:`h \sim p(h \mid v_k)` in :attr:`state`."""
        n = self.n
        to_hidden, to_visible = matrix[:, :-1], matrix[:-1].T
        rows, cols = self.rows, self.cols
        v, h = self.state
        rows[:n, :-1] = x

        def probs(units: Tensor, weight: Tensor) -> Tensor:
            return torch.mm(units, weight).to(self.dtype).sigmoid_()  # a new tensor

        if not persistent:
            p_x = probs(rows[:n], to_hidden)
            self.draw_hidden(p_x, generator, out=h)
        for step in range(k):
            self.draw_visible(probs(self.hidden, to_visible), generator, out=v)
            if step < k - 1:
                self.draw_hidden(probs(rows[n:], to_hidden), generator, out=h)
        if persistent:
            p_v = probs(rows, to_hidden)
            self._scale(p_v, slice(None))
            p_v = p_v[n:]
        else:
            p_v = probs(rows[n:], to_hidden)
            self._scale(p_x, slice(n))
            self._scale(p_v, slice(n, None))
        grad = self._integer_product(generator) if self.integer else rows.T @ cols
        self.draw_hidden(p_v, generator, out=h)
        return grad

    def _scale(self, p: Tensor, at: slice) -> None:
        """Rows ``at`` of :attr:`cols` from the probabilities ``p``."""
        if self.integer:
            torch.addcmul(self.offset, p, self.scale[at], out=self.cols[at, :-1])
        else:
            torch.mul(p, self.scale[at], out=self.cols[at, :-1])

    def _integer_product(self, generator: torch.Generator | None) -> Tensor:
        r""":math:`[x, 1; -v_k, -1]^\top Q` in int32, :math:`Q` the stochastic rounding of
        :attr:`cols` (see the class docstring)."""
        n = self.n
        for rows in (self.noise[:n], self.noise[n:]):  # two draws: torchrun ranks slice each
            rows.random_(-(2**63), None, generator=generator)
        torch.add(self.cols, self.noise_bytes, alpha=1 / 256, out=self.noisy)
        rounded, signed = self.rounded.copy_(self.noisy), self.signed_rows.copy_(self.rows)
        signed[n:].neg_()
        return torch._int_mm(signed.T, rounded)


class _AugmentedSGD:
    r""":func:`~flowdist.ebm.train.train_cd`'s epochs for a :class:`BernoulliRBM`: the update
    rule applied to the augmented matrix :math:`A` (:class:`_AugmentedChains`), one update of
    every parameter per mini-batch. :math:`A` is gathered from the parameters when an epoch
    starts and written back when it ends (or is interrupted), so callbacks see and may change
    the parameters; the velocity and the persistent chains live as long as this object.
    ``start(num_chains, generator)`` makes the persistent chains' first state (``None``: CD);
    ``momentum`` says whether the rule keeps a velocity.
    """

    def __init__(
        self,
        rbm: BernoulliRBM,
        k: int,
        num_chains: int,
        start: Callable[..., Any] | None,
        momentum: bool,
    ) -> None:
        self.rbm, self.k, self.num_chains, self.start = rbm, k, num_chains, start
        self.momentum = momentum
        self.chains: dict[int, _AugmentedChains] = {}  # by mini-batch size
        self.hidden: Tensor | None = None  # the persistent chains' [h, 1]
        self.velocity: Tensor | None = None

    def epoch(
        self,
        data: Tensor,
        order: Tensor,
        batch_size: int,
        generator: torch.Generator | None,
        step: Callable[..., None],
    ) -> tuple[Tensor, Tensor]:
        r"""One pass over ``data`` in ``order``. ``step(param, velocity, grad, grad_scale,
        decayed)`` is the update rule, here with ``grad`` :math:`= n \nabla_A`, ``grad_scale``
        :math:`= 1/n` and ``decayed`` the block of :math:`W`. Returns the chains' state."""
        rbm, persistent = self.rbm, self.start is not None
        v, h = rbm.weight.shape
        a = rbm.augmented()
        matrix = a.to(rbm.compute_dtype or a.dtype)  # A itself, or its copy for the products
        if self.velocity is None and self.momentum:
            self.velocity = torch.zeros_like(a)
        try:
            for i in range(0, len(data), batch_size):
                x = data.index_select(0, order[i : i + batch_size])
                n = len(x)
                chains = self.chains.get(n)
                if chains is None:
                    m = self.num_chains if persistent else n
                    chains = self.chains[n] = _AugmentedChains(rbm, n, m, data.device)
                    if persistent and self.hidden is None:
                        chains.hidden[:, :-1] = self.start(m, generator)[1]
                        self.hidden = chains.hidden
                    elif persistent:  # one set of chains for every mini-batch size
                        chains.hidden = self.hidden
                grad = chains.gradient(matrix, x, self.k, generator, persistent)
                step(a, self.velocity, grad, chains.unit / n, (slice(v), slice(h)))
                if matrix is not a:  # cast while A is still in the cache
                    matrix.copy_(a)
        finally:
            rbm.load_augmented(a)
        return chains.state


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
