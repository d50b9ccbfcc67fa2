r"""Conditional VAE: :math:`p_\theta(x \mid y, z)\,p(z)` with :math:`q_\phi(z \mid x, y)`
(Sohn et al. 2015; Kingma et al. 2014, M2 with the label observed).

The label enters both networks as a one-hot vector concatenated to their input, and the bound is

.. math::
    \log p_\theta(x \mid y) \ge \mathbb E_{q_\phi(z \mid x, y)}\big[\log p_\theta(x \mid y, z)\big]
        - \mathrm{KL}\big(q_\phi(z \mid x, y) \,\|\, p(z)\big).

Generating for a chosen label draws :math:`z \sim p(z)` and decodes it with that label
(:meth:`ConditionalVAE.generate`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from pyro.nn import pyro_method
from torch import Tensor

from flowdist.transforms.base import check_dim
from flowdist.vae.vae import VAE

__all__ = ["ConditionalVAE", "concat"]


def concat(a: Tensor, b: Tensor) -> Tensor:
    """Concatenate along the last dimension, broadcasting the leading (batch) dimensions (e.g.
    enumerated labels or particles in front of the data batch)."""
    batch = torch.broadcast_shapes(a.shape[:-1], b.shape[:-1])
    return torch.cat((a.expand(*batch, a.shape[-1]), b.expand(*batch, b.shape[-1])), dim=-1)


class ConditionalVAE(VAE):
    r"""A VAE conditioned on a class label :math:`y \in \{0, \dots, n_\text{classes} - 1\}`:
    :meth:`model` ``(x, y)`` and :meth:`guide` ``(x, y)``.

    The default encoder is an MLP on ``[flatten(x), onehot(y)]`` and the default decoder an MLP
    (or the convolutional decoder for ``(C, H, W)`` images) on ``[z, onehot(y)]``; custom networks
    must accept those inputs. Other arguments as for :class:`~flowdist.vae.VAE`.
    """

    def __init__(
        self,
        x_shape: int | Sequence[int],
        n_classes: int,
        z_dim: int = 50,
        *,
        name: str = "cvae",
        **kwargs: Any,
    ) -> None:
        check_dim("n_classes", n_classes)
        self._n_classes = n_classes  # read by the hooks below during VAE.__init__
        super().__init__(x_shape, z_dim, name=name, **kwargs)

    @property
    def n_classes(self) -> int:
        return self._n_classes

    @property
    def encoder_in_shape(self) -> tuple[int, ...]:
        return (math.prod(self.x_shape) + self.n_classes,)

    @property
    def decoder_in_features(self) -> int:
        return self.z_dim + self.n_classes

    def one_hot(self, y: Tensor) -> Tensor:
        """The one-hot code of labels ``y`` in the module's dtype."""
        return F.one_hot(y, self.n_classes).to(self.dtype)

    def _encoder_input(self, x: Tensor, y: Tensor | None) -> Tensor:
        return concat(x.flatten(x.dim() - len(self.x_shape)), self.one_hot(y))

    def _decoder_input(self, z: Tensor, y: Tensor | None) -> Tensor:
        return concat(z, self.one_hot(y))

    def check_labels(self, x: Tensor, y: Tensor) -> None:
        """Raise a clear error unless ``y`` holds one integer label in range per row of ``x``."""
        if not isinstance(y, Tensor) or y.dtype != torch.long:
            raise TypeError(
                f"y must be a torch.long tensor of labels, got {getattr(y, 'dtype', y)}"
            )
        if y.shape != x.shape[:1]:
            raise ValueError(
                f"y must have shape ({x.shape[0]},), one label per row of x "
                f"(x has shape {tuple(x.shape)}), got {tuple(y.shape)}"
            )
        if y.numel() and not bool(((y >= 0) & (y < self.n_classes)).all()):
            raise ValueError(
                f"y: labels must lie in 0..{self.n_classes - 1}, "
                f"got values in [{int(y.min())}, {int(y.max())}]"
            )

    @pyro_method
    def model(self, x: Tensor, y: Tensor, *, num_data: int | None = None) -> Tensor:
        r""":math:`z \sim \mathcal N(0, I)`, :math:`x \sim p_\theta(x \mid y, z)`."""
        self.check_data(x)
        self.check_labels(x, y)
        return self._model(x, y, num_data)

    @pyro_method
    def guide(self, x: Tensor, y: Tensor, *, num_data: int | None = None) -> Tensor:
        r""":math:`z \sim q_\phi(z \mid x, y)`."""
        self.check_data(x)
        self.check_labels(x, y)
        return self._guide(x, y, num_data)

    def generate(
        self, y: Tensor, *, generator: torch.Generator | None = None, mean: bool = True
    ) -> Tensor:
        r"""One draw of :math:`x \mid y` per label in ``y`` (:math:`z \sim p(z)`)."""
        if not isinstance(y, Tensor) or y.dtype != torch.long or y.dim() != 1:
            raise TypeError("y must be a 1-D torch.long tensor of labels")
        self.check_labels(y.new_zeros(len(y), 1), y)
        return self.sample(len(y), y.to(self.prior_loc.device), generator=generator, mean=mean)
