r"""Layered binary Boltzmann machines: the algebra shared by the RBM and the deep Boltzmann machine.

Layers :math:`h^{(0)} = v, h^{(1)}, \dots, h^{(L)}` of binary units; only neighbouring layers
interact:

.. math::
    E(h^{(0)}, \dots, h^{(L)}) = -\sum_{l=0}^{L-1} h^{(l)\top} W^{(l)} h^{(l+1)}
        - \sum_{l=0}^{L} b^{(l)\top} h^{(l)}.

Given its neighbours a layer is a product of Bernoullis,
:math:`p(h^{(l)} = 1 \mid \cdot) = \sigma(a^{(l)})` with
:math:`a^{(l)} = b^{(l)} + W^{(l-1)\top} h^{(l-1)} + W^{(l)} h^{(l+1)}`, so the odd layers are
independent given the even ones and vice versa. Summing out every layer of one parity is
analytic:

.. math::
    \log \sum_{h_\text{odd}} e^{-E} = \sum_{l \text{ even}} b^{(l)\top} h^{(l)}
        + \sum_{l \text{ odd}} \sum_j \operatorname{softplus}(a^{(l)}_j),

which gives the RBM free energy (:math:`L = 1`), exact :math:`\log Z` by enumerating the
smaller parity class, and the AIS path of Salakhutdinov & Murray (2008) and Salakhutdinov &
Hinton (2009): the joint energy is tempered, :math:`W \to \beta W`, hidden biases
:math:`\to \beta b`, visible bias :math:`\to (1-\beta) b_A + \beta b^{(0)}`, from the base-rate
model :math:`b_A` at :math:`\beta = 0`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import constraints

from flowdist.ebm.base import UnnormalizedDistribution
from flowdist.ebm.partition import enumerate_log_sum_exp
from flowdist.mcmc.gibbs import alternating_gibbs_sweep, bernoulli
from flowdist.validation import check_float_dtype, check_number, initial_draw

__all__ = ["LayeredBoltzmannMachine", "base_rate_logits"]


def base_rate_logits(data: Tensor | None, num_visible: int, like: Tensor) -> Tensor:
    r"""Visible logits of the base-rate model: :math:`\log \frac{p}{1-p}` with :math:`p` the
    smoothed mean :math:`(\sum_n x_n + 1)/(N + 2)` of ``data`` (zeros, a uniform base, when
    ``data`` is ``None``)."""
    if data is None:
        return torch.zeros(num_visible, dtype=like.dtype, device=like.device)
    p = (data.sum(0) + 1.0) / (data.shape[0] + 2.0)
    return torch.logit(p).to(like)


def matmul(a: Tensor, b: Tensor, compute_dtype: torch.dtype | None = None) -> Tensor:
    """``a @ b``, computed in ``compute_dtype`` (e.g. bfloat16) if given, in a's dtype."""
    if compute_dtype is None or compute_dtype == a.dtype:
        return a @ b
    return (a.to(compute_dtype) @ b.to(compute_dtype)).to(a.dtype)


def layer_input(
    index: int,
    layers: Sequence[Tensor | None],
    weights: Sequence[Tensor],
    biases: Sequence[Tensor],
    compute_dtype: torch.dtype | None = None,
) -> Tensor:
    r""":math:`a^{(l)} = b^{(l)} + W^{(l-1)\top} h^{(l-1)} + W^{(l)} h^{(l+1)}` (batched rows)."""
    out = biases[index]
    if index > 0:
        out = out + matmul(layers[index - 1], weights[index - 1], compute_dtype)
    if index < len(biases) - 1:
        out = out + matmul(layers[index + 1], weights[index].T, compute_dtype)
    return out


def summed_log_f(
    layers: Sequence[Tensor | None],
    summed_parity: int,
    weights: Sequence[Tensor],
    biases: Sequence[Tensor],
) -> Tensor:
    r""":math:`\log \sum e^{-E}` over the layers of parity ``summed_parity``, the others given."""
    out = 0.0
    for index in range(len(biases)):
        if index % 2 == summed_parity:
            out = out + F.softplus(layer_input(index, layers, weights, biases)).sum(-1)
        else:
            out = out + layers[index] @ biases[index]
    return out


class LayeredBoltzmannMachine(UnnormalizedDistribution):
    r"""Binary units in layers ``layer_sizes = (n_v, n_1, ..., n_L)``; see the module docstring.

    Parameters: ``weights[l]`` of shape :math:`(n_l, n_{l+1})` (initialised
    :math:`\mathcal N(0, \text{init\_std}^2)`) and ``biases[l]`` (zeros).

    ``compute_dtype`` (e.g. ``torch.bfloat16``) is the dtype of the matrix products of Gibbs
    sampling and of the training statistics — mixed precision: the parameters keep their dtype
    and products accumulate in float32. Energies, :math:`\log Z` (exact or AIS) and
    log-probabilities are always computed at the parameters' precision.
    """

    support = constraints.independent(constraints.boolean, 1)
    #: The parity of the layers AIS sums out of :math:`f_\beta` (see :class:`_LayeredPath`):
    #: 1, the hidden layer of an RBM.
    annealing_summed_parity: ClassVar[int] = 1

    def __init__(
        self,
        layer_sizes: Sequence[int],
        *,
        init_std: float = 0.01,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        validate_args: bool | None = None,
        compute_dtype: torch.dtype | None = None,
    ) -> None:
        sizes = list(layer_sizes) if isinstance(layer_sizes, Sequence) else []
        if len(sizes) < 2 or any(
            isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in sizes
        ):
            raise ValueError(f"layer_sizes must be >= 2 positive integers, got {layer_sizes!r}")
        check_number("init_std", init_std, least=0.0)
        check_float_dtype("dtype", dtype)
        check_float_dtype("compute_dtype", compute_dtype)
        super().__init__(sizes[0], validate_args=validate_args)
        self.layer_sizes = tuple(sizes)
        self.compute_dtype = compute_dtype
        kw: dict[str, Any] = {"dtype": dtype or torch.get_default_dtype()}
        self.weights = nn.ParameterList(
            nn.Parameter(
                initial_draw(torch.randn, a, b, generator=generator, device=device, **kw) * init_std
            )
            for a, b in itertools.pairwise(sizes)
        )
        self.biases = nn.ParameterList(
            nn.Parameter(torch.zeros(n, device=device, **kw)) for n in sizes
        )

    # -- conditionals and energies ----------------------------------------------------------
    @property
    def bernoulli_bits(self) -> int:
        """Random bits per Bernoulli draw of a wide layer (:func:`~flowdist.mcmc.gibbs.bernoulli`):
        16 when the products are computed in a 16-bit dtype, whose rounding is far larger than
        the draws' :math:`2^{-17}`, else 32."""
        return 16 if (self.compute_dtype or self.weights[0].dtype).itemsize == 2 else 32

    def layer_input(self, index: int, layers: Sequence[Tensor | None]) -> Tensor:
        r"""The pre-activation :math:`a^{(l)}` of layer ``index`` given its neighbours."""
        return layer_input(index, layers, list(self.weights), list(self.biases), self.compute_dtype)

    def _sample_layer(
        self, index: int, layers: Sequence[Tensor], generator: torch.Generator | None
    ) -> Tensor:
        probs = torch.sigmoid(self.layer_input(index, layers))
        return bernoulli(probs, generator, bits=self.bernoulli_bits)

    def joint_energy(self, layers: Sequence[Tensor]) -> Tensor:
        r"""The energy :math:`E(h^{(0)}, \dots, h^{(L)})` of a full configuration (or of means)."""
        out = sum(-((layers[i] @ w) * layers[i + 1]).sum(-1) for i, w in enumerate(self.weights))
        return out - sum(h @ b for h, b in zip(layers, self.biases, strict=True))

    def energy(self, x: Tensor) -> Tensor:
        r"""The free energy :math:`F(v) = -\log \sum_h e^{-E(v, h)}`.

        Odd hidden layers are summed analytically; even hidden layers (deep models) are
        enumerated, which is possible only while they hold at most ``max_enumerable_units``
        units.
        """
        self._check(x)
        weights, biases = list(self.weights), list(self.biases)
        even = list(range(2, len(biases), 2))
        if not even:
            return -summed_log_f([x, None], 1, weights, biases)
        sizes = [self.layer_sizes[i] for i in even]

        batch = x.shape[:-1]
        width = max(self.layer_sizes) * max(1, math.prod(batch))

        def log_f(states: Tensor) -> Tensor:  # (S, m) -> (S, *batch)
            layers: list[Tensor | None] = [None] * len(biases)
            layers[0] = x.unsqueeze(0)
            for i, part in zip(even, states.to(x).split(sizes, dim=-1), strict=True):
                layers[i] = part.reshape(part.shape[:1] + (1,) * len(batch) + part.shape[1:])
            return summed_log_f(layers, 1, weights, biases)

        return -enumerate_log_sum_exp(
            log_f,
            sum(sizes),
            max_units=self.max_enumerable_units,
            what="the even hidden layers",
            remedy="use variational_lower_bound(...) for a bound on log p(v)",
            device=x.device,
            chunk_size=max(1, (1 << 22) // width),
        ).to(x)

    def _exact_log_partition(self) -> Tensor:
        weights = [w.double() for w in self.weights]
        biases = [b.double() for b in self.biases]
        parity_sizes = [sum(self.layer_sizes[p::2]) for p in (0, 1)]
        kept = 0 if parity_sizes[0] <= parity_sizes[1] else 1  # enumerate the smaller class
        indices = list(range(kept, len(biases), 2))
        sizes = [self.layer_sizes[i] for i in indices]

        def log_f(states: Tensor) -> Tensor:
            layers: list[Tensor | None] = [None] * len(biases)
            for i, part in zip(indices, states.split(sizes, dim=-1), strict=True):
                layers[i] = part
            return summed_log_f(layers, 1 - kept, weights, biases)

        return enumerate_log_sum_exp(
            log_f,
            sum(sizes),
            max_units=self.max_enumerable_units,
            what=("the visible and even hidden layers", "the odd hidden layers")[kept],
            device=self.biases[0].device,
        )

    # -- Markov chains ----------------------------------------------------------------------
    def init_chain(self, num_chains: int, generator: torch.Generator | None) -> tuple[Tensor, ...]:
        """Every unit an independent fair coin."""
        b = self.biases[0]
        return tuple(
            bernoulli(
                torch.full((num_chains, n), 0.5, dtype=b.dtype, device=b.device),
                generator=generator,
            )
            for n in self.layer_sizes
        )

    def chain_step(
        self, state: Sequence[Tensor], generator: torch.Generator | None
    ) -> tuple[Tensor, ...]:
        """One block-Gibbs sweep: odd layers given even, then even given odd."""
        return tuple(
            alternating_gibbs_sweep(state, lambda i, hs: self._sample_layer(i, hs, generator))
        )

    def visible(self, state: Sequence[Tensor]) -> Tensor:
        return state[0]

    def chain_from_data(self, x: Tensor, generator: torch.Generator | None) -> tuple[Tensor, ...]:
        """A chain state with visible units ``x`` and hidden layers drawn bottom-up."""
        layers = [x]
        for w, b in zip(self.weights, self.biases[1:], strict=True):
            layers.append(bernoulli(torch.sigmoid(layers[-1] @ w + b), generator))
        return tuple(layers)

    # -- learning ---------------------------------------------------------------------------
    def statistics(self, layers: Sequence[Tensor], weights: Tensor | None = None) -> list[Tensor]:
        r"""Sufficient statistics :math:`-\partial E / \partial \theta` averaged over rows:
        :math:`\langle h^{(l)} h^{(l+1)\top} \rangle` for each :math:`W^{(l)}`, then
        :math:`\langle h^{(l)} \rangle` for each :math:`b^{(l)}` — in ``parameters()`` order.
        ``weights`` (summing to one) replace the uniform average."""
        n = layers[0].shape[0]
        w = torch.full((n,), 1.0 / n, dtype=layers[0].dtype, device=layers[0].device)
        w = w if weights is None else weights.to(layers[0])
        cd = self.compute_dtype
        pairs = [matmul((h * w[:, None]).T, g, cd) for h, g in itertools.pairwise(layers)]
        return pairs + [w @ h for h in layers]

    def rao_blackwell(self, layers: Sequence[Tensor]) -> list[Tensor]:
        """``layers`` with each odd layer replaced by its conditional mean given the even ones."""
        out = list(layers)
        for i in range(1, len(out), 2):
            out[i] = torch.sigmoid(self.layer_input(i, out))
        return out

    def positive_statistics(
        self, x: Tensor, generator: torch.Generator | None = None
    ) -> list[Tensor]:
        r"""Data term of the log-likelihood gradient, :math:`\langle\cdot\rangle_{p(h \mid v)}`
        (deeper layers drawn bottom-up with ``generator``, the odd ones Rao-Blackwellised)."""
        if len(self.layer_sizes) == 2:  # the hidden layer is exactly Rao-Blackwellised
            return self.statistics(self.rao_blackwell([x, x.new_empty(0)]))
        return self.statistics(self.rao_blackwell(self.chain_from_data(x, generator)))

    def negative_statistics(self, state: Sequence[Tensor]) -> list[Tensor]:
        """Model term of the gradient from chain states (odd layers Rao-Blackwellised)."""
        return self.statistics(self.rao_blackwell(state))

    def annealing_path(self, data: Tensor | None = None) -> _LayeredPath:
        """The AIS path from the base-rate model, with the layers of parity
        :attr:`annealing_summed_parity` summed out."""
        base = base_rate_logits(data, self.layer_sizes[0], self.biases[0])
        return _LayeredPath(self, base, self.annealing_summed_parity)


class _LayeredPath:
    r"""AIS path for a layered machine, with the layers of one parity summed out of
    :math:`f_\beta` (``summed_parity``: 1 for the odd layers, 0 for the visible and even
    ones). State = (all layers, pre-activations of the summed layers); the pre-activations are
    cached unscaled so each step costs one product per weight matrix and direction.

    On the path the tempered pre-activation of layer :math:`l` is :math:`\beta a^{(l)}`, plus
    :math:`(1-\beta) b_A` for the visible layer, and a kept layer contributes its tempered bias
    term, so

    .. math::
        \log f_\beta = \sum_{l \text{ kept}} \tilde b_\beta^{(l)\top} h^{(l)}
            + \sum_{l \text{ summed}} \sum_j \operatorname{softplus}(\tilde a^{(l)}_{\beta j}).
    """

    def __init__(self, model: LayeredBoltzmannMachine, base: Tensor, summed_parity: int) -> None:
        self.model = model
        self.base, self.base64 = base, base.double()
        self.weights, self.biases = list(model.weights), list(model.biases)
        depth = len(model.layer_sizes)
        self.summed = list(range(summed_parity, depth, 2))
        self.kept = list(range(1 - summed_parity, depth, 2))
        hidden = sum(model.layer_sizes[1:])
        self.log_z0 = float(F.softplus(self.base64).sum()) + hidden * math.log(2.0)

    def _with_pre(self, layers: list[Tensor]) -> tuple[list[Tensor], dict[int, Tensor], dict]:
        pre = {i: layer_input(i, layers, self.weights, self.biases) for i in self.summed}
        return layers, pre, {i: a.double() for i, a in pre.items()}

    def _tempered(self, index: int, a: Tensor, beta: float, base: Tensor) -> Tensor:
        return beta * a + (1.0 - beta) * base if index == 0 else beta * a

    def init(self, num_chains: int, generator: torch.Generator | None) -> Any:
        state = list(self.model.init_chain(num_chains, generator))
        state[0] = bernoulli(
            torch.sigmoid(self.base).expand(num_chains, -1).contiguous(), generator=generator
        )
        return self._with_pre(state)

    def log_f(self, state: Any, beta: float) -> Tensor:
        layers, _, pre64 = state
        out = sum(
            (layers[i] @ self._tempered(i, self.biases[i], beta, self.base)).double()
            for i in self.kept
        )
        for i in self.summed:
            out = out + F.softplus(self._tempered(i, pre64[i], beta, self.base64)).sum(-1)
        return out

    def transition(self, state: Any, beta: float, generator: torch.Generator | None) -> Any:
        layers, pre, _ = state
        layers = list(layers)
        for i in self.summed:
            a = self._tempered(i, pre[i], beta, self.base)
            layers[i] = bernoulli(torch.sigmoid(a), generator)
        for i in self.kept:
            a = self._tempered(
                i, layer_input(i, layers, self.weights, self.biases), beta, self.base
            )
            layers[i] = bernoulli(torch.sigmoid(a), generator)
        return self._with_pre(layers)
