"""Bijectors: :class:`torch.distributions.Transform` subclasses that are also ``nn.Module``."""

from flowdist.transforms.base import Bijector, ConditionalTransform, InverseBijector
from flowdist.transforms.planar import PlanarStack, PlanarTransform
from flowdist.transforms.radial import RadialTransform

__all__ = [
    "Bijector",
    "ConditionalTransform",
    "InverseBijector",
    "PlanarStack",
    "PlanarTransform",
    "RadialTransform",
]
