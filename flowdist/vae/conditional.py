r"""Conditional VAE: :math:`p_\theta(x \mid y, z)\,p(z)` with :math:`q_\phi(z \mid x, y)`
(Sohn et al. 2015), and the semi-supervised M2 model of Kingma et al. (2014).

The label enters both networks as a one-hot vector concatenated to their input, and the bound is

.. math::
    \log p_\theta(x \mid y) \ge \mathbb E_{q_\phi(z \mid x, y)}\big[\log p_\theta(x \mid y, z)\big]
        - \mathrm{KL}\big(q_\phi(z \mid x, y) \,\|\, p(z)\big).

Generating for a chosen label draws :math:`z \sim p(z)` and decodes it with that label
(:meth:`ConditionalVAE.generate`).

**M2** (:class:`SemiSupervisedVAE`) puts a prior :math:`p(y)` on the label and a classifier
:math:`q_\phi(y \mid x)` in the guide. A labelled point contributes the bound above plus
:math:`\log p(y)`; for an unlabelled point the label is summed out exactly,

.. math::
    \log p_\theta(x) \ge \sum_y q_\phi(y \mid x)\big(\mathcal L(x, y) - \log q_\phi(y \mid x)\big),

which ``pyro.infer.TraceEnum_ELBO`` computes by enumerating the guide's ``y`` site in parallel
(``config_enumerate``). The auxiliary term :math:`\alpha \log q_\phi(y \mid x)` on labelled
points trains the classifier directly (Kingma et al.'s :math:`\mathcal J^\alpha`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro import poutine
from pyro.infer import Trace_ELBO, TraceEnum_ELBO, config_enumerate
from pyro.nn import pyro_method
from torch import Tensor, nn

from flowdist.nn import MLP
from flowdist.transforms.base import check_dim
from flowdist.vae.vae import VAE
from flowdist.validation import check_number

__all__ = ["ConditionalVAE", "SemiSupervisedVAE", "concat"]


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

    def _check_label_values(self, y: Tensor, missing: int | None = None) -> None:
        """Raise a clear error unless ``y`` is a ``torch.long`` tensor on the module's device
        whose values are labels (or ``missing``)."""
        if not isinstance(y, Tensor) or y.dtype != torch.long:
            raise TypeError(
                f"y must be a torch.long tensor of labels, got {getattr(y, 'dtype', y)}"
            )
        if y.device != self.device:
            raise ValueError(f"y is on device {y.device} but the module is on {self.device}")
        labels = y if missing is None else y[y != missing]
        if labels.numel() and not bool(((labels >= 0) & (labels < self.n_classes)).all()):
            also = "" if missing is None else f" (or {missing} for unlabelled)"
            raise ValueError(
                f"y: labels must lie in 0..{self.n_classes - 1}{also}, "
                f"got values in [{int(labels.min())}, {int(labels.max())}]"
            )

    def check_labels(self, x: Tensor, y: Tensor, *, missing: int | None = None) -> None:
        """Raise a clear error unless ``y`` holds one integer label in range (or ``missing``)
        per row of ``x``."""
        self._check_label_values(y, missing)
        if y.shape != x.shape[:1]:
            raise ValueError(
                f"y must have shape ({x.shape[0]},), one label per row of x "
                f"(x has shape {tuple(x.shape)}), got {tuple(y.shape)}"
            )

    def check_condition(self, y: Tensor | None, batch_shape: tuple[int, ...]) -> None:
        """Raise a clear error unless ``y`` holds labels that broadcast against a batch of shape
        ``batch_shape`` (enumerated labels in front of the batch do)."""
        if y is None:
            raise TypeError(f"y: {type(self).__name__} needs the labels")
        self._check_label_values(y)
        try:
            torch.broadcast_shapes(y.shape, batch_shape)
        except RuntimeError as err:
            raise ValueError(
                f"y of shape {tuple(y.shape)} does not broadcast against the batch shape "
                f"{batch_shape}"
            ) from err

    def check_inputs(self, x: Tensor, y: Tensor | None = None) -> None:
        self.check_data(x)
        if y is None:
            raise TypeError(f"{type(self).__name__} needs the labels y with the data x")
        self.check_labels(x, y)

    @pyro_method
    def model(self, x: Tensor, y: Tensor, *, num_data: int | None = None) -> Tensor:
        r""":math:`z \sim \mathcal N(0, I)`, :math:`x \sim p_\theta(x \mid y, z)`."""
        self.check_inputs(x, y)
        return self._model(x, y, num_data)

    @pyro_method
    def guide(self, x: Tensor, y: Tensor, *, num_data: int | None = None) -> Tensor:
        r""":math:`z \sim q_\phi(z \mid x, y)`."""
        self.check_inputs(x, y)
        return self._guide(x, y, num_data)

    def generate(
        self, y: Tensor, *, generator: torch.Generator | None = None, mean: bool = True
    ) -> Tensor:
        r"""One draw of :math:`x \mid y` per label in ``y`` (:math:`z \sim p(z)`)."""
        if not isinstance(y, Tensor) or y.dtype != torch.long or y.dim() != 1:
            raise TypeError("y must be a 1-D torch.long tensor of labels")
        return self.sample(len(y), y, generator=generator, mean=mean)


class SemiSupervisedVAE(ConditionalVAE):
    r"""The M2 model of Kingma et al. (2014): :math:`y \sim \mathrm{Cat}(1/n)`,
    :math:`z \sim \mathcal N(0, I)`, :math:`x \sim p_\theta(x \mid y, z)`; guide
    :math:`q_\phi(y \mid x)\, q_\phi(z \mid x, y)`.

    :meth:`model` and :meth:`guide` take ``y=None`` for unlabelled data (then ``y`` is a latent
    site, to be enumerated: use :attr:`enumerated_guide` with ``TraceEnum_ELBO``).
    :meth:`training_loss` takes batches that mix both kinds, unlabelled rows marked ``y = -1``,
    so :func:`flowdist.vae.fit` trains it with ``loss=TraceEnum_ELBO(max_plate_nesting=1)``.
    Arguments not listed below are as for :class:`ConditionalVAE`.

    Args:
        classifier: maps flattened ``x`` to ``n_classes`` logits (default: MLP with the
            ``hidden`` sizes, softplus).
        aux_weight: :math:`\alpha`, the weight of the classification loss on labelled points
            (Pyro's example uses 46 for MNIST; Kingma et al. :math:`0.1 N`).
    """

    def __init__(
        self,
        x_shape: int | Sequence[int],
        n_classes: int,
        z_dim: int = 50,
        *,
        hidden: Sequence[int] = (400,),
        classifier: nn.Module | None = None,
        aux_weight: float = 46.0,
        name: str = "m2",
        **kwargs: Any,
    ) -> None:
        super().__init__(x_shape, n_classes, z_dim, hidden=hidden, name=name, **kwargs)
        self.classifier = classifier or MLP(math.prod(self.x_shape), n_classes, hidden, nn.Softplus)
        self.aux_weight = check_number("aux_weight", aux_weight, least=0.0)
        self.register_buffer("prior_logits", torch.zeros(n_classes))

    def class_logits(self, x: Tensor) -> Tensor:
        r"""The logits of :math:`q_\phi(y \mid x)`."""
        self.check_points(x)
        return self.classifier(x.flatten(x.dim() - len(self.x_shape)))

    @torch.no_grad()
    def classify(self, x: Tensor) -> Tensor:
        r"""The most probable label under :math:`q_\phi(y \mid x)`."""
        self.check_data(x)
        return self.class_logits(x).argmax(-1)

    @pyro_method
    def model(self, x: Tensor, y: Tensor | None = None, *, num_data: int | None = None) -> Tensor:
        r""":math:`y \sim p(y)` (observed when given), :math:`z \sim \mathcal N(0, I)`,
        :math:`x \sim p_\theta(x \mid y, z)`."""
        self.check_data(x)
        if y is not None:
            self.check_labels(x, y)
        with self._plate(x, num_data):
            y = pyro.sample("y", dist.Categorical(logits=self.prior_logits), obs=y)
            z = pyro.sample("z", self.prior())
            pyro.sample("x", self.decode(z, y), obs=x)
        return z

    @pyro_method
    def guide(self, x: Tensor, y: Tensor | None = None, *, num_data: int | None = None) -> Tensor:
        r""":math:`y \sim q_\phi(y \mid x)` when not given, :math:`z \sim q_\phi(z \mid x, y)`."""
        self.check_data(x)
        if y is not None:
            self.check_labels(x, y)
        with self._plate(x, num_data):
            if y is None:
                y = pyro.sample("y", dist.Categorical(logits=self.class_logits(x)))
            return pyro.sample("z", self.encode(x, y))

    @property
    def enumerated_guide(self) -> Any:
        """The guide with its label site enumerated in parallel (for ``TraceEnum_ELBO``)."""
        return config_enumerate(self.guide, "parallel")

    @pyro_method
    def classifier_model(self, x: Tensor, y: Tensor, *, num_data: int | None = None) -> None:
        r"""The auxiliary term: :math:`\alpha \log q_\phi(y \mid x)` as an observed site."""
        self.check_inputs(x, y)
        with self._plate(x, num_data), poutine.scale(scale=self.aux_weight):
            pyro.sample("y_aux", dist.Categorical(logits=self.class_logits(x)), obs=y)

    def classifier_guide(self, x: Tensor, y: Tensor, *, num_data: int | None = None) -> None:
        """The auxiliary term has no latent sites."""

    def training_loss(
        self, loss: Any, x: Tensor, y: Tensor, *, num_data: int | None = None
    ) -> Tensor:
        """Negative M2 objective of a batch mixing labelled rows and unlabelled rows
        (``y == -1``), scaled by ``num_data / batch``. ``loss`` must be a ``TraceEnum_ELBO``
        (for the unlabelled rows; the labelled rows, which have nothing to enumerate, use
        ``Trace_ELBO`` with the same number of particles)."""
        if not isinstance(loss, TraceEnum_ELBO):
            raise TypeError("loss: SemiSupervisedVAE enumerates labels; use TraceEnum_ELBO")
        self.check_data(x)
        self.check_labels(x, y, missing=-1)
        known = y != -1
        total = x.new_zeros(())
        if known.any():
            xl, yl = x[known], y[known]
            labelled = Trace_ELBO(num_particles=loss.num_particles, max_plate_nesting=1)
            total = total + labelled.differentiable_loss(self.model, self.guide, xl, yl)
            total = total + labelled.differentiable_loss(
                self.classifier_model, self.classifier_guide, xl, yl
            )
        if not known.all():
            total = total + loss.differentiable_loss(self.model, self.enumerated_guide, x[~known])
        return total * (self._data_size(x, num_data) / len(x))
