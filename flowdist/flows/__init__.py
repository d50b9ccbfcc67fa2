"""Flows: modules that return distributions (see :mod:`flowdist.flows.core`)."""

from flowdist.flows.autoregressive import IAF, MAF
from flowdist.flows.core import Flow, FlowDistribution, StandardNormal
from flowdist.flows.coupling import NICE, MultiscaleRealNVP, RealNVP, StandardLogistic
from flowdist.flows.glow import Glow
from flowdist.flows.vector import PlanarFlow, RadialFlow

__all__ = [
    "IAF",
    "MAF",
    "NICE",
    "Flow",
    "FlowDistribution",
    "Glow",
    "MultiscaleRealNVP",
    "PlanarFlow",
    "RadialFlow",
    "RealNVP",
    "StandardLogistic",
    "StandardNormal",
]
