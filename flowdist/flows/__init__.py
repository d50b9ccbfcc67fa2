"""Flows: modules that return distributions (see :mod:`flowdist.flows.core`)."""

from flowdist.flows.core import Flow, FlowDistribution, StandardNormal
from flowdist.flows.vector import PlanarFlow, RadialFlow

__all__ = ["Flow", "FlowDistribution", "PlanarFlow", "RadialFlow", "StandardNormal"]
