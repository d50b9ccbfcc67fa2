r"""Flows: modules that return distributions.

A normalizing flow pushes a base sample :math:`z_0 \sim p_0` through bijectors,
:math:`x = f_K \circ \dots \circ f_1(z_0)`, and by the change of variables

.. math::
    \log p(x) = \log p_0(z_0) - \sum_{k=1}^K \log\left|\det
        \frac{\partial f_k}{\partial z_{k-1}}\right|.

:class:`Flow` is an :class:`~torch.nn.Module` (parameters, ``state_dict``, ``.to()``); calling it,
with a context for conditional flows, returns a :class:`FlowDistribution`, a
:class:`~torch.distributions.TransformedDistribution` (Pyro's subclass, so ``pyro.sample``
takes it) whose :meth:`~FlowDistribution.rsample_and_log_prob` and
:meth:`~FlowDistribution.log_prob` make one fused pass through the bijectors.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import pyro.distributions as pdist
import torch
from torch import Size, Tensor, nn
from torch.distributions import ComposeTransform, Distribution, Independent, Normal, Transform

from flowdist.transforms.base import (
    ConditionalModule,
    call_and_ladj,
    check_dim,
    check_input,
    nonfinite_parameter,
    sum_rightmost,
)

__all__ = ["Flow", "FlowDistribution", "StandardBase", "StandardNormal"]


class StandardBase(nn.Module):
    """A base distribution over events of shape ``event_shape`` with location 0 and scale 1
    held in buffers, which follow ``.to()`` so the distribution lives on the module's device and
    dtype. Subclasses build the distribution in ``forward``."""

    def __init__(self, *event_shape: int) -> None:
        super().__init__()
        for n in event_shape:
            check_dim("event_shape", n)
        self.register_buffer("loc", torch.zeros(event_shape))
        self.register_buffer("scale", torch.ones(event_shape))


class StandardNormal(StandardBase):
    r"""The base :math:`\mathcal N(0, I)` over events of shape ``event_shape``."""

    def forward(self, context: Tensor | None = None) -> Distribution:
        return _DiagonalNormal(Normal(self.loc, self.scale), self.loc.dim())


class _DiagonalNormal(Independent):
    r"""Independent normal entries with the log-density in closed form,
    :math:`-\tfrac12 \sum_i ((z_i - \mu_i)/\sigma_i)^2 - \sum_i \log \sigma_i
    - \tfrac D2 \log 2\pi`, in fewer operations than ``Independent(Normal).log_prob`` (and
    defined for empty batches)."""

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args and value.numel():  # torch's support check rejects empty batches
            self._validate_sample(value)
        normal = self.base_dist
        n = self.reinterpreted_batch_ndims
        z = (value - normal.loc) / normal.scale
        const = sum_rightmost(normal.scale.log(), n) + 0.5 * math.log(2 * math.pi) * math.prod(
            self.event_shape
        )
        return -0.5 * sum_rightmost(z.square(), n) - const

    def sample(self, sample_shape: Size | tuple[int, ...] = ()) -> Tensor:
        # torch's Normal.sample calls torch.normal(loc, scale), which also scans the scale for
        # negative entries; the reparameterised draw gives the same numbers in fewer passes
        with torch.no_grad():
            return self.rsample(sample_shape)


class _Composition(ComposeTransform):
    """The composition of ``parts`` with its domain and codomain computed once (torch's
    :class:`~torch.distributions.ComposeTransform` recomputes them, in a loop over the parts,
    at every access: five times while a :class:`FlowDistribution` is built)."""

    domain = codomain = None  # instance attributes here, not torch's properties

    def __init__(self, parts: list[Transform]) -> None:
        super().__init__(parts)
        self.domain = ComposeTransform.domain.fget(self)
        self.codomain = ComposeTransform.codomain.fget(self)


class FlowDistribution(pdist.TransformedDistribution):
    r"""A :class:`~torch.distributions.TransformedDistribution` with fused passes.

    :meth:`rsample_and_log_prob` draws :math:`x` and :math:`\log p(x)` in the forward pass alone
    (no inverse), and :meth:`log_prob` evaluates data through the inverses in one pass each.
    """

    def __init__(
        self,
        base_distribution: Distribution,
        transforms: Transform | list[Transform],
        validate_args: bool | None = None,
    ) -> None:
        composition = transforms if isinstance(transforms, _Composition) else None
        if composition is None and isinstance(transforms, list):
            if not all(isinstance(t, Transform) for t in transforms):
                raise ValueError("transforms must be a Transform or a list of Transforms")
            composition = _Composition(transforms)
        # torch derives the shapes from the composition (one part: cheap), then the fused
        # passes run over the parts themselves
        super().__init__(
            base_distribution, transforms if composition is None else composition, validate_args
        )
        if composition is not None:
            self.transforms = list(composition.parts)

    def expand(
        self, batch_shape: Size | tuple[int, ...], _instance: FlowDistribution | None = None
    ) -> FlowDistribution:
        new = self._get_checked_instance(FlowDistribution, _instance)
        return super().expand(batch_shape, _instance=new)

    def rsample_and_log_prob(
        self,
        sample_shape: Size | tuple[int, ...] = (),
        *,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        r"""A reparameterised sample :math:`x` and :math:`\log p(x)`, from one forward pass
        (``generator`` draws the base noise; it needs a Normal base)."""
        z = self._base_rsample(torch.Size(sample_shape), generator)
        n = len(self.base_dist.event_shape)
        # torch's reductions reject empty batches: the log-density of nothing is empty
        log_prob = self.base_dist.log_prob(z) if z.numel() else z.new_zeros(z.shape[: z.dim() - n])
        event_dim = len(self.base_dist.event_shape)
        for t in self.transforms:
            z, ladj = call_and_ladj(t, z, event_dim)
            event_dim += t.codomain.event_dim - t.domain.event_dim
            log_prob = log_prob - ladj
        if self._validate_args:
            self._check_finite("rsample_and_log_prob", log_prob, z)
        return z, log_prob

    def rsample(
        self, sample_shape: Size | tuple[int, ...] = (), *, generator: torch.Generator | None = None
    ) -> Tensor:
        """A reparameterised sample (``generator`` draws the base noise)."""
        return self.rsample_and_log_prob(sample_shape, generator=generator)[0]

    def _base_rsample(self, shape: Size, generator: torch.Generator | None) -> Tensor:
        base = self.base_dist
        if generator is None:
            return base.rsample(shape)
        normal = base.base_dist if isinstance(base, Independent) else base
        if not isinstance(normal, Normal):
            raise TypeError(
                f"generator: seeded sampling needs a Normal base, not {type(normal).__name__}"
            )
        loc = normal.loc
        noise = torch.randn(
            base._extended_shape(shape), generator=generator, dtype=loc.dtype, device=loc.device
        )
        return loc + noise * normal.scale

    def log_prob(self, value: Tensor) -> Tensor:
        like = self.base_dist.mean
        check_input("value", value, tuple(self.event_shape), like.dtype, device=like.device)
        if not value.numel():  # an empty batch (torch's reductions reject it)
            return value.new_zeros(value.shape[: value.dim() - len(self.event_shape)])
        if self._validate_args:
            self._validate_sample(value)
        event_dim = len(self.event_shape)
        log_prob = 0.0
        y = value
        for t in reversed(self.transforms):
            inv = t.inv
            x, ladj = call_and_ladj(inv, y, event_dim)
            event_dim += t.domain.event_dim - t.codomain.event_dim
            log_prob = log_prob + ladj
            y = x
        base = self.base_dist.log_prob(y)
        log_prob = log_prob + sum_rightmost(base, event_dim - len(self.base_dist.event_shape))
        if self._validate_args:
            self._check_finite("log_prob", log_prob)
        return log_prob

    def _check_finite(self, method: str, log_prob: Tensor, sample: Tensor | None = None) -> None:
        """With ``validate_args``: a non-finite result is an error that names its cause."""
        finite = torch.isfinite(log_prob).all()
        if sample is not None:
            finite = finite & torch.isfinite(sample).all()
        if bool(finite):
            return
        for i, t in enumerate(self.transforms):
            name = nonfinite_parameter(t) if isinstance(t, nn.Module) else None
            if name is not None:
                raise ValueError(
                    f"transforms[{i}] ({type(t).__name__}) parameter {name!r} has "
                    "non-finite values (nan or inf)"
                )
        if sample is not None:
            raise ValueError(
                f"{method} produced non-finite values: the bijectors carry base draws beyond "
                f"the range of {sample.dtype} (parameters of extreme magnitude)"
            )
        raise ValueError(
            f"{method} produced non-finite values: the input value lies outside the region "
            "where the flow's density is representable (inf/nan inputs or extreme magnitudes)"
        )


class Flow(nn.Module):
    r"""A normalizing flow :math:`x = f_K \circ \dots \circ f_1(z_0)`, :math:`z_0 \sim` ``base``.

    Args:
        transforms: bijectors applied in order (any :class:`~torch.distributions.Transform`;
            :class:`~flowdist.transforms.ConditionalModule` entries are called with the
            context and return the bijector to apply).
        base: a module returning the base distribution (e.g. :class:`StandardNormal`), so that
            it follows ``.to()``.

    Calling the flow, ``flow(context)``, returns a :class:`FlowDistribution`.
    """

    def __init__(self, transforms: Sequence[Transform | nn.Module], base: nn.Module) -> None:
        super().__init__()
        for i, t in enumerate(transforms):
            if not isinstance(t, (Transform, ConditionalModule)):
                raise TypeError(
                    f"transforms[{i}] must be a torch.distributions.Transform or a "
                    f"ConditionalModule, got {type(t).__name__}"
                )
        if not isinstance(base, nn.Module):
            raise TypeError(f"base must be an nn.Module returning a distribution, got {base!r}")
        self.transforms = nn.ModuleList([t for t in transforms if isinstance(t, nn.Module)])
        self._all = list(transforms)
        self.base = base

    @property
    def conditional(self) -> bool:
        """Whether the flow needs a context."""
        return any(isinstance(t, ConditionalModule) for t in self._all)

    def forward(
        self, context: Tensor | None = None, validate_args: bool | None = None
    ) -> FlowDistribution:
        if self.conditional and context is None:
            raise ValueError("context: this flow is conditional; call it as flow(context)")
        if self.conditional:
            transforms = _Composition(
                [t(context) if isinstance(t, ConditionalModule) else t for t in self._all]
            )
        else:  # the same transforms at every call: their composition is built once
            if self.__dict__.get("_composition") is None:
                self.__dict__["_composition"] = _Composition(self._all)
            transforms = self._composition
        base = self.base(context)
        if context is not None and base.batch_shape == ():
            base = base.expand(context.shape[:-1])
        if validate_args is not None:  # the base is built here: it follows the flow's choice
            base = _validating(base, validate_args)
        return FlowDistribution(base, transforms, validate_args=validate_args)


def _validating(d: Distribution, validate_args: bool) -> Distribution:
    """A shallow copy of ``d`` (and of the distributions it wraps) that validates its
    arguments or not; ``d`` itself is left as it is."""
    d = copy.copy(d)
    d._validate_args = validate_args
    if isinstance(getattr(d, "base_dist", None), Distribution):
        d.base_dist = _validating(d.base_dist, validate_args)
    return d
