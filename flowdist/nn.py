r"""Small networks shared by the models: the multi-layer perceptron."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from torch import nn

from flowdist.validation import check_count

__all__ = ["MLP", "activation_layer"]


def activation_layer(activation: type[nn.Module]) -> nn.Module:
    """An ``activation()`` to put after a linear layer or convolution: a ReLU runs in place,
    on the output that only it reads, which saves writing a second hidden-sized tensor."""
    layer = activation()
    if type(layer) is nn.ReLU:
        layer.inplace = True
    return layer


class MLP(nn.Sequential):
    r"""A multi-layer perceptron :math:`\mathbb R^{n_\text{in}} \to \mathbb R^{n_\text{out}}`.

    ``Linear → activation`` for each entry of ``hidden``, then a final ``Linear``. With
    ``zero_last=True`` the last layer starts at zero, so that a network that parameterises a
    transform starts it at (or near) the identity.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: Sequence[int] = (64, 64),
        activation: type[nn.Module] = nn.ReLU,
        *,
        zero_last: bool = False,
    ) -> None:
        if not isinstance(hidden, Sequence):
            raise TypeError(f"hidden must be a sequence of layer sizes, got {hidden!r}")
        for h in hidden:
            check_count("hidden", h, least=1)
        sizes = [in_features, *hidden]
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(sizes):
            layers += [nn.Linear(a, b), activation_layer(activation)]
        last = nn.Linear(sizes[-1], out_features)
        if zero_last:
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        super().__init__(*layers, last)
        self.in_features = in_features
        self.out_features = out_features
