r"""Glow (Kingma & Dhariwal, 2018): a multi-scale flow on images of steps
ActNorm → invertible :math:`1\times1` convolution → affine coupling.

In the data-to-latent direction each level squeezes the image (space to depth), applies
``steps`` steps, and factors out half of the channels, which go to the base
:math:`\mathcal N(0, I)`; the last level keeps all. In flowdist's sampling direction the same
structure is a nest of :class:`~flowdist.transforms.glow.MultiscaleTransform`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.distributions import Transform

from flowdist.flows.core import Flow, StandardNormal
from flowdist.transforms.base import check_dim
from flowdist.transforms.coupling import AffineCouplingTransform, ConvNet, channel_mask
from flowdist.transforms.glow import (
    ActNormTransform,
    Invertible1x1ConvTransform,
    MultiscaleTransform,
)

__all__ = ["Glow", "glow_step", "multiscale_shape"]


def multiscale_shape(image_shape: Sequence[int], squeezes: int) -> tuple[int, int, int]:
    """``image_shape`` as a ``(C, H, W)`` tuple, checked: positive sizes, :math:`H` and
    :math:`W` divisible by :math:`2^\text{squeezes}`."""
    shape = tuple(image_shape)
    if len(shape) != 3:
        raise ValueError(f"image_shape must be (C, H, W), got {shape}")
    for n in shape:
        check_dim("image_shape", n)
    size = 2**squeezes
    if shape[1] % size or shape[2] % size:
        raise ValueError(
            f"image_shape: H and W must be divisible by 2**{squeezes} = {size} for {squeezes} "
            f"squeezes, got {shape}"
        )
    return shape


def glow_step(
    event_shape: Sequence[int],
    hidden: int = 64,
    *,
    lu: bool = True,
    scale: str = "sigmoid",
    generator: torch.Generator | None = None,
) -> list[nn.Module]:
    r"""One Glow step on :math:`(C, H, W)`, in the sampling direction: affine coupling (the
    first half of the channels conditions, through :class:`ConvNet` of ``hidden`` channels;
    ``scale`` as in :class:`~flowdist.transforms.coupling.AffineCouplingTransform`, default
    Glow's sigmoid), then the :math:`1\times1` convolution, then ActNorm (so that ActNorm
    meets the data first and initialises on it)."""
    c, h, w = event_shape
    if c < 2:
        raise ValueError(f"event_shape: a Glow step needs at least 2 channels, got {c}")
    mask = channel_mask(event_shape)
    n_a = int(mask[:, 0, 0].sum())
    coupling = AffineCouplingTransform(mask, ConvNet(n_a, 2 * (c - n_a), hidden), scale=scale)
    return [
        coupling,
        Invertible1x1ConvTransform(c, h, w, lu=lu, generator=generator),
        ActNormTransform(c, h, w),
    ]


def _level(
    shape: tuple[int, int, int],
    kept: int,
    levels: int,
    steps: int,
    hidden: int,
    lu: bool,
    scale: str,
    generator: torch.Generator | None,
) -> MultiscaleTransform:
    """``levels`` scales on ``shape`` whose first ``kept`` channels are squeezed and
    transformed (the rest factored out)."""
    _, h, w = shape
    inner = (4 * kept, h // 2, w // 2)
    transforms: list[nn.Module] = []
    if levels > 1:
        transforms.append(_level(inner, 2 * kept, levels - 1, steps, hidden, lu, scale, generator))
    for _ in range(steps):
        transforms += glow_step(inner, hidden, lu=lu, scale=scale, generator=generator)
    return MultiscaleTransform(shape, transforms, kept=kept)


class Glow(Flow):
    r"""Glow on images of shape ``image_shape`` :math:`= (C, H, W)`, :math:`H, W` divisible by
    :math:`2^{\text{levels}}`.

    Args:
        image_shape: :math:`(C, H, W)`.
        levels: number of scales.
        steps: steps per level.
        hidden: channels of the coupling networks.
        lu: LU-parameterised :math:`1\times1` convolutions (default) or plain ones.
        scale: the couplings' log-scale, ``"sigmoid"`` (Glow's, default) or ``"tanh"`` (see
            :class:`~flowdist.transforms.coupling.AffineCouplingTransform`).
        generator: random generator of the initial rotations.
        data_transforms: transforms appended at the data side, e.g.
            ``[LogitTransform(C, H, W).inv]``.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        levels: int = 2,
        steps: int = 4,
        hidden: int = 64,
        *,
        lu: bool = True,
        scale: str = "sigmoid",
        generator: torch.Generator | None = None,
        data_transforms: Sequence[Transform] = (),
    ) -> None:
        check_dim("levels", levels)
        check_dim("steps", steps)
        shape = multiscale_shape(image_shape, squeezes=levels)
        top = _level(shape, shape[0], levels, steps, hidden, lu, scale, generator)
        super().__init__([top, *data_transforms], StandardNormal(*shape))
