"""Bijectors: :class:`torch.distributions.Transform` subclasses that are also ``nn.Module``."""

from flowdist.transforms.base import (
    Bijector,
    ConditionalModule,
    ConditionalTransform,
    InverseBijector,
)
from flowdist.transforms.planar import PlanarStack, PlanarTransform
from flowdist.transforms.radial import RadialTransform

__all__ = [
    "Bijector",
    "ConditionalModule",
    "ConditionalTransform",
    "InverseBijector",
    "PlanarStack",
    "PlanarTransform",
    "RadialTransform",
]
