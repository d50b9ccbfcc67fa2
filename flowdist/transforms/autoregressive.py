r"""Masked autoregressive flows: MADE (Germain et al., 2015), MAF (Papamakarios et al., 2017)
and its inverse, IAF (Kingma et al., 2016).

MADE is an MLP whose weights are masked so that output :math:`i` depends only on the inputs
that precede :math:`i` in an order :math:`o`: with degrees :math:`m(\cdot)` (inputs: their
position :math:`o_i \in \{1..d\}`; hidden units: :math:`\{1..d-1\}`, or :math:`\{0..d-1\}` with a
context; context inputs: 0), a
hidden weight :math:`k \leftarrow l` is kept when :math:`m(k) \ge m(l)` and an output weight
when :math:`m(\text{out}) > m(l)`.

:class:`MaskedAutoregressiveTransform` maps a base sample :math:`z` to :math:`x` by

.. math::
    x_i = z_i\, e^{s_i(x_{<i})} + t_i(x_{<i}), \qquad
    \log\left|\det \frac{\partial x}{\partial z}\right| = \sum_i s_i(x_{<i})

(:math:`s \equiv 0` when ``additive``). The inverse (density evaluation, MAF) is one MADE pass,
:math:`z = (x - t(x)) \odot e^{-s(x)}`; the forward (sampling) takes :math:`d` passes, after
pass :math:`k` the entries of order :math:`\le k` being exact. Its ``.inv`` is the IAF: one
pass to sample, :math:`d` passes to evaluate the density of an external point.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flowdist.nn import activation_layer
from flowdist.transforms.base import Bijector, check_dim
from flowdist.transforms.coupling import _Contextual, affine_map, shift_map

__all__ = ["MADE", "MaskedAutoregressiveTransform", "MaskedLinear"]


class MaskedLinear(nn.Linear):
    r"""A linear layer :math:`y = (W \odot M) x + b` with a fixed binary mask :math:`M`."""

    def __init__(self, mask: Tensor) -> None:
        out_features, in_features = mask.shape
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


def _check_order(order: Sequence[int] | Tensor | None, features: int) -> Tensor:
    if order is None:
        return torch.arange(1, features + 1)
    order = torch.as_tensor(order)
    if order.shape != (features,) or not torch.equal(
        order.sort().values, torch.arange(1, features + 1)
    ):
        raise ValueError(f"order must be a permutation of 1..{features}, got {order.tolist()}")
    return order.long()


class MADE(nn.Sequential):
    r"""Masked autoencoder for distribution estimation: :math:`\mathbb R^{d + c} \to
    \mathbb R^{p d}`, output :math:`j d + i` (parameter :math:`j` of entry :math:`i`) depending
    only on the inputs before :math:`i` in ``order`` and on the :math:`c` context inputs
    (appended after the :math:`d` inputs).

    Args:
        features: :math:`d`.
        n_params: :math:`p`, parameters per entry.
        hidden: hidden layer sizes.
        context_features: :math:`c`.
        order: the position (1 to :math:`d`) of each input in the autoregressive order; the
            identity by default.
        activation: hidden activation.

    The last layer starts at zero.
    """

    def __init__(
        self,
        features: int,
        n_params: int = 2,
        hidden: Sequence[int] = (256, 256),
        *,
        context_features: int = 0,
        order: Sequence[int] | Tensor | None = None,
        activation: type[nn.Module] = nn.ReLU,
    ) -> None:
        check_dim("features", features)
        check_dim("n_params", n_params)
        for h in hidden:
            check_dim("hidden", h)
        order = _check_order(order, features)
        degrees = [torch.cat([order, torch.zeros(context_features, dtype=torch.long)])]
        # hidden degrees 1..d-1; from 0 with a context, so that the first entry sees it
        low = 0 if context_features else min(features - 1, 1)
        for h in hidden:
            degrees.append(torch.arange(h) % (features - low) + low)
        layers: list[nn.Module] = []
        for d_in, d_out in itertools.pairwise(degrees):
            layers += [MaskedLinear(d_out[:, None] >= d_in), activation_layer(activation)]
        last = MaskedLinear(order.repeat(n_params)[:, None] > degrees[-1])
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        super().__init__(*layers, last)
        self.register_buffer("order", order)
        self.features = features
        self.n_params = n_params


class MaskedAutoregressiveTransform(_Contextual, Bijector):
    r"""The autoregressive map :math:`x_i = z_i e^{s_i(x_{<i})} + t_i(x_{<i})` (see the module
    docstring): one MADE pass for the inverse (MAF density), :math:`d` for the forward; its
    ``.inv`` is the IAF.

    Args:
        features: the event size :math:`d`.
        hidden: MADE hidden sizes.
        additive: :math:`s \equiv 0` (volume preserving).
        context_features: context size, for use in
            :class:`~flowdist.transforms.coupling.ContextualTransform`.
        order: the autoregressive order (positions 1 to :math:`d`), identity by default.
        bound: the bound :math:`b` of the log-scale :math:`s = b \tanh(\tilde s/b)`.
        made: a network to use instead of the default :class:`MADE`.
    """

    def __init__(
        self,
        features: int,
        hidden: Sequence[int] = (256, 256),
        *,
        additive: bool = False,
        context_features: int = 0,
        order: Sequence[int] | Tensor | None = None,
        bound: float = 3.0,
        made: nn.Module | None = None,
        cache_size: int = 1,
    ) -> None:
        super().__init__(cache_size=cache_size)
        check_dim("features", features)
        if not bound > 0:
            raise ValueError(f"bound must be positive, got {bound}")
        self.additive = additive
        self.bound = float(bound)
        self.features = features
        if made is None:
            n_params = 1 if additive else 2
            made = MADE(features, n_params, hidden, context_features=context_features, order=order)
        if not isinstance(made, nn.Module):
            raise TypeError(f"made must be an nn.Module, got {type(made).__name__}")
        self.made = made

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (self.features,)

    def _g(self, x: Tensor, params: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        if self.additive:
            y, _ = shift_map(x, params, inverse)
            return y, y.new_zeros(y.shape[:-1])
        y, log_scale = affine_map(x, params, inverse, self.bound, -1)
        return y, log_scale.sum(-1)

    def _call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y = torch.zeros_like(x)
        for _ in range(self.features):
            y, ladj = self._g(x, self.made(self._with_context(y, 1)), inverse=False)
        return y, ladj

    def _inverse_and_ladj(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return self._g(y, self.made(self._with_context(y, 1)), inverse=True)
