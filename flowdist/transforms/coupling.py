r"""Coupling layers: NICE's additive coupling and scaling (Dinh et al., 2014) and RealNVP's
affine coupling (Dinh et al., 2017), with masks for vectors and images.

A mask splits the event :math:`x` into a conditioning part :math:`x_A` (``mask`` true), which
passes through unchanged, and a transformed part :math:`x_B`:

.. math::
    y_A = x_A, \qquad y_B = x_B \odot e^{s(x_A)} + t(x_A), \qquad
    \log\left|\det \frac{\partial y}{\partial x}\right| = \sum_{i \in B} s_i(x_A),

with :math:`s \equiv 0` for the additive coupling (unit Jacobian). The Jacobian is triangular
after reordering, hence the cheap log-determinant, and the inverse is
:math:`x_B = (y_B - t(y_A)) \odot e^{-s(y_A)}` in one pass. The log-scale is bounded,
:math:`s = b \tanh(\tilde s / b)`, so that a large network output cannot overflow.

The conditioner is any ``nn.Module``: for vector events it maps :math:`x_A` (concatenated with
the context, for conditional couplings) to the parameters of :math:`x_B`; for image events with
a channel-wise mask it maps the channels of :math:`A` to those of :math:`B`; for any other image
mask (e.g. the checkerboard) it maps :math:`x \odot \text{mask}` to full-size parameters, of which
the :math:`B` entries are used (RealNVP's convention).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.distributions import constraints

from flowdist.nn import MLP, activation_layer
from flowdist.transforms.base import Bijector, ConditionalModule, check_dim, check_input

__all__ = [
    "AdditiveCouplingTransform",
    "AffineCouplingTransform",
    "ContextualTransform",
    "ConvNet",
    "CouplingTransform",
    "ScaleTransform",
    "affine_map",
    "alternating_mask",
    "channel_mask",
    "checkerboard_mask",
    "half_mask",
    "shift_map",
]


# --------------------------------------------------------------------------- masks
def half_mask(dim: int, flip: bool = False) -> Tensor:
    """The first :math:`\\lceil d/2 \\rceil` entries condition (the last ones if ``flip``)."""
    check_dim("dim", dim)
    mask = torch.arange(dim) < (dim + 1) // 2
    return mask.flip(0) if flip else mask


def alternating_mask(dim: int, parity: int = 0) -> Tensor:
    """Entries :math:`i` with :math:`i \\equiv \\text{parity} \\pmod 2` condition."""
    check_dim("dim", dim)
    return torch.arange(dim) % 2 == parity % 2


def _check_image_shape(event_shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(event_shape)
    if len(shape) != 3:
        raise ValueError(f"event_shape must be (C, H, W), got {shape}")
    for s in shape:
        check_dim("event_shape", s)
    return shape


def checkerboard_mask(event_shape: Sequence[int], parity: int = 0) -> Tensor:
    """Pixels :math:`(h, w)` with :math:`h + w \\equiv \\text{parity} \\pmod 2` condition, in
    every channel (RealNVP)."""
    c, h, w = _check_image_shape(event_shape)
    board = (torch.arange(h)[:, None] + torch.arange(w)) % 2 == parity % 2
    return board.expand(c, h, w).clone()


def channel_mask(event_shape: Sequence[int], flip: bool = False) -> Tensor:
    """The first :math:`\\lceil C/2 \\rceil` channels condition (the last ones if ``flip``)."""
    c, h, w = _check_image_shape(event_shape)
    return half_mask(c, flip)[:, None, None].expand(c, h, w).clone()


def _check_mask(mask: Tensor) -> Tensor:
    if not isinstance(mask, Tensor):
        raise TypeError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        if not ((mask == 0) | (mask == 1)).all():
            raise ValueError("mask must be boolean (or contain only 0 and 1)")
        mask = mask != 0
    if mask.dim() not in (1, 3):
        raise ValueError(
            f"mask must have the event shape, (d,) or (C, H, W), got {tuple(mask.shape)}"
        )
    if mask.all() or not mask.any():
        raise ValueError(
            "mask must partition the dimensions into two non-empty parts (conditioning = true, "
            f"transformed = false); it has {int(mask.sum())} of {mask.numel()} entries true"
        )
    return mask


# --------------------------------------------------------------------------- networks
class ConvNet(nn.Sequential):
    r"""The small CNN of Glow's coupling layers: ``conv3x3 → act → conv1x1 → act → conv3x3``,
    mapping :math:`(C_\text{in}, H, W)` to :math:`(C_\text{out}, H, W)`; the last convolution
    starts at zero (the coupling starts at the identity)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hidden: int = 64,
        activation: type[nn.Module] = nn.ReLU,
    ) -> None:
        check_dim("hidden", hidden)
        last = nn.Conv2d(hidden, out_channels, 3, padding=1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        super().__init__(
            nn.Conv2d(in_channels, hidden, 3, padding=1),
            activation_layer(activation),
            nn.Conv2d(hidden, hidden, 1),
            activation_layer(activation),
            last,
        )


# --------------------------------------------------------------------------- elementwise maps
def _as_slice(index: Tensor) -> tuple[int, int] | None:
    """``(start, length)`` when ``index`` is a run of consecutive integers, else ``None``."""
    start = int(index[0])
    return (
        (start, len(index)) if torch.equal(index, torch.arange(start, start + len(index))) else None
    )


class _Split(nn.Module):
    """Gather the two parts of a mask along the leading event dimension, and merge them back:
    slices when a part is contiguous, otherwise gathers with index tensors built once (buffers,
    not in the state dict, that follow ``.to()``)."""

    def __init__(self, mask: Tensor) -> None:
        super().__init__()
        index_a, index_b = mask.nonzero().squeeze(-1), (~mask).nonzero().squeeze(-1)
        self.slice_a, self.slice_b = _as_slice(index_a), _as_slice(index_b)
        self.sizes = (len(index_a), len(index_b))
        self.views = self.slice_a is not None and self.slice_b is not None
        self.a_first, self.b_first = (
            self.slice_a == (0, len(index_a)),
            self.slice_b == (0, len(index_b)),
        )
        self.register_buffer("index_a", index_a, persistent=False)
        self.register_buffer("index_b", index_b, persistent=False)
        self.register_buffer(
            "order", torch.argsort(torch.cat([index_a, index_b])), persistent=False
        )

    @staticmethod
    def _take(x: Tensor, dim: int, part: tuple[int, int] | None, index: Tensor) -> Tensor:
        return x.index_select(dim, index) if part is None else x.narrow(dim, *part)

    def forward(self, x: Tensor, dim: int) -> tuple[Tensor, Tensor]:
        """The conditioning part :math:`x_A` and the transformed part :math:`x_B`."""
        return (
            self._take(x, dim, self.slice_a, self.index_a),
            self._take(x, dim, self.slice_b, self.index_b),
        )

    def merge(self, x_a: Tensor, y_b: Tensor, dim: int) -> Tensor:
        if self.a_first:
            return torch.cat([x_a, y_b], dim)
        if self.b_first:
            return torch.cat([y_b, x_a], dim)
        return torch.cat([x_a, y_b], dim).index_select(dim, self.order)


class _Contextual:
    """Mixin of transforms whose networks also read a context: :meth:`bind` returns a shallow
    copy that shares the parameters and reads ``context``."""

    context: Tensor | None = None

    def bind(self, context: Tensor) -> Bijector:
        bound = copy.copy(self)
        bound.context = context
        return bound

    def state_tensors(self) -> tuple[Tensor, ...]:
        extra = () if self.context is None else (self.context,)
        return (*super().state_tensors(), *extra)

    def _with_context(self, h: Tensor, event_dim: int) -> Tensor:
        r"""Concatenate the context to the network input ``h`` (vector or :math:`(C, H, W)`
        events), broadcasting batch dimensions and, for images, the spatial ones."""
        if self.context is None:
            return h
        c = self.context
        batch = torch.broadcast_shapes(h.shape[: h.dim() - event_dim], c.shape[:-1])
        if event_dim == 3:
            c = c[..., None, None].expand(*c.shape, *h.shape[-2:])
        h = h.expand(*batch, *h.shape[h.dim() - event_dim :])
        c = c.expand(*batch, *c.shape[c.dim() - event_dim :])
        return torch.cat([h, c], h.dim() - event_dim)


class ContextualTransform(ConditionalModule):
    r"""A conditional bijector :math:`f_c`: calling it with a context :math:`c` returns
    ``transform`` bound to :math:`c` (its networks read :math:`c` next to their usual inputs).
    ``transform`` must have been built with ``context_features`` context inputs."""

    def __init__(self, transform: Bijector, context_features: int) -> None:
        super().__init__()
        check_dim("context_features", context_features)
        if not isinstance(transform, _Contextual):
            raise TypeError(f"transform must accept a context, got {type(transform).__name__}")
        self.transform = transform
        self.context_features = context_features

    def forward(self, context: Tensor) -> Bijector:
        check_input("context", context, (self.context_features,), self.transform.dtype)
        return self.transform.bind(context)


def shift_map(
    x: Tensor, shift: Tensor, inverse: bool, out: Tensor | None = None
) -> tuple[Tensor, None]:
    r""":math:`y = x + t` (or its inverse :math:`x = y - t`), written into ``out`` if given;
    the log-det is zero (``None``)."""
    return (torch.sub if inverse else torch.add)(x, shift, out=out), None


def affine_map(
    x: Tensor,
    params: Tensor,
    inverse: bool,
    bound: float,
    dim: int,
    out: Tensor | None = None,
    *,
    sigmoid: bool = False,
) -> tuple[Tensor, Tensor]:
    r""":math:`y = x e^{s} + t` with :math:`s = b \tanh(\tilde s / b)`, where ``params`` is
    :math:`(t, \tilde s)` concatenated along ``dim``; or the inverse
    :math:`x = (y - t) e^{-s}`. With ``sigmoid``, Glow's scale instead:
    :math:`e^{-s} = \sigma(\tilde s + 2)`, i.e. :math:`s = \operatorname{softplus}(-\tilde s - 2)
    \ge 0` (``bound`` unused). Returns the value (written into ``out`` if given) and the
    elementwise log-det (:math:`\pm s`)."""
    shift, raw = params.chunk(2, dim)
    # the elementwise log-det as returned: s, or -s for the inverse
    if sigmoid:  # -s = log sigmoid(s~ + 2)
        ladj = nn.functional.logsigmoid(raw + 2.0)
        ladj = ladj if inverse else -ladj
    else:  # b tanh(u / b) = 2b sigmoid(2u / b) - b: torch's CPU sigmoid is 3-6x faster than tanh
        twice = torch.sigmoid(raw * (2.0 / bound)) * (2.0 * bound)
        ladj = torch.rsub(twice, bound) if inverse else twice - bound  # exactly -s and s
    if inverse:
        return torch.mul(x - shift, torch.exp(ladj), out=out), ladj
    return torch.addcmul(shift, x, torch.exp(ladj), out=out), ladj


# --------------------------------------------------------------------------- couplings
class CouplingTransform(_Contextual, Bijector):
    r"""The coupling :math:`y_A = x_A`, :math:`y_B = g(x_B; \theta(x_A))` for an elementwise
    bijection :math:`g` with ``n_params`` parameters per entry (subclasses define :meth:`_g`).

    Args:
        mask: boolean tensor of the event shape, true on the conditioning part :math:`A`.
        conditioner: network from the conditioning part (plus ``context_features`` context
            entries) to ``n_params`` parameters per transformed entry, concatenated along the
            leading event dimension; ``None`` builds :class:`~flowdist.nn.MLP` (``hidden``) for
            vectors, :class:`ConvNet` (``hidden[0]`` channels) for images, last layer at zero.
        hidden: hidden sizes of the default conditioner.
        context_features: size of the context vector, for use in :class:`ContextualTransform`.
    """

    n_params: int = 1

    def __init__(
        self,
        mask: Tensor,
        conditioner: nn.Module | None = None,
        *,
        hidden: Sequence[int] = (256, 256),
        context_features: int = 0,
        cache_size: int = 1,
    ) -> None:
        super().__init__(cache_size=cache_size)
        mask = _check_mask(mask)
        if context_features:
            check_dim("context_features", context_features)
        self._event_shape = tuple(mask.shape)
        event_dim = mask.dim()
        self.domain = constraints.independent(constraints.real, event_dim)
        self.codomain = self.domain
        # leading-dimension split: vectors, or channel-wise image masks
        lead = mask.reshape(mask.shape[0], -1)
        self.spatial = bool(event_dim == 3 and not (lead == lead[:, :1]).all())
        self.register_buffer("mask", mask)
        if self.spatial:
            self.register_buffer("mask_in", mask.to(torch.get_default_dtype()))
            n_in, n_out = mask.shape[0], mask.shape[0]
        else:
            self.split = _Split(lead[:, 0])
            n_in, n_out = self.split.sizes
        if conditioner is None:
            n_in += context_features
            if event_dim == 1:
                conditioner = MLP(n_in, self.n_params * n_out, hidden, zero_last=True)
            else:
                conditioner = ConvNet(n_in, self.n_params * n_out, hidden[0])
        if not isinstance(conditioner, nn.Module):
            raise TypeError(f"conditioner must be an nn.Module, got {type(conditioner).__name__}")
        self.conditioner = conditioner

    @property
    def event_shape(self) -> tuple[int, ...]:
        return self._event_shape

    def _g(
        self, x: Tensor, params: Tensor, inverse: bool, out: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        r"""Apply :math:`g` (or :math:`g^{-1}`) elementwise, into ``out`` if given; return the
        value and the elementwise :math:`\log|g'|` (``None`` where it is zero)."""
        raise NotImplementedError

    def _params(self, h: Tensor) -> Tensor:
        event_dim = len(self._event_shape)
        h = self._with_context(h, event_dim)
        if event_dim == 1:
            return self.conditioner(h)
        batch = h.shape[:-3]
        out = self.conditioner(h.reshape(-1, *h.shape[-3:]))
        return out.reshape(*batch, *out.shape[-3:])

    def _couple(self, x: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        event_dim = len(self._event_shape)
        dims = tuple(range(-event_dim, 0))
        if self.spatial:
            params = self._params(x * self.mask_in)
            z, log_scale = self._g(x, params, inverse)
            y = torch.where(self.mask, x, z)
            if log_scale is None:
                return y, x.new_zeros(y.shape[: y.dim() - event_dim])
            return y, log_scale.masked_fill(self.mask, 0).sum(dims)
        dim = -event_dim
        x_a, x_b = self.split(x, dim)
        params = self._params(x_a)
        if torch.is_grad_enabled() or not self.split.views or params.shape[:dim] != x.shape[:dim]:
            y_b, log_scale = self._g(x_b, params, inverse)
            x_a = x_a.expand(*y_b.shape[:dim], *x_a.shape[dim:])  # a context's larger batch
            y = self.split.merge(x_a, y_b, dim)
        else:  # no graph: write both parts into the output, saving the merge's copy of y_b
            y = torch.empty_like(x)
            y_a, y_b = self.split(y, dim)
            y_a.copy_(x_a)
            _, log_scale = self._g(x_b, params, inverse, out=y_b)
        batch = y.shape[: y.dim() - event_dim]
        return y, (y.new_zeros(batch) if log_scale is None else log_scale.sum(dims))

    def _call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self._couple(x, inverse=False)

    def _inverse_and_ladj(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return self._couple(y, inverse=True)


class AdditiveCouplingTransform(CouplingTransform):
    r"""NICE's additive coupling :math:`y_B = x_B + m(x_A)`, with unit Jacobian."""

    n_params = 1

    def _g(
        self, x: Tensor, params: Tensor, inverse: bool, out: Tensor | None = None
    ) -> tuple[Tensor, None]:
        return shift_map(x, params, inverse, out)


class AffineCouplingTransform(CouplingTransform):
    r"""RealNVP's affine coupling :math:`y_B = x_B \odot e^{s(x_A)} + t(x_A)` (sampling
    direction), with :math:`\log|\det J| = \sum_B s`.

    The conditioner outputs :math:`(t, \tilde s)` concatenated along the leading event
    dimension. ``scale`` chooses the log-scale:

    - ``"tanh"`` (default): :math:`s = b \tanh(\tilde s / b)`, bounded by ``bound``
      :math:`= b` (default 3) in both directions.
    - ``"sigmoid"``: Glow's (Kingma & Dhariwal's code): the density direction multiplies by
      :math:`e^{-s} = \sigma(\tilde s + 2) \in (0, 1)`, so the inverse never expands. An input
      far from the training data then cannot be amplified coupling after coupling, which
      with ``"tanh"`` can give it a log-density of :math:`-10^{10}`
      (``benchmarks/flows/RESULTS.md``, Glow on MNIST).

    Other arguments as in :class:`CouplingTransform`.
    """

    n_params = 2
    scales = ("tanh", "sigmoid")

    def __init__(
        self,
        mask: Tensor,
        conditioner: nn.Module | None = None,
        *,
        bound: float = 3.0,
        scale: str = "tanh",
        **kwargs: object,
    ) -> None:
        super().__init__(mask, conditioner, **kwargs)
        if not bound > 0:
            raise ValueError(f"bound must be positive, got {bound}")
        if scale not in self.scales:
            raise ValueError(f"scale must be one of {self.scales}, got {scale!r}")
        self.bound = float(bound)
        self.scale = scale

    def _g(
        self, x: Tensor, params: Tensor, inverse: bool, out: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        dim = -len(self._event_shape)
        sigmoid = self.scale == "sigmoid"
        return affine_map(x, params, inverse, self.bound, dim, out, sigmoid=sigmoid)


class ScaleTransform(Bijector):
    r"""NICE's diagonal scaling layer :math:`y = x \odot e^{s}`, :math:`\log|\det J| = \sum s`,
    with a learned :math:`s` of the event shape (zero at the start)."""

    def __init__(self, *event_shape: int, cache_size: int = 1) -> None:
        super().__init__(cache_size=cache_size)
        if not event_shape:
            raise ValueError("event_shape: give at least one dimension")
        for n in event_shape:
            check_dim("event_shape", n)
        self.domain = constraints.independent(constraints.real, len(event_shape))
        self.codomain = self.domain
        self.log_scale = nn.Parameter(torch.zeros(event_shape))

    @property
    def event_shape(self) -> tuple[int, ...]:
        return tuple(self.log_scale.shape)

    def _ladj(self, x: Tensor, sign: int) -> Tensor:
        batch = x.shape[: x.dim() - self.log_scale.dim()]
        return (sign * self.log_scale.sum()).expand(batch)

    def _call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x * self.log_scale.exp(), self._ladj(x, 1)

    def _inverse_and_ladj(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return y * torch.exp(-self.log_scale), self._ladj(y, -1)
