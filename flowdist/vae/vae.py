r"""The variational autoencoder (Kingma & Welling 2014; Rezende et al. 2014) as a Pyro
model/guide pair.

**Model.** :math:`z \sim \mathcal N(0, I)`, :math:`x \mid z \sim p_\theta(x \mid z)` (Bernoulli,
continuous Bernoulli or Gaussian, :mod:`flowdist.vae.likelihoods`), independently for every data
point inside ``pyro.plate("data")``. **Guide.** :math:`q_\phi(z \mid x)`, an amortised diagonal
Gaussian, optionally followed by amortised flow steps (:mod:`flowdist.vae.guides`).

Training maximises the evidence lower bound

.. math::
    \log p_\theta(x) \ge \mathcal L(x)
        = \mathbb E_{q_\phi(z \mid x)}\big[\log p_\theta(x \mid z)\big]
        - \mathrm{KL}\big(q_\phi(z \mid x) \,\|\, p(z)\big),

whose gradient is estimated with the reparameterisation :math:`z = \mu_\phi(x) + \sigma_\phi(x)
\odot \varepsilon`. ``pyro.infer.Trace_ELBO`` estimates both terms by Monte Carlo;
``pyro.infer.TraceMeanField_ELBO`` uses the closed form of the Gaussian KL,

.. math::
    \mathrm{KL}\big(\mathcal N(\mu, \operatorname{diag}\sigma^2) \,\|\, \mathcal N(0, I)\big)
      = \tfrac12 \sum_j \big(\mu_j^2 + \sigma_j^2 - 1 - \log \sigma_j^2\big),

the same expectation with a lower variance. With minibatches, pass ``num_data`` (the data-set
size): the plate then scales the minibatch's log-densities by ``num_data / batch``, so that the
loss is an unbiased estimate of the full-data negative ELBO.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO
from pyro.nn import PyroModule, pyro_method
from torch import Tensor, nn
from torch.distributions import kl_divergence

from flowdist.flows.core import FlowDistribution
from flowdist.transforms import Bijector, PlanarTransform
from flowdist.transforms.base import check_dim, check_input
from flowdist.vae.guides import AmortizedGuide, check_module, trial_output
from flowdist.vae.likelihoods import Likelihood, as_shape, make_likelihood
from flowdist.vae.networks import conv_decoder, conv_encoder, mlp_decoder, mlp_encoder
from flowdist.validation import check_count, squares_finite

__all__ = ["VAE"]


def _check_hidden(hidden: Any) -> None:
    if (
        isinstance(hidden, (str, bytes))
        or not isinstance(hidden, Sequence)
        or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in hidden)
    ):
        raise ValueError(f"hidden must be a sequence of positive integers, got {hidden!r}")


class VAE(PyroModule):
    r"""A variational autoencoder: :meth:`model` is :math:`p(z)\,p_\theta(x \mid z)`,
    :meth:`guide` is :math:`q_\phi(z \mid x)`; train them with ``pyro.infer.SVI`` (or
    :func:`flowdist.vae.fit`).

    Args:
        x_shape: the shape of one data point (``784`` or ``(1, 28, 28)``).
        z_dim: the latent size.
        hidden: hidden layer sizes of the default MLP encoder and decoder (Kingma & Welling:
            one layer of 400, softplus).
        encoder: the encoder *body*, mapping ``(..., *x_shape)`` to features ``(..., F)``; the
            guide adds the linear heads. Default: MLP for vectors, :func:`conv_encoder` for
            ``(C, H, W)`` images.
        decoder: maps ``(..., z_dim)`` to ``(..., *x_shape)``, the likelihood's parameters
            (logits or means).
        likelihood: ``"bernoulli"``, ``"continuous_bernoulli"``, ``"gaussian"`` (learned
            variance) or a :class:`~flowdist.vae.likelihoods.Likelihood` instance, e.g.
            ``GaussianLikelihood(x_shape, scale=0.1)`` for a fixed variance.
        flow_steps: number of amortised bijectors after the Gaussian guide (0: diagonal guide).
        flow: the bijector class of the flow guide (planar by default), or ``"iaf"``
            (inverse autoregressive steps, see :mod:`flowdist.vae.guides`).
        name: the Pyro name prefix of the parameters (distinct models trained with ``SVI`` in one
            process need distinct names, or ``pyro.clear_param_store()`` in between).
    """

    def __init__(
        self,
        x_shape: int | Sequence[int],
        z_dim: int = 50,
        *,
        hidden: Sequence[int] = (400,),
        encoder: nn.Module | None = None,
        decoder: nn.Module | None = None,
        likelihood: str | Likelihood = "bernoulli",
        flow_steps: int = 0,
        flow: type[Bijector] | str = PlanarTransform,
        name: str = "vae",
    ) -> None:
        super().__init__(name)
        self.x_shape = as_shape("x_shape", x_shape)
        check_dim("z_dim", z_dim)
        _check_hidden(hidden)
        for label, module in (("encoder", encoder), ("decoder", decoder)):
            if module is not None:
                check_module(label, module)
        self.z_dim = z_dim
        custom_decoder = decoder is not None
        if encoder is None:
            in_shape = self.encoder_in_shape
            encoder = (
                conv_encoder(in_shape) if len(in_shape) == 3 else mlp_encoder(in_shape, hidden)
            )
        if decoder is None:
            decoder = (
                conv_decoder(self.decoder_in_features, self.x_shape)
                if len(self.x_shape) == 3
                else mlp_decoder(self.decoder_in_features, self.x_shape, hidden)
            )
        self.encoder = AmortizedGuide(
            encoder, self.encoder_in_shape, z_dim, flow_steps=flow_steps, flow=flow
        )
        self.decoder = decoder
        if custom_decoder:
            out = trial_output("decoder", decoder, (self.decoder_in_features,))
            if tuple(out.shape) != (2, *self.x_shape):
                raise ValueError(
                    f"decoder must map (batch, {self.decoder_in_features}) to (batch, "
                    f"{', '.join(map(str, self.x_shape))}), got shape {tuple(out.shape)}"
                )
        self.likelihood = make_likelihood(likelihood, self.x_shape)
        self.register_buffer("prior_loc", torch.zeros(z_dim))
        self.register_buffer("prior_scale", torch.ones(z_dim))

    # ------------------------------------------------------------ conditioning hooks
    @property
    def encoder_in_shape(self) -> tuple[int, ...]:
        """The shape of one encoder input (the data point; with its label when conditional)."""
        return self.x_shape

    @property
    def decoder_in_features(self) -> int:
        """The size of one decoder input (:math:`z`; with the label when conditional)."""
        return self.z_dim

    def _encoder_input(self, x: Tensor, y: Tensor | None) -> Tensor:
        return x

    def _decoder_input(self, z: Tensor, y: Tensor | None) -> Tensor:
        return z

    def check_condition(self, y: Tensor | None, batch_shape: tuple[int, ...]) -> None:
        """Raise a clear error unless ``y`` conditions a batch of shape ``batch_shape``: an
        unconditional VAE takes none."""
        if y is not None:
            raise TypeError(f"y: {type(self).__name__} is unconditional and takes no labels")

    def check_points(self, x: Tensor) -> None:
        """Raise a clear error unless ``x`` holds data points ``(..., *x_shape)`` of the
        module's dtype and device in the likelihood's support (any batch shape)."""
        check_input("x", x, self.x_shape, self.dtype, device=self.device)
        self.likelihood.check(x, "x")

    def _check_x(self, x: Tensor, y: Tensor | None) -> None:
        """:meth:`check_points`, and ``y`` a valid condition for them."""
        self.check_points(x)
        self.check_condition(y, tuple(x.shape[: x.dim() - len(self.x_shape)]))

    def _check_z(self, z: Tensor, y: Tensor | None) -> None:
        """Raise a clear error unless ``z`` holds latents ``(..., z_dim)`` of the module's
        dtype and device in the prior's support (finite, squares that do not overflow),
        conditioned by ``y``."""
        check_input("z", z, (self.z_dim,), self.dtype, device=self.device)
        if not bool(squares_finite(z)):
            raise ValueError("z has values that are not finite or whose squares overflow")
        self.check_condition(y, tuple(z.shape[:-1]))

    # ------------------------------------------------------------ distributions
    @property
    def dtype(self) -> torch.dtype:
        return self.prior_loc.dtype

    @property
    def device(self) -> torch.device:
        return self.prior_loc.device

    def prior(self) -> dist.TorchDistribution:
        r"""The prior :math:`p(z) = \mathcal N(0, I)`."""
        return dist.Normal(self.prior_loc, self.prior_scale).to_event(1)

    def encode(self, x: Tensor, y: Tensor | None = None) -> dist.TorchDistribution:
        r"""The variational posterior :math:`q_\phi(z \mid x)` (batch shape ``x.shape[:-d]``)."""
        self._check_x(x, y)
        return self.encoder(self._encoder_input(x, y))

    def _decoded(self, z: Tensor, y: Tensor | None) -> Tensor:
        """The decoder's output for checked latents: the likelihood's parameters."""
        self._check_z(z, y)
        return self.decoder(self._decoder_input(z, y))

    def decode(self, z: Tensor, y: Tensor | None = None) -> dist.TorchDistribution:
        r"""The likelihood :math:`p_\theta(x \mid z)` (batch shape ``z.shape[:-1]``)."""
        return self.likelihood(self._decoded(z, y))

    # ------------------------------------------------------------ Pyro model / guide
    def check_data(self, x: Tensor) -> None:
        """Raise a clear error unless ``x`` is a non-empty batch ``(B, *x_shape)`` in the
        likelihood's support with the module's dtype and device."""
        self.check_points(x)
        if x.dim() != len(self.x_shape) + 1 or not len(x):
            raise ValueError(
                f"x must be a batch of shape (batch, {', '.join(map(str, self.x_shape))}) with "
                f"at least one data point, got {tuple(x.shape)}"
            )

    def check_inputs(self, x: Tensor, y: Tensor | None = None) -> None:
        """The checks of :meth:`model` and :meth:`guide` (the data; labels where conditional)."""
        self.check_data(x)

    @staticmethod
    def _data_size(x: Tensor, num_data: int | None) -> int:
        batch = x.shape[0]
        size = batch if num_data is None else num_data
        check_dim("num_data", size)
        if size < batch:
            raise ValueError(f"num_data ({size}) must be at least the batch size ({batch})")
        return size

    def _plate(self, x: Tensor, num_data: int | None) -> pyro.plate:
        size = self._data_size(x, num_data)
        return pyro.plate("data", size, subsample=torch.arange(x.shape[0], device=x.device), dim=-1)

    @pyro_method
    def model(self, x: Tensor, *, num_data: int | None = None) -> Tensor:
        r""":math:`z \sim \mathcal N(0, I)`, :math:`x \sim p_\theta(x \mid z)` for each data point
        (``num_data``: the data-set size, when ``x`` is a minibatch). Returns :math:`z`."""
        self.check_inputs(x)
        return self._model(x, None, num_data)

    @pyro_method
    def guide(self, x: Tensor, *, num_data: int | None = None) -> Tensor:
        r""":math:`z \sim q_\phi(z \mid x)`, reparameterised. Returns :math:`z`."""
        self.check_inputs(x)
        return self._guide(x, None, num_data)

    def _model(self, x: Tensor, y: Tensor | None, num_data: int | None) -> Tensor:
        with self._plate(x, num_data):
            z = pyro.sample("z", self.prior())
            pyro.sample("x", self.decode(z, y), obs=x)
        return z

    def _guide(self, x: Tensor, y: Tensor | None, num_data: int | None) -> Tensor:
        with self._plate(x, num_data):
            return pyro.sample("z", self.encode(x, y))

    def training_loss(self, loss: Any, *data: Tensor, num_data: int | None = None) -> Tensor:
        """The differentiable minibatch loss of a Pyro ELBO (used by :func:`flowdist.vae.fit`).

        For a one-particle ``Trace_ELBO`` or ``TraceMeanField_ELBO`` the same estimate is computed
        by :meth:`elbo_loss`, without Pyro's tracing; any other loss goes through its
        ``differentiable_loss``.
        """
        if type(loss) in (Trace_ELBO, TraceMeanField_ELBO) and loss.num_particles == 1:
            return self.elbo_loss(
                *data, num_data=num_data, analytic_kl=isinstance(loss, TraceMeanField_ELBO)
            )
        return loss.differentiable_loss(self.model, self.guide, *data, num_data=num_data)

    def elbo_loss(
        self,
        x: Tensor,
        y: Tensor | None = None,
        *,
        num_data: int | None = None,
        analytic_kl: bool = False,
    ) -> Tensor:
        r"""The negative ELBO of the minibatch ``x``, scaled by ``num_data / batch``, in plain
        PyTorch: one reparameterised draw :math:`z \sim q_\phi(z \mid x)` and

        .. math::
            -\frac{N}{B} \sum_{b} \Big[\log p_\theta(x_b \mid z_b) + \log p(z_b)
                - \log q_\phi(z_b \mid x_b)\Big],

        with :math:`\log p(z) - \log q_\phi(z \mid x)` replaced by the closed-form
        :math:`-\mathrm{KL}(q_\phi \,\|\, p)` when ``analytic_kl`` and the guide is Gaussian.
        It draws :math:`z` from the same random stream as Pyro's ``Trace_ELBO`` /
        ``TraceMeanField_ELBO`` on :meth:`model` and :meth:`guide`, so value and gradients equal
        theirs, without the cost of tracing.
        """
        self.check_inputs(x, y)
        scale = self._data_size(x, num_data) / x.shape[0]
        q, prior = self.encode(x, y), self.prior()
        if isinstance(q, FlowDistribution):
            z, log_q = q.rsample_and_log_prob()
        else:
            z = q.rsample()
            log_q = None if analytic_kl else q.log_prob(z)
        elbo = self.decode(z, y).log_prob(x)
        if log_q is None:
            elbo = elbo - kl_divergence(q, prior)
        else:
            elbo = elbo + prior.log_prob(z) - log_q
        return -scale * elbo.sum()

    # ------------------------------------------------------------ figures and sampling
    @torch.no_grad()
    def latent_mean(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        r"""The guide's :math:`\mu(x)`, pushed through the flow steps when there are any."""
        q = self.encode(x, y)
        z = q.base_dist.mean if isinstance(q, dist.TransformedDistribution) else q.mean
        for t in getattr(q, "transforms", ()):
            z = t(z)
        return z

    @torch.no_grad()
    def reconstruct(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        r""":math:`\mathbb E[x \mid z = \text{guide mean}]` (deterministic)."""
        return self.decode_mean(self.latent_mean(x, y), y)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        y: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        mean: bool = True,
    ) -> Tensor:
        r"""``n`` draws :math:`z \sim p(z)` decoded to :math:`\mathbb E[x \mid z]` (``mean=True``)
        or to a sample :math:`x \sim p(x \mid z)` (``n = 0``: an empty batch)."""
        check_count("n", n)
        z = torch.randn(n, self.z_dim, generator=generator, dtype=self.dtype, device=self.device)
        if mean:
            return self.decode_mean(z, y)
        return self.likelihood.sample(self._decoded(z, y), generator)

    @torch.no_grad()
    def decode_mean(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        r""":math:`\mathbb E[x \mid z]` for given latents (latent traversals and maps)."""
        return self.likelihood.mean(self._decoded(z, y))
