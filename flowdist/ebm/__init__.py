"""Energy-based models: unnormalized distributions with exact or estimated partition functions."""

from flowdist.ebm.base import UnnormalizedDistribution
from flowdist.ebm.boltzmann import BoltzmannMachine
from flowdist.ebm.dbm import DeepBoltzmannMachine
from flowdist.ebm.partition import PartitionEstimate, PartitionTooLargeError, ais
from flowdist.ebm.rbm import BernoulliRBM, GaussianRBM
from flowdist.ebm.train import TrainingHistory, train_cd

__all__ = [
    "BernoulliRBM",
    "BoltzmannMachine",
    "DeepBoltzmannMachine",
    "GaussianRBM",
    "PartitionEstimate",
    "PartitionTooLargeError",
    "TrainingHistory",
    "UnnormalizedDistribution",
    "ais",
    "train_cd",
]
