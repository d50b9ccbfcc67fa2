"""flowdist: generative models as torch.distributions that compose inside Pyro.

* :mod:`flowdist.transforms` — bijectors (``Transform`` + ``nn.Module``) with exact inverses;
* :mod:`flowdist.flows` — flows that return distributions (planar, radial, NICE, RealNVP,
  Glow, MAF, IAF);
* :mod:`flowdist.ebm` — energy-based models (Boltzmann machines, RBMs, DBMs) with exact or AIS
  partition functions and Gibbs samplers;
* :mod:`flowdist.vae` — variational autoencoders as Pyro model/guide pairs;
* :mod:`flowdist.testing` — property checks for any transform (needs ``hypothesis``).
"""

from flowdist.ebm import (
    BernoulliRBM,
    BoltzmannMachine,
    DeepBoltzmannMachine,
    GaussianRBM,
    UnnormalizedDistribution,
)
from flowdist.flows import (
    IAF,
    MAF,
    NICE,
    Flow,
    FlowDistribution,
    Glow,
    MultiscaleRealNVP,
    PlanarFlow,
    RadialFlow,
    RealNVP,
    StandardNormal,
)
from flowdist.transforms import PlanarTransform, RadialTransform
from flowdist.vae import VAE, ConditionalVAE, SemiSupervisedVAE

__version__ = "0.1.0"

__all__ = [
    "IAF",
    "MAF",
    "NICE",
    "VAE",
    "BernoulliRBM",
    "BoltzmannMachine",
    "ConditionalVAE",
    "DeepBoltzmannMachine",
    "Flow",
    "FlowDistribution",
    "GaussianRBM",
    "Glow",
    "MultiscaleRealNVP",
    "PlanarFlow",
    "PlanarTransform",
    "RadialFlow",
    "RadialTransform",
    "RealNVP",
    "SemiSupervisedVAE",
    "StandardNormal",
    "UnnormalizedDistribution",
    "__version__",
]
