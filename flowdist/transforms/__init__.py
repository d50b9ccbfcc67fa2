"""Bijectors: :class:`torch.distributions.Transform` subclasses that are also ``nn.Module``."""

from flowdist.transforms.autoregressive import MADE, MaskedAutoregressiveTransform
from flowdist.transforms.base import (
    Bijector,
    ConditionalModule,
    ConditionalTransform,
    InverseBijector,
)
from flowdist.transforms.coupling import (
    AdditiveCouplingTransform,
    AffineCouplingTransform,
    ContextualTransform,
    ScaleTransform,
    alternating_mask,
    channel_mask,
    checkerboard_mask,
    half_mask,
)
from flowdist.transforms.glow import (
    ActNormTransform,
    Invertible1x1ConvTransform,
    MultiscaleTransform,
    SqueezeTransform,
)
from flowdist.transforms.image import (
    LogitTransform,
    bits_per_dim,
    dequantize,
    discrete_log_likelihood,
)
from flowdist.transforms.permutation import PermutationTransform, ReverseTransform
from flowdist.transforms.planar import PlanarStack, PlanarTransform
from flowdist.transforms.radial import RadialTransform

__all__ = [
    "MADE",
    "ActNormTransform",
    "AdditiveCouplingTransform",
    "AffineCouplingTransform",
    "Bijector",
    "ConditionalModule",
    "ConditionalTransform",
    "ContextualTransform",
    "InverseBijector",
    "Invertible1x1ConvTransform",
    "LogitTransform",
    "MaskedAutoregressiveTransform",
    "MultiscaleTransform",
    "PermutationTransform",
    "PlanarStack",
    "PlanarTransform",
    "RadialTransform",
    "ReverseTransform",
    "ScaleTransform",
    "SqueezeTransform",
    "alternating_mask",
    "bits_per_dim",
    "channel_mask",
    "checkerboard_mask",
    "dequantize",
    "discrete_log_likelihood",
    "half_mask",
]
