r"""Permutations of an event's leading dimension, and the base class of parameter-free bijectors.

.. math::
    f(x)_i = x_{\pi(i)}, \qquad f^{-1}(y)_{\pi(i)} = y_i, \qquad \log|\det J_f| = 0.

For vector events this permutes the coordinates; for image events :math:`(C, H, W)` it permutes
the channels (the fixed channel permutation of RealNVP and Glow's "shuffle" variant).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.distributions import constraints

from flowdist.transforms.base import Bijector, check_dim

__all__ = ["PermutationTransform", "ReverseTransform", "StatelessBijector"]


class StatelessBijector(Bijector):
    r"""A bijector without floating-point parameters (permutations, squeezes, fixed
    elementwise maps): it accepts inputs of any floating dtype and keeps no cache (recomputing
    is as cheap as looking up). Its inputs are checked against ``event_shape`` and its inverse's
    inputs against ``forward_shape(event_shape)``, so it may change the event shape.
    """

    def __init__(self) -> None:
        super().__init__(cache_size=0)

    @property
    def output_shape(self) -> tuple[int, ...]:
        """The event shape of :math:`f(x)`."""
        return tuple(self.forward_shape(self.event_shape))

    def _zero_ladj(self, x: Tensor) -> Tensor:
        return x.new_zeros(x.shape[: x.dim() - len(self.event_shape)])


class PermutationTransform(StatelessBijector):
    r"""Permute the leading event dimension: :math:`f(x)_i = x_{\pi(i)}`.

    Args:
        perm: a permutation of :math:`0 \ldots n-1` (sequence or integer tensor).
        event_shape: the event shape, whose first entry is :math:`n`; defaults to ``(n,)``
            (vectors); pass ``(C, H, W)`` to permute the channels of images.
    """

    def __init__(self, perm: Sequence[int] | Tensor, event_shape: Sequence[int] | None = None):
        super().__init__()
        perm = torch.as_tensor(perm)
        n = perm.numel()
        if perm.dim() != 1 or n == 0 or perm.is_floating_point():
            raise ValueError(f"perm must be a non-empty 1-D integer sequence, got {perm!r}")
        perm = perm.long()
        if not torch.equal(perm.sort().values, torch.arange(n)):
            raise ValueError(f"perm must be a permutation of 0..{n - 1}, got {perm.tolist()}")
        shape = (n,) if event_shape is None else tuple(event_shape)
        for s in shape:
            check_dim("event_shape", s)
        if shape[0] != n:
            raise ValueError(f"event_shape must start with len(perm) = {n}, got {shape}")
        self._event_shape = shape
        self.domain = constraints.independent(constraints.real, len(shape))
        self.codomain = self.domain
        self.register_buffer("perm", perm)
        self.register_buffer("inverse_perm", torch.argsort(perm))

    @classmethod
    def random(
        cls,
        dim: int,
        event_shape: Sequence[int] | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> PermutationTransform:
        """A uniformly random permutation of ``dim`` entries (drawn with ``generator``)."""
        check_dim("dim", dim)
        return cls(torch.randperm(dim, generator=generator), event_shape)

    @property
    def event_shape(self) -> tuple[int, ...]:
        return self._event_shape

    def _permute(self, x: Tensor, index: Tensor) -> Tensor:
        return x.index_select(x.dim() - len(self._event_shape), index)

    def _call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self._permute(x, self.perm), self._zero_ladj(x)

    def _inverse_and_ladj(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return self._permute(y, self.inverse_perm), self._zero_ladj(y)


class ReverseTransform(PermutationTransform):
    r"""Reverse the leading event dimension: :math:`f(x)_i = x_{n-1-i}` (self-inverse)."""

    def __init__(self, dim: int, event_shape: Sequence[int] | None = None) -> None:
        check_dim("dim", dim)
        super().__init__(torch.arange(dim - 1, -1, -1), event_shape)
