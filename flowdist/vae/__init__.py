r"""Variational autoencoders as Pyro model/guide pairs (see :mod:`flowdist.vae.vae`)."""

from flowdist.vae.guides import AmortizedGuide
from flowdist.vae.likelihoods import (
    BernoulliLikelihood,
    ContinuousBernoulliLikelihood,
    GaussianLikelihood,
    Likelihood,
)
from flowdist.vae.vae import VAE

__all__ = [
    "VAE",
    "AmortizedGuide",
    "BernoulliLikelihood",
    "ContinuousBernoulliLikelihood",
    "GaussianLikelihood",
    "Likelihood",
]
