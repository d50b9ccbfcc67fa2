r"""Decoder likelihoods :math:`p_\theta(x \mid z)`: the decoder outputs one number per data
dimension, and a likelihood turns it into a distribution over a whole data point.

* :class:`BernoulliLikelihood` — binary pixels, :math:`p(x \mid z) = \prod_i
  \sigma(\ell_i)^{x_i} (1 - \sigma(\ell_i))^{1 - x_i}` with logits :math:`\ell`.
* :class:`ContinuousBernoulliLikelihood` — intensities in :math:`[0, 1]` (Loaiza-Ganem &
  Cunningham 2019): the Bernoulli kernel with its normaliser :math:`C(\lambda)`, a proper density.
* :class:`GaussianLikelihood` — real data, :math:`\mathcal N(x; \mu(z), \sigma^2 I)` with
  :math:`\sigma` fixed or learned (one :math:`\sigma_i` per dimension).

Each checks at the boundary that the data lie in its support (:meth:`Likelihood.check`), so
the distributions themselves skip torch's (duplicate) support validation of observations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pyro.distributions as dist
import torch
from torch import Tensor, nn

from flowdist.transforms.base import check_dim, check_input
from flowdist.validation import check_number, squares_finite

__all__ = [
    "BernoulliLikelihood",
    "ContinuousBernoulliLikelihood",
    "GaussianLikelihood",
    "Likelihood",
    "as_shape",
    "logits_of_probs",
    "make_likelihood",
]


def as_shape(name: str, shape: int | Sequence[int]) -> tuple[int, ...]:
    """``shape`` (an integer or a non-empty sequence of positive integers) as a tuple; raises
    an error naming ``name`` otherwise."""
    if isinstance(shape, int):
        shape = (shape,)
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence) or not shape:
        raise ValueError(
            f"{name} must be a positive integer or a non-empty tuple of them, got {shape!r}"
        )
    for n in shape:
        check_dim(name, n)
    return tuple(shape)


class Likelihood(nn.Module):
    """Maps the decoder's output (shape ``(..., *x_shape)``) to :math:`p(x \\mid z)`, a
    distribution whose event is one whole data point."""

    #: the support, in words, for error messages
    support: str = "the reals"

    def __init__(self, x_shape: int | Sequence[int]) -> None:
        super().__init__()
        self.x_shape = as_shape("x_shape", x_shape)
        self._checked: tuple[Tensor, tuple[object, ...]] | None = None

    def forward(self, params: Tensor) -> dist.TorchDistribution:
        raise NotImplementedError

    def check_params(self, params: Any) -> None:
        """Raise an error naming ``params`` unless it is a floating-point tensor of shape
        ``(..., *x_shape)`` (what the decoder must output)."""
        check_input("params", params, self.x_shape, None)

    def _in_support(self, x: Tensor) -> Tensor:
        return torch.isfinite(x).all()

    def check(self, x: Tensor, name: str = "x") -> None:
        """Raise a :class:`ValueError` naming ``name`` unless ``x`` lies in the support.

        The last tensor found valid is remembered (with its version counter), so that the model
        and the guide of one step check a batch once."""
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.device.type == "meta":
            raise ValueError(f"{name} is on the meta device: it holds no values to check")
        key = (x._version, x.data_ptr(), x.shape, x.stride())
        if self._checked is not None and self._checked[0] is x and self._checked[1] == key:
            return
        if not bool(self._in_support(x)):
            lo, hi = float(x.min()), float(x.max())
            raise ValueError(
                f"{name} lies outside the support of {type(self).__name__} ({self.support}): "
                f"values range over [{lo:g}, {hi:g}]"
            )
        self._checked = (x, key)

    def mean(self, params: Tensor) -> Tensor:
        """:math:`\\mathbb E[x \\mid z]`, for figures."""
        return self(params).mean

    def sample(self, params: Tensor, generator: torch.Generator | None = None) -> Tensor:
        r"""A draw :math:`x \sim p(x \mid z)` from ``generator``: by inversion,
        :math:`x = F^{-1}(u)` with :math:`u \sim U(0, 1)` per element (subclasses whose
        per-element law has no ``icdf`` override it)."""
        law = self(params).base_dist
        u = torch.rand(
            law.batch_shape, generator=generator, dtype=params.dtype, device=params.device
        )
        return law.icdf(u)


class BernoulliLikelihood(Likelihood):
    r"""Independent Bernoulli pixels with logits given by the decoder."""

    support = "binary values 0 or 1"

    def forward(self, params: Tensor) -> dist.TorchDistribution:
        self.check_params(params)
        return dist.Bernoulli(logits=params, validate_args=False).to_event(len(self.x_shape))

    def _in_support(self, x: Tensor) -> Tensor:
        return ((x == 0) | (x == 1)).all()

    def mean(self, params: Tensor) -> Tensor:
        self.check_params(params)
        return torch.sigmoid(params)

    def sample(self, params: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return torch.bernoulli(self.mean(params), generator=generator)


class ContinuousBernoulliLikelihood(Likelihood):
    r"""Continuous Bernoulli intensities in :math:`[0, 1]` with logits given by the decoder:
    :math:`p(x \mid \lambda) = C(\lambda)\, \lambda^x (1 - \lambda)^{1 - x}`."""

    support = "the interval [0, 1]"

    def forward(self, params: Tensor) -> dist.TorchDistribution:
        self.check_params(params)
        return dist.ContinuousBernoulli(logits=params, validate_args=False).to_event(
            len(self.x_shape)
        )

    def _in_support(self, x: Tensor) -> Tensor:
        return ((x >= 0) & (x <= 1)).all()


class GaussianLikelihood(Likelihood):
    r""":math:`\mathcal N(x; \mu(z), \operatorname{diag}\sigma^2)` with the mean from the decoder.

    Its support is the reals of magnitude at most :math:`\sqrt{\text{the dtype's largest
    value}}` (about :math:`1.8 \cdot 10^{19}` in float32): the squared deviations of larger
    values overflow, and their log-density cannot be computed in that dtype.

    Args:
        x_shape: the shape of one data point.
        scale: a fixed :math:`\sigma`, or ``None`` to learn one :math:`\sigma_i` per dimension
            (parameterised as :math:`\log \sigma_i`, initialised at :math:`\sigma_i = 1`).
            A fixed :math:`\sigma` must be a finite number at least the smallest normal
            float32 (:math:`1.2 \cdot 10^{-38}`).
    """

    support = "finite reals whose squares do not overflow"

    def __init__(self, x_shape: int | Sequence[int], scale: float | None = None) -> None:
        super().__init__(x_shape)
        if scale is None:
            self.log_scale = nn.Parameter(torch.zeros(self.x_shape))
        else:
            check_number("scale", scale, least=torch.finfo(torch.float32).tiny)
            self.register_buffer("log_scale", torch.full(self.x_shape, math.log(scale)))

    def forward(self, params: Tensor) -> dist.TorchDistribution:
        self.check_params(params)
        return dist.Normal(params, self.log_scale.exp()).to_event(len(self.x_shape))

    def _in_support(self, x: Tensor) -> Tensor:
        return squares_finite(x)

    def mean(self, params: Tensor) -> Tensor:
        self.check_params(params)
        return params

    def sample(self, params: Tensor, generator: torch.Generator | None = None) -> Tensor:
        noise = torch.randn(
            params.shape, generator=generator, dtype=params.dtype, device=params.device
        )
        return torch.addcmul(self.mean(params), noise, self.log_scale.exp())


_LIKELIHOODS = {
    "bernoulli": BernoulliLikelihood,
    "continuous_bernoulli": ContinuousBernoulliLikelihood,
    "gaussian": GaussianLikelihood,
}


def make_likelihood(likelihood: str | Likelihood, x_shape: tuple[int, ...]) -> Likelihood:
    """A :class:`Likelihood` from its name (``"bernoulli"``, ``"continuous_bernoulli"``,
    ``"gaussian"`` with learned variance) or the instance itself."""
    if isinstance(likelihood, Likelihood):
        if likelihood.x_shape != tuple(x_shape):
            raise ValueError(
                f"likelihood: {type(likelihood).__name__} is for data of shape "
                f"{likelihood.x_shape}, not {tuple(x_shape)}"
            )
        return likelihood
    if not isinstance(likelihood, str) or likelihood not in _LIKELIHOODS:
        raise ValueError(
            f"likelihood must be a Likelihood or one of {sorted(_LIKELIHOODS)}, got {likelihood!r}"
        )
    return _LIKELIHOODS[likelihood](x_shape)


def logits_of_probs(p: Tensor) -> Tensor:
    """Logits of probabilities, clamped away from 0 and 1 (to initialise decoder biases)."""
    eps = torch.finfo(p.dtype).eps ** 0.5
    return torch.logit(p.clamp(eps, 1 - eps))
