"""Markov chain Monte Carlo kernels for the energy-based models."""

from flowdist.mcmc.gibbs import (
    BernoulliDraws,
    PersistentChains,
    alternating_gibbs_sweep,
    bernoulli,
    run_chain,
    site_gibbs_sweep,
)

__all__ = [
    "BernoulliDraws",
    "PersistentChains",
    "alternating_gibbs_sweep",
    "bernoulli",
    "run_chain",
    "site_gibbs_sweep",
]
