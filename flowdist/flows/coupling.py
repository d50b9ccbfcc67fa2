r"""Ready-made coupling flows: NICE (Dinh et al., 2014) and RealNVP (Dinh et al., 2017) on
:math:`\mathbb R^d`, with the logistic prior of NICE, and RealNVP's multi-scale architecture on
images (:class:`MultiscaleRealNVP`)."""

from __future__ import annotations

from collections.abc import Sequence

import pyro.distributions as pdist
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, Transform

from flowdist.flows.core import Flow, StandardBase, StandardNormal
from flowdist.flows.glow import multiscale_shape
from flowdist.transforms.base import check_dim
from flowdist.transforms.coupling import (
    AdditiveCouplingTransform,
    AffineCouplingTransform,
    ContextualTransform,
    CouplingTransform,
    ScaleTransform,
    alternating_mask,
    channel_mask,
    checkerboard_mask,
    half_mask,
)
from flowdist.transforms.glow import MultiscaleTransform

__all__ = ["NICE", "MultiscaleRealNVP", "RealNVP", "StandardLogistic", "coupling_masks"]


class StandardLogistic(StandardBase):
    r"""The base with independent standard logistic entries,
    :math:`\log p(z) = -\sum_i \big(\operatorname{softplus}(z_i) + \operatorname{softplus}(-z_i)
    \big)` (NICE's prior)."""

    def forward(self, context: Tensor | None = None) -> Distribution:
        return Independent(pdist.Logistic(self.loc, self.scale), self.loc.dim())


def coupling_masks(features: int, layers: int, kind: str = "alternating") -> list[Tensor]:
    """Masks for ``layers`` couplings whose conditioning parts alternate: odd/even entries
    (``"alternating"``, NICE) or first/second half (``"half"``)."""
    check_dim("features", features)
    check_dim("layers", layers)
    if features < 2:
        raise ValueError(f"features must be at least 2 for a coupling, got {features}")
    if kind == "alternating":
        return [alternating_mask(features, k % 2) for k in range(layers)]
    if kind == "half":
        return [half_mask(features, flip=bool(k % 2)) for k in range(layers)]
    raise ValueError(f"mask must be 'alternating' or 'half', got {kind!r}")


def _couplings(
    cls: type[CouplingTransform],
    features: int,
    layers: int,
    mask: str,
    context_features: int,
    **kwargs: object,
) -> list[Transform | nn.Module]:
    out: list[Transform | nn.Module] = []
    for m in coupling_masks(features, layers, mask):
        t = cls(m, context_features=context_features, **kwargs)
        out.append(ContextualTransform(t, context_features) if context_features else t)
    return out


class NICE(Flow):
    r"""NICE: ``layers`` additive couplings with alternating masks, then the diagonal scaling
    :math:`e^{s}`, on a logistic (default) or normal base.

    In the sampling direction :math:`x = f_K \circ \dots \circ f_1(e^{s} \odot z)`; the paper's
    MNIST model is ``NICE(784, layers=4, hidden=(1000,) * 5)``.

    Args:
        features: :math:`d`.
        layers: number of couplings.
        hidden: hidden sizes of each coupling's MLP.
        base: ``"logistic"`` or ``"normal"``.
        mask: ``"alternating"`` (odd/even, the paper) or ``"half"``.
        context_features: context size for a conditional flow (0: unconditional).
        data_transforms: transforms appended at the data side, e.g.
            ``[LogitTransform(d).inv]``.
    """

    def __init__(
        self,
        features: int,
        layers: int = 4,
        hidden: Sequence[int] = (1000,) * 5,
        *,
        base: str = "logistic",
        mask: str = "alternating",
        context_features: int = 0,
        data_transforms: Sequence[Transform] = (),
    ) -> None:
        if base not in ("logistic", "normal"):
            raise ValueError(f"base must be 'logistic' or 'normal', got {base!r}")
        couplings = _couplings(
            AdditiveCouplingTransform, features, layers, mask, context_features, hidden=hidden
        )
        dist = StandardLogistic(features) if base == "logistic" else StandardNormal(features)
        super().__init__([ScaleTransform(features), *couplings, *data_transforms], dist)


class RealNVP(Flow):
    r"""RealNVP on vectors (for images see :class:`MultiscaleRealNVP`): ``layers`` affine
    couplings
    :math:`y_B = x_B \odot e^{s(x_A)} + t(x_A)` with alternating masks, on
    :math:`\mathcal N(0, I)`.

    Args:
        features: :math:`d`.
        layers: number of couplings.
        hidden: hidden sizes of each coupling's MLP.
        mask: ``"alternating"`` or ``"half"``.
        context_features: context size for a conditional flow (0: unconditional).
        data_transforms: transforms appended at the data side.
    """

    def __init__(
        self,
        features: int,
        layers: int = 8,
        hidden: Sequence[int] = (256, 256),
        *,
        mask: str = "alternating",
        context_features: int = 0,
        data_transforms: Sequence[Transform] = (),
    ) -> None:
        couplings = _couplings(
            AffineCouplingTransform, features, layers, mask, context_features, hidden=hidden
        )
        super().__init__([*couplings, *data_transforms], StandardNormal(features))


class MultiscaleRealNVP(Flow):
    r"""RealNVP's multi-scale architecture on images :math:`(C, H, W)` (Dinh et al., 2017).

    In the data-to-latent direction each scale applies 3 affine couplings with alternating
    checkerboard masks, squeezes (space to depth, :math:`(4C, H/2, W/2)`), applies 3 couplings
    with alternating channel-wise masks and factors out half of the channels, which go to the
    base :math:`\mathcal N(0, I)`; the last scale applies 4 checkerboard couplings. The coupling
    networks are :class:`~flowdist.transforms.coupling.ConvNet` with ``hidden`` channels.

    Args:
        image_shape: :math:`(C, H, W)`, :math:`H, W` divisible by :math:`2^{\text{levels}-1}`.
        levels: number of scales.
        hidden: channels of the coupling networks.
        data_transforms: transforms appended at the data side, e.g.
            ``[LogitTransform(C, H, W).inv]``.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        levels: int = 2,
        hidden: int = 64,
        *,
        data_transforms: Sequence[Transform] = (),
    ) -> None:
        check_dim("levels", levels)
        shape = multiscale_shape(image_shape, squeezes=levels - 1)
        h, w = shape[1] >> (levels - 1), shape[2] >> (levels - 1)
        if h * w < 2:
            raise ValueError(
                f"image_shape {shape} is too small for levels={levels}: the last level is "
                f"{h}x{w}, and its checkerboard couplings need at least 2 pixels"
            )
        top = _realnvp_scale(shape, shape[0], levels, hidden)
        super().__init__([top, *data_transforms], StandardNormal(*shape))


def _realnvp_scale(
    shape: tuple[int, int, int], kept: int, levels: int, hidden: int
) -> MultiscaleTransform:
    """``levels`` RealNVP scales on the first ``kept`` channels of ``shape`` (sampling order:
    the deeper scales and the channel-wise couplings, then the checkerboard couplings)."""
    _, h, w = shape

    def couplings(masks: list[Tensor]) -> list[nn.Module]:
        return [AffineCouplingTransform(m, hidden=(hidden,)) for m in masks]

    own = (kept, h, w)
    if levels == 1:
        return MultiscaleTransform(
            shape,
            [],
            kept=kept,
            outer=couplings([checkerboard_mask(own, k % 2) for k in range(4)]),
        )
    inner = (4 * kept, h // 2, w // 2)
    return MultiscaleTransform(
        shape,
        [
            _realnvp_scale(inner, 2 * kept, levels - 1, hidden),
            *couplings([channel_mask(inner, flip=bool(k % 2)) for k in range(3)]),
        ],
        kept=kept,
        outer=couplings([checkerboard_mask(own, k % 2) for k in range(3)]),
    )
