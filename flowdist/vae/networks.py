r"""Default encoder bodies and decoders.

* The MLP of Kingma & Welling (2014): one hidden layer of 400 units (softplus by default), as in
  Pyro's VAE example; :func:`mlp_encoder` is the body :math:`x \mapsto h`, the guide's heads map
  :math:`h` to :math:`(\mu, \sigma)` (and to flow parameters), and :func:`mlp_decoder` maps
  :math:`z` to one output per data dimension (logits or means).
* A small convolutional pair for images ``(C, H, W)`` with :math:`H, W` divisible by 4: two
  stride-2 convolutions down, two stride-2 transposed convolutions up.

Every network accepts any number of leading batch dimensions (e.g. importance-sampling particles
in front of the data batch).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from torch import Tensor, nn

from flowdist.nn import MLP

__all__ = ["conv_decoder", "conv_encoder", "mlp_decoder", "mlp_encoder"]


def _layers(sizes: Sequence[int], activation: type[nn.Module]) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), activation()]
    return layers


def mlp_encoder(
    x_shape: Sequence[int],
    hidden: Sequence[int] = (400,),
    activation: type[nn.Module] = nn.Softplus,
) -> nn.Sequential:
    """``Flatten → (Linear → activation) × len(hidden)``: the features :math:`h(x)`."""
    x_shape = tuple(x_shape)
    return nn.Sequential(
        nn.Flatten(-len(x_shape)), *_layers([math.prod(x_shape), *hidden], activation)
    )


def mlp_decoder(
    z_dim: int,
    x_shape: Sequence[int],
    hidden: Sequence[int] = (400,),
    activation: type[nn.Module] = nn.Softplus,
) -> nn.Sequential:
    """``(Linear → activation) × len(hidden) → Linear → Unflatten``: one output per pixel."""
    x_shape = tuple(x_shape)
    mlp = MLP(z_dim, math.prod(x_shape), hidden, activation)
    return nn.Sequential(mlp, nn.Unflatten(-1, x_shape))


class _Images(nn.Module):
    """Run ``net`` on ``(N, *in_shape)`` after folding all leading batch dimensions into N."""

    def __init__(self, net: nn.Module, in_dims: int) -> None:
        super().__init__()
        self.net = net
        self.in_dims = in_dims

    def forward(self, x: Tensor) -> Tensor:
        batch = x.shape[: x.dim() - self.in_dims]
        y = self.net(x.reshape(-1, *x.shape[x.dim() - self.in_dims :]))
        return y.reshape(*batch, *y.shape[1:])


def _check_image_shape(x_shape: Sequence[int]) -> tuple[int, int, int]:
    if len(x_shape) != 3 or x_shape[1] % 4 or x_shape[2] % 4:
        raise ValueError(f"x_shape must be (C, H, W) with H, W divisible by 4, got {x_shape}")
    c, h, w = x_shape
    return c, h, w


def conv_encoder(
    x_shape: Sequence[int],
    channels: int = 32,
    hidden: int = 256,
    activation: type[nn.Module] = nn.ReLU,
) -> nn.Module:
    """Two stride-2 3×3 convolutions (``channels``, ``2 * channels``), then a dense layer."""
    c, h, w = _check_image_shape(x_shape)
    net = nn.Sequential(
        nn.Conv2d(c, channels, 3, stride=2, padding=1),
        activation(),
        nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1),
        activation(),
        nn.Flatten(),
        nn.Linear(2 * channels * (h // 4) * (w // 4), hidden),
        activation(),
    )
    return _Images(net, 3)


def conv_decoder(
    z_dim: int,
    x_shape: Sequence[int],
    channels: int = 32,
    hidden: int = 256,
    activation: type[nn.Module] = nn.ReLU,
) -> nn.Module:
    """The mirror of :func:`conv_encoder`: dense layers, then two stride-2 transposed
    convolutions up to ``(C, H, W)``."""
    c, h, w = _check_image_shape(x_shape)
    net = nn.Sequential(
        nn.Linear(z_dim, hidden),
        activation(),
        nn.Linear(hidden, 2 * channels * (h // 4) * (w // 4)),
        activation(),
        nn.Unflatten(-1, (2 * channels, h // 4, w // 4)),
        nn.ConvTranspose2d(2 * channels, channels, 4, stride=2, padding=1),
        activation(),
        nn.ConvTranspose2d(channels, c, 4, stride=2, padding=1),
    )
    return _Images(net, 1)
