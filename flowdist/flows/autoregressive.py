r"""Ready-made autoregressive flows: MAF (Papamakarios et al., 2017), one MADE pass per layer
to evaluate densities, and IAF (Kingma et al., 2016), one pass per layer to sample."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn
from torch.distributions import Transform

from flowdist.flows.core import Flow, StandardNormal
from flowdist.transforms.autoregressive import MaskedAutoregressiveTransform
from flowdist.transforms.base import check_dim
from flowdist.transforms.coupling import ContextualTransform

__all__ = ["IAF", "MAF"]


def _layers(
    features: int,
    layers: int,
    hidden: Sequence[int],
    additive: bool,
    context_features: int,
) -> list[MaskedAutoregressiveTransform]:
    """Autoregressive layers whose orders alternate between identity and reversed (so that
    no permutation layer is needed)."""
    check_dim("features", features)
    check_dim("layers", layers)
    out = []
    for k in range(layers):
        order = list(range(1, features + 1))
        out.append(
            MaskedAutoregressiveTransform(
                features,
                hidden,
                additive=additive,
                context_features=context_features,
                order=order[::-1] if k % 2 else order,
            )
        )
    return out


class MAF(Flow):
    r"""Masked autoregressive flow: ``layers`` :class:`MaskedAutoregressiveTransform` on
    :math:`\mathcal N(0, I)`, alternating orders. ``log_prob`` costs one MADE pass per layer,
    sampling :math:`d`.

    Args:
        features: :math:`d`.
        layers: number of autoregressive layers.
        hidden: MADE hidden sizes.
        additive: volume-preserving shifts only.
        context_features: context size for a conditional flow (0: unconditional).
        data_transforms: transforms appended at the data side.
    """

    def __init__(
        self,
        features: int,
        layers: int = 5,
        hidden: Sequence[int] = (256, 256),
        *,
        additive: bool = False,
        context_features: int = 0,
        data_transforms: Sequence[Transform] = (),
    ) -> None:
        transforms = [
            ContextualTransform(t, context_features) if context_features else t
            for t in _layers(features, layers, hidden, additive, context_features)
        ]
        super().__init__([*transforms, *data_transforms], StandardNormal(features))


class IAF(Flow):
    r"""Inverse autoregressive flow: the inverses of ``layers``
    :class:`MaskedAutoregressiveTransform`; sampling (and ``rsample_and_log_prob``) costs one
    MADE pass per layer, ``log_prob`` of external points :math:`d`. Arguments as in
    :class:`MAF` (unconditional only).
    """

    def __init__(
        self,
        features: int,
        layers: int = 5,
        hidden: Sequence[int] = (256, 256),
        *,
        additive: bool = False,
        data_transforms: Sequence[Transform] = (),
    ) -> None:
        mades = _layers(features, layers, hidden, additive, 0)
        super().__init__([*(t.inv for t in mades), *data_transforms], StandardNormal(features))
        self.layers = nn.ModuleList(mades)  # the inverses are not modules: register here
