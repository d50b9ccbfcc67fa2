r"""Variational autoencoders as Pyro model/guide pairs (see :mod:`flowdist.vae.vae`)."""

from flowdist.vae.conditional import ConditionalVAE, SemiSupervisedVAE
from flowdist.vae.evaluate import IWAE_ELBO, importance_log_likelihood, log_weights
from flowdist.vae.guides import AmortizedGuide
from flowdist.vae.likelihoods import (
    BernoulliLikelihood,
    ContinuousBernoulliLikelihood,
    GaussianLikelihood,
    Likelihood,
)
from flowdist.vae.train import FitResult, fit
from flowdist.vae.vae import VAE

__all__ = [
    "IWAE_ELBO",
    "VAE",
    "AmortizedGuide",
    "BernoulliLikelihood",
    "ConditionalVAE",
    "ContinuousBernoulliLikelihood",
    "FitResult",
    "GaussianLikelihood",
    "Likelihood",
    "SemiSupervisedVAE",
    "fit",
    "importance_log_likelihood",
    "log_weights",
]
