r"""The base class of the energy-based models: a distribution known up to its normalizer.

.. math::
    p(x) = \frac{\exp(-E(x))}{Z}, \qquad Z = \sum_x \exp(-E(x)) \;\;(\text{or } \int),

where for a latent-variable model :math:`E` is the *free energy*
:math:`F(x) = -\log \sum_h \exp(-E(x, h))`. :class:`UnnormalizedDistribution` is both a
:class:`torch.distributions.Distribution` and an :class:`torch.nn.Module`. Subclasses provide
the energy, the exact :math:`\log Z` where it is enumerable, an annealing path for AIS and a
Markov kernel; this class turns them into :meth:`~UnnormalizedDistribution.log_prob` and
:meth:`~UnnormalizedDistribution.sample`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, constraints

from flowdist.ebm.partition import AnnealingPath, PartitionEstimate, ais
from flowdist.mcmc.gibbs import PersistentChains, run_chain
from flowdist.transforms.base import check_input
from flowdist.validation import check_count, check_generator, squares_finite

__all__ = ["UnnormalizedDistribution"]


class UnnormalizedDistribution(nn.Module, Distribution):
    r"""A distribution :math:`p(x) = e^{-E(x)}/Z` known through its energy.

    Subclasses implement :meth:`energy`, :meth:`_exact_log_partition` (raising
    :class:`~flowdist.ebm.partition.PartitionTooLargeError` when not enumerable),
    :meth:`annealing_path`, :meth:`init_chain`, :meth:`chain_step` and :meth:`visible`.

    ``log_prob`` subtracts the exact :math:`\log Z` when the model is small enough to enumerate
    (``log_partition_method == "exact"``), otherwise the latest AIS estimate made for the current
    parameters (``"ais"``); without either it raises. Both are cached and recomputed whenever a
    parameter changes.
    """

    arg_constraints: ClassVar[dict] = {}
    has_rsample = False
    #: Enumeration limit: exact log Z sums over at most 2**max_enumerable_units states.
    max_enumerable_units: int = 25
    #: Set within :meth:`_trusted_inputs`.
    _trusted: bool = False

    def __init__(self, event_size: int, *, validate_args: bool | None = None) -> None:
        nn.Module.__init__(self)
        Distribution.__init__(
            self, torch.Size(), torch.Size([event_size]), validate_args=validate_args
        )
        self._log_z_cache: tuple[Any, Tensor] | None = None
        self._estimate: tuple[Any, PartitionEstimate] | None = None
        self._chains = PersistentChains(self.init_chain)

    # -- to implement -----------------------------------------------------------------------
    def energy(self, x: Tensor) -> Tensor:
        """The energy (free energy for latent-variable models) of ``x``, shape ``x.shape[:-1]``."""
        raise NotImplementedError

    def _exact_log_partition(self) -> Tensor:
        raise NotImplementedError

    def annealing_path(self, data: Tensor | None = None) -> AnnealingPath:
        """The AIS path from a tractable base (fitted to ``data`` where given) to this model."""
        raise NotImplementedError

    def init_chain(self, num_chains: int, generator: torch.Generator | None) -> Any:
        """A fresh Markov chain state for ``num_chains`` chains."""
        raise NotImplementedError

    def chain_step(self, state: Any, generator: torch.Generator | None) -> Any:
        """One step of the model's Markov kernel (leaves the model's distribution invariant)."""
        raise NotImplementedError

    def visible(self, state: Any) -> Tensor:
        """The visible units ``x`` of a chain state."""
        return state

    # -- learning hooks (defaults; subclasses override with closed forms) --------------------
    def chain_from_data(self, x: Tensor, generator: torch.Generator | None) -> Any:
        """A chain state started at the data ``x`` (contrastive divergence)."""
        return x

    def sufficient_statistics(self, x: Tensor) -> list[Tensor]:
        r""":math:`\partial\, \overline{\log \tilde p(x)} / \partial \theta` for every
        parameter, the batch average, by automatic differentiation."""
        params = list(self.parameters())
        trained = [p for p in params if p.requires_grad]
        grads = iter(())
        if trained:  # autograd.grad refuses an empty list
            with torch.enable_grad():
                grads = iter(torch.autograd.grad(self.unnormalized_log_prob(x).mean(), trained))
        # a frozen parameter (requires_grad=False) gets a zero statistic: train_cd skips it
        return [next(grads) if p.requires_grad else torch.zeros_like(p) for p in params]

    def positive_statistics(
        self, x: Tensor, generator: torch.Generator | None = None
    ) -> list[Tensor]:
        r"""Data term of :math:`\nabla_\theta \log p`: :math:`\langle \nabla \log \tilde p
        \rangle_\text{data}`, in ``parameters()`` order (``generator`` draws whatever a
        model must sample to estimate it)."""
        return self.sufficient_statistics(x)

    def negative_statistics(self, state: Any) -> list[Tensor]:
        r"""Model term :math:`\langle \nabla \log \tilde p \rangle_\text{model}` from chain
        states; :math:`\nabla \log Z` equals its expectation."""
        return self.sufficient_statistics(self.visible(state))

    def contrastive_gradient(
        self,
        x: Tensor,
        k: int,
        generator: torch.Generator | None = None,
        state: Any = None,
    ) -> tuple[list[Tensor], Any]:
        r"""A stochastic estimate of :math:`\nabla_\theta \frac1n \sum_i \log p_\theta(x_i)`:
        positive minus negative statistics after ``k`` chain steps.

        The chain starts at the data (CD-``k``) when ``state`` is ``None``, else at ``state``
        (persistent chains, any number of them). Returns the gradient, in ``parameters()``
        order, and the chain's new state. Raises :class:`FloatingPointError` when the chain
        states stop being finite (a diverging model).
        """
        check_count("k", k, least=1)
        positive = self.positive_statistics(x, generator)
        state = self.chain_from_data(x, generator) if state is None else state
        for _ in range(k):
            state = self.chain_step(state, generator)
        if not bool(torch.isfinite(self.visible(state)).all()):
            raise FloatingPointError(
                "training diverged: the Markov chain states are not finite; lower the learning rate"
            )
        negative = self.negative_statistics(state)
        return [p - n for p, n in zip(positive, negative, strict=True)], state

    def after_update(self) -> None:
        """Called by the trainer after each parameter update (projections, clamps)."""

    def _fused_sgd(self, **kwargs: Any) -> Any:
        """A model's own epochs of :func:`~flowdist.ebm.train.train_cd` (an object with
        ``epoch(data, order, batch_size, generator, step)``, see
        :class:`flowdist.ebm.rbm._AugmentedSGD`), or ``None`` for the generic loop."""
        return None

    # -- provided ---------------------------------------------------------------------------
    def _state_key(self) -> tuple:
        # Version counters catch in-place updates; the position-weighted checksum also catches
        # writes through ``.data``, which bypass them.
        key = []
        for t in (*self.parameters(), *self.buffers()):
            flat = t.detach().reshape(-1).double()
            ramp = torch.linspace(1.0, 2.0, flat.numel(), dtype=flat.dtype, device=flat.device)
            key.append((t.data_ptr(), t._version, t.dtype, t.device, float(flat @ ramp)))
        return tuple(key)

    def _check(
        self, x: Tensor, name: str = "x", *, rows: int | None = None, support: bool = False
    ) -> None:
        """Raise an error naming ``name`` unless ``x`` is a tensor of shape ``(..., event_size)``
        with the parameters' dtype and device (:func:`~flowdist.transforms.base.check_input`) —
        of shape ``(N, event_size)`` with ``N >= rows`` when ``rows`` is given — and in the
        support (:meth:`_check_support`) when ``support`` is set, or ``validate_args`` outside
        :meth:`_trusted_inputs`."""
        if rows is not None and isinstance(x, Tensor):
            if x.shape[1:] != self.event_shape or len(x) < rows:
                raise ValueError(
                    f"{name} must have shape (N, {self.event_shape[0]})"
                    f"{f' with N >= {rows}' if rows else ''}, got {tuple(x.shape)}"
                )
        like = next(self.parameters())
        check_input(name, x, tuple(self.event_shape), like.dtype, device=like.device)
        if support or (self._validate_args and not self._trusted):
            self._check_support(x, name)

    def _check_support(self, x: Tensor, name: str = "x") -> None:
        """Raise an error naming ``name`` unless every value of ``x`` lies in the support and
        is finite with a square that does not overflow ``x``'s dtype
        (:func:`~flowdist.validation.squares_finite`: energies of larger values cannot be
        computed). Empty tensors pass (torch's own check fails on them)."""
        if x.numel() and not self._in_support(x):
            raise ValueError(
                f"{name} has values outside the model's support ({self.support}; finite, with "
                f"squares that do not overflow): values range over "
                f"[{float(x.min()):g}, {float(x.max()):g}]"
            )

    def _in_support(self, x: Tensor) -> bool:
        """Whether every row of ``x`` lies in the support (and, for a real support, is finite
        with a square that does not overflow), checked in chunks of about a million values so
        that checking a whole data set needs no data-sized temporaries."""
        rows = x.reshape(-1, *self.event_shape) if x.dim() > 1 else x.reshape(1, -1)
        base = getattr(self.support, "base_constraint", self.support)
        binary = base is constraints.boolean and x.is_floating_point()
        real = not self.support.is_discrete

        chunks = rows.split(max(1, (1 << 20) // max(1, rows[0].numel())))
        # one temporary for every chunk: fresh ones cost page faults as large as the check
        buffer = torch.empty_like(chunks[0]) if binary else None

        def ok(chunk: Tensor) -> Tensor:
            if binary:  # x - x^2 = 0 exactly iff x is 0 or 1 (nan, inf fail)
                lo, hi = torch.aminmax(
                    torch.addcmul(chunk, chunk, chunk, value=-1, out=buffer[: len(chunk)])
                )
                return (lo == 0) & (hi == 0)
            inside = self.support.check(chunk).all()
            return inside & squares_finite(chunk) if real else inside

        with torch.no_grad():
            return bool(torch.stack([ok(chunk) for chunk in chunks]).all())

    @contextmanager
    def _trusted_inputs(self) -> Iterator[None]:
        """Within: :meth:`_check` checks the support only when asked to (as if
        ``validate_args`` were off), for a training loop whose data were checked once and whose
        chain states are the model's own — checking every mini-batch would cost a pass over it
        and a device sync."""
        self._trusted = True
        try:
            yield
        finally:
            self._trusted = False

    def free_energy(self, x: Tensor) -> Tensor:
        r"""The same as :meth:`energy` (the name used for latent-variable models)."""
        return self.energy(x)

    def unnormalized_log_prob(self, x: Tensor) -> Tensor:
        r""":math:`\log \tilde p(x) = -E(x)` (minus the free energy for latent-variable models)."""
        return -self.energy(x)

    def log_partition(self) -> Tensor:
        r"""The exact :math:`\log Z` (float64 scalar), by enumeration.

        Raises :class:`~flowdist.ebm.partition.PartitionTooLargeError` when the model is too
        large to enumerate; use :meth:`estimate_log_partition` then.
        """
        key = self._state_key()
        if self._log_z_cache is not None and self._log_z_cache[0] == key:
            return self._log_z_cache[1].clone()  # on the model's device, as computed
        with torch.no_grad():
            log_z = self._exact_log_partition()
        self._log_z_cache = (key, log_z)
        return log_z.clone()

    def estimate_log_partition(
        self,
        method: str = "ais",
        *,
        num_chains: int = 100,
        betas: Tensor | int = 14500,
        data: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> PartitionEstimate:
        r"""Estimate :math:`\log Z` by annealed importance sampling; see
        :func:`flowdist.ebm.partition.ais`.

        ``data`` (training data) sets the base-rate model of Salakhutdinov & Murray (2008): the
        base distribution's visible marginals match the data's. The estimate is kept and used by
        :meth:`log_prob` until a parameter changes. Under ``torchrun`` the runs are split across
        the ranks and merged exactly (see :func:`~flowdist.ebm.partition.ais`): call it on
        every rank.
        """
        if method != "ais":
            raise ValueError(f"method must be 'ais', got {method!r}")
        check_generator(generator, next(self.parameters()).device)
        if data is not None:
            self._check(data, "data", rows=0)
        for name, p in self.named_parameters():
            if not bool(torch.isfinite(p).all()):
                raise FloatingPointError(f"cannot run AIS: parameter {name!r} is not finite")
        estimate = ais(
            self.annealing_path(data), num_chains=num_chains, betas=betas, generator=generator
        )
        self._estimate = (self._state_key(), estimate)
        return estimate

    def _log_z(self, differentiable: bool = False) -> tuple[Tensor | float, str]:
        r""":math:`\log Z` and how it was had; ``differentiable``: the exact value enumerated
        again with its graph (not the cached float)."""
        try:
            if differentiable:
                return self._exact_log_partition(), "exact"
            return float(self.log_partition()), "exact"
        except ValueError as err:
            if self._estimate is not None and self._estimate[0] == self._state_key():
                return self._estimate[1].log_z, "ais"
            raise ValueError(
                f"{type(self).__name__}.log_prob needs log Z: {err}. (An AIS estimate, once made,"
                " is used until the parameters change.)"
            ) from err

    @property
    def log_partition_method(self) -> str | None:
        """How :meth:`log_prob` normalizes now: ``"exact"``, ``"ais"`` or ``None`` (cannot)."""
        try:
            return self._log_z()[1]
        except ValueError:
            return None

    def log_prob(self, value: Tensor) -> Tensor:
        r""":math:`\log p(x) = -E(x) - \log Z`, with the exact or estimated :math:`\log Z` (see
        :attr:`log_partition_method`); warns when an estimate is provably too low (see
        :meth:`_warn_if_impossible`).

        Differentiable in the parameters when :math:`\log Z` is exact: with gradients on and
        parameters that require them, :math:`\log Z` is enumerated again, differentiably (chunk
        by chunk, checkpointed: the memory of one chunk, and ``backward`` enumerates once more;
        under ``torch.no_grad()`` the cached value serves). An AIS estimate is a constant: the
        parameter gradient then lacks :math:`-\nabla \log Z` (the gradient in ``value`` is
        exact either way)."""
        self._check(value, "value")
        trained = torch.is_grad_enabled() and any(p.requires_grad for p in self.parameters())
        log_z, method = self._log_z(differentiable=trained)
        return self._warn_if_impossible(self.unnormalized_log_prob(value) - log_z, method)

    def _warn_if_impossible(self, log_p: Tensor, method: str, what: str = "log p(x)") -> Tensor:
        r"""``log_p``, after a :class:`RuntimeWarning` if a discrete model normalized by an AIS
        estimate gives some :math:`x` a value above 0: a probability above 1, so
        :math:`\log \hat Z` is at least that much too low (AIS underestimates :math:`\log Z`
        when its chains miss modes; more ``betas`` or ``num_chains`` help)."""
        if method == "ais" and self.support.is_discrete and log_p.numel():
            excess = float(log_p.detach().max())
            if excess > 0:
                warnings.warn(
                    f"{type(self).__name__}: {what} reaches {excess:.4g} > 0 with the AIS "
                    f"estimate of log Z, so that estimate is at least {excess:.4g} nats too "
                    "low (the annealing runs missed modes of the model); re-estimate with more "
                    "betas or num_chains before using these values",
                    RuntimeWarning,
                    stacklevel=3,
                )
        return log_p

    def sample(
        self,
        sample_shape: torch.Size | tuple[int, ...] = (),
        *,
        burn_in: int = 1000,
        thin: int = 1,
        num_chains: int | None = None,
        persistent: bool = False,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        r"""Draw ``sample_shape`` samples by running the model's Markov kernel.

        ``num_chains`` chains (default: one per sample) each take ``burn_in`` steps, then give
        ``N / num_chains`` draws ``thin`` steps apart, where :math:`N` is the number of samples
        requested. With ``persistent=True`` the chains start where the previous persistent call
        left them (fresh the first time, or when ``num_chains`` changes), so ``burn_in`` can be
        small: a resumed chain takes ``burn_in + thin`` steps before its first draw, so that
        with ``burn_in=0`` successive calls give the draws of one longer call. Samples are
        correlated within a chain; they are only asymptotically exact.
        An empty ``sample_shape`` (a zero in it) gives an empty tensor.
        """
        if not isinstance(sample_shape, (tuple, list)) or any(
            isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in sample_shape
        ):
            raise ValueError(
                f"sample_shape must be a tuple of non-negative integers, got {sample_shape!r}"
            )
        shape = torch.Size(sample_shape)
        total = math.prod(shape)
        like = next(self.parameters())
        check_generator(generator, like.device)
        if not total:
            return like.new_zeros(shape + self.event_shape)
        if num_chains is not None:
            check_count("num_chains", num_chains, least=1)
        chains = total if num_chains is None else num_chains
        if total % chains:
            raise ValueError(
                f"num_chains must be a positive divisor of the number of samples {total}, "
                f"got {num_chains!r}"
            )
        check_count("burn_in", burn_in)
        check_count("thin", thin, least=1)
        with torch.no_grad():
            if persistent:
                stored = self._chains.state
                init = self._chains.get(chains, like, generator)
                if init is stored:  # the previous call's last draw: move on before drawing
                    burn_in += thin
            else:
                init = self.init_chain(chains, generator)
            draws, state = run_chain(
                lambda s: self.chain_step(s, generator),
                init,
                num_samples=total // chains,
                burn_in=burn_in,
                thin=thin,
                extract=self.visible,
            )
        if persistent:
            self._chains.state = state
        return draws.reshape(shape + self.event_shape)

    def __repr__(self) -> str:
        return nn.Module.__repr__(self)
