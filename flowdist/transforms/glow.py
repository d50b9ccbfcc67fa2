r"""Glow's building blocks (Kingma & Dhariwal, 2018): activation normalisation, invertible
:math:`1\times1` convolutions, the squeeze (space-to-depth) and the multi-scale architecture.

For an image event :math:`(C, H, W)` the first two act on channels, identically at every
pixel, so their log-determinants carry a factor :math:`H W`:

.. math::
    \text{ActNorm:}\; y = x \odot e^{s} + b, \quad \log|\det J| = H W \textstyle\sum_c s_c;
    \qquad
    1\times1\text{ conv:}\; y_{:,h,w} = W x_{:,h,w}, \quad \log|\det J| = H W \log|\det W|.

The LU form parameterises :math:`W = P L (U + \operatorname{diag}(\sigma \odot e^{\ell}))` with a
fixed permutation :math:`P` and signs :math:`\sigma`, unit lower-triangular :math:`L` and strictly
upper-triangular :math:`U`, so that :math:`\log|\det W| = \sum_c \ell_c` costs :math:`O(C)`.
Vector events :math:`(C,)` are the case :math:`H W = 1`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributions import Transform, constraints

from flowdist.transforms.base import Bijector, call_and_ladj, check_dim
from flowdist.transforms.coupling import _check_image_shape
from flowdist.transforms.permutation import StatelessBijector

__all__ = [
    "ActNormTransform",
    "Invertible1x1ConvTransform",
    "MultiscaleTransform",
    "SqueezeTransform",
]


def _check_event_shape(event_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(event_shape)
    if len(shape) not in (1, 3):
        raise ValueError(f"event_shape must be (C,) or (C, H, W), got {shape}")
    for n in shape:
        check_dim("event_shape", n)
    return shape


class _ChannelTransform(Bijector):
    """Shared plumbing of the channel-wise transforms: event shape (C,) or (C, H, W), the
    pixel count :math:`H W` and the batch shape of an input."""

    def __init__(self, event_shape: Sequence[int], cache_size: int) -> None:
        super().__init__(cache_size=cache_size)
        self._event_shape = _check_event_shape(event_shape)
        self.domain = constraints.independent(constraints.real, len(self._event_shape))
        self.codomain = self.domain
        self.pixels = math.prod(self._event_shape[1:])

    @property
    def event_shape(self) -> tuple[int, ...]:
        return self._event_shape

    def _batch(self, x: Tensor) -> torch.Size:
        return x.shape[: x.dim() - len(self._event_shape)]


class ActNormTransform(_ChannelTransform):
    r"""Per-channel affine map :math:`y = x \odot e^{s} + b` with data-dependent initialisation.

    The first batch to pass through, in either direction, sets :math:`(s, b)` so that this
    batch comes out with zero mean and unit variance per channel; afterwards they are ordinary
    parameters. The flag ``initialized`` is a registered buffer: it survives ``state_dict``,
    ``deepcopy`` and ``pickle``.

    Args:
        event_shape: ``C`` for vectors, or ``C, H, W`` for images.
        eps: added to the variance in the initialisation.
    """

    def __init__(self, *event_shape: int, eps: float = 1e-6, cache_size: int = 1) -> None:
        super().__init__(event_shape, cache_size)
        shape = (event_shape[0],) + (1,) * (len(self._event_shape) - 1)
        self.log_scale = nn.Parameter(torch.zeros(shape))
        self.shift = nn.Parameter(torch.zeros(shape))
        self.register_buffer("initialized", torch.tensor(False))
        self.eps = eps
        self._ready = False  # mirror of `initialized`, read without a device sync

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        self._ready = False
        super()._load_from_state_dict(*args, **kwargs)

    def _initialize(self, x: Tensor, inverse: bool) -> None:
        if self._ready:
            return
        self._ready = bool(self.initialized)
        if self._ready or x.numel() == 0:  # an empty batch has no statistics: wait for data
            return
        with torch.no_grad():
            dims = [d for d in range(x.dim()) if d != x.dim() - len(self._event_shape)]
            var, mean = torch.var_mean(x, dim=dims, correction=0)
            log_std = 0.5 * torch.log(var + self.eps)
            if inverse:  # (y - b) e^{-s} standardised: s = log std, b = mean
                log_scale, shift = log_std, mean
            else:  # x e^{s} + b standardised: s = -log std, b = -mean e^{s}
                log_scale, shift = -log_std, -mean * torch.exp(-log_std)
            self.log_scale.copy_(log_scale.reshape(self.log_scale.shape))
            self.shift.copy_(shift.reshape(self.shift.shape))
            self.initialized.fill_(True)
        self._ready = True

    def _ladj(self, x: Tensor, sign: int) -> Tensor:
        return (sign * self.pixels * self.log_scale.sum()).expand(self._batch(x))

    def _call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        self._initialize(x, inverse=False)
        return torch.addcmul(self.shift, x, self.log_scale.exp()), self._ladj(x, 1)

    def _inverse_and_ladj(self, y: Tensor) -> tuple[Tensor, Tensor]:
        self._initialize(y, inverse=True)
        inv_scale = torch.exp(-self.log_scale)  # (y - b) e^{-s} in one pass over y
        return torch.addcmul(-self.shift * inv_scale, y, inv_scale), self._ladj(y, -1)


def _random_rotation(n: int, generator: torch.Generator | None) -> Tensor:
    q, r = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=torch.float64))
    return (q * torch.sign(torch.diagonal(r))).to(torch.get_default_dtype())


class Invertible1x1ConvTransform(_ChannelTransform):
    r"""Glow's invertible :math:`1\times1` convolution :math:`y_{:,h,w} = W x_{:,h,w}`.

    Args:
        event_shape: ``C`` for vectors (then a general invertible linear map), or ``C, H, W``.
        lu: the LU parameterisation (default), whose log-det is :math:`H W \sum_c \ell_c`;
            otherwise a plain weight whose log-det is :math:`H W \log|\det W|` by ``slogdet``.
        generator: random generator of the initial weight, a random rotation (Glow).
    """

    _volatile = (*_ChannelTransform._volatile, "_matrix_cache")

    def __init__(
        self,
        *event_shape: int,
        lu: bool = True,
        generator: torch.Generator | None = None,
        cache_size: int = 1,
    ) -> None:
        super().__init__(event_shape, cache_size)
        c = self._event_shape[0]
        w = _random_rotation(c, generator)
        self.lu = lu
        if lu:
            p, lower, upper = torch.linalg.lu(w)
            s = torch.diagonal(upper)
            self.register_buffer("permutation", p)
            self.register_buffer("diag_sign", torch.sign(s))
            self.lower = nn.Parameter(torch.tril(lower, -1))
            self.upper = nn.Parameter(torch.triu(upper, 1))
            self.log_diag = nn.Parameter(s.abs().log())
        else:
            self.weight = nn.Parameter(w)
        self._matrix_cache: tuple[tuple[Any, ...], dict[bool, Tensor]] | None = None

    def _factors(self) -> tuple[Tensor, Tensor]:
        r"""The unit lower and the upper triangular factors (LU form)."""
        eye = torch.eye(self.lower.shape[0], dtype=self.lower.dtype, device=self.lower.device)
        lower = torch.tril(self.lower, -1) + eye
        upper = torch.triu(self.upper, 1) + torch.diag(self.diag_sign * self.log_diag.exp())
        return lower, upper

    def _compute_matrix(self, inverse: bool) -> Tensor:
        if not self.lu:
            return torch.linalg.inv(self.weight) if inverse else self.weight
        lower, upper = self._factors()
        if not inverse:
            return self.permutation @ lower @ upper
        eye = torch.eye(lower.shape[0], dtype=lower.dtype, device=lower.device)
        lower_inv = torch.linalg.solve_triangular(lower, eye, upper=False, unitriangular=True)
        return torch.linalg.solve_triangular(upper, lower_inv @ self.permutation.T, upper=True)

    def _matrix(self, inverse: bool) -> Tensor:
        r""":math:`W` or :math:`W^{-1}` (by triangular solves in the LU form).

        Without a graph to build (under ``torch.no_grad()``, or with frozen parameters) they
        are cached per parameter version, under the key of the transform's own cache (every
        parameter's version counter and storage, and the optimizer step count): repeated
        sampling or evaluation reuses them, and an optimizer step or an in-place update
        recomputes them."""
        if torch.is_grad_enabled() and any(p.requires_grad for p in self.parameters()):
            return self._compute_matrix(inverse)
        key = self._key()
        if self._matrix_cache is None or self._matrix_cache[0] != key:
            self._matrix_cache = (key, {})
        store = self._matrix_cache[1]
        if inverse not in store:
            store[inverse] = self._compute_matrix(inverse)
        return store[inverse]

    def matrix(self) -> Tensor:
        """The weight :math:`W`."""
        return self._matrix(inverse=False)

    def inverse_matrix(self) -> Tensor:
        r""":math:`W^{-1}`."""
        return self._matrix(inverse=True)

    def _log_det(self) -> Tensor:
        if self.lu:
            return self.log_diag.sum()
        return torch.linalg.slogdet(self.weight).logabsdet

    def _apply_matrix(self, w: Tensor, x: Tensor) -> Tensor:
        r""":math:`y_{:,h,w} = W x_{:,h,w}` as one matrix product over the channels (faster on
        CPU than ``conv2d`` with a :math:`1\times1` kernel)."""
        if len(self._event_shape) == 1:
            return x @ w.T
        return torch.einsum("ij,...jhw->...ihw", w, x)

    def _call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        ladj = (self.pixels * self._log_det()).expand(self._batch(x))
        return self._apply_matrix(self.matrix(), x), ladj

    def _inverse_and_ladj(self, y: Tensor) -> tuple[Tensor, Tensor]:
        ladj = (-self.pixels * self._log_det()).expand(self._batch(y))
        return self._apply_matrix(self.inverse_matrix(), y), ladj


class SqueezeTransform(StatelessBijector):
    r"""Space-to-depth: :math:`(C, H, W) \to (C f^2, H/f, W/f)`, each :math:`f \times f` block of
    pixels becoming :math:`f^2` channels (channel :math:`c f^2 + i f + j` of pixel
    :math:`(h, w)` is input :math:`(c, h f + i, w f + j)`). Volume preserving.

    Args:
        event_shape: ``C, H, W``, with :math:`H` and :math:`W` divisible by ``factor``.
        factor: :math:`f` (default 2).
    """

    domain = constraints.independent(constraints.real, 3)
    codomain = constraints.independent(constraints.real, 3)

    def __init__(self, *event_shape: int, factor: int = 2) -> None:
        super().__init__()
        check_dim("factor", factor)
        c, h, w = _check_image_shape(event_shape)
        if h % factor or w % factor:
            raise ValueError(
                f"event_shape: SqueezeTransform needs H and W divisible by factor={factor}, "
                f"got (C, H, W) = {(c, h, w)}"
            )
        self._event_shape = (c, h, w)
        self.factor = factor

    @property
    def event_shape(self) -> tuple[int, ...]:
        return self._event_shape

    def forward_shape(self, shape: Sequence[int]) -> torch.Size:
        *batch, c, h, w = shape
        f = self.factor
        return torch.Size((*batch, c * f * f, h // f, w // f))

    def inverse_shape(self, shape: Sequence[int]) -> torch.Size:
        *batch, c, h, w = shape
        f = self.factor
        return torch.Size((*batch, c // (f * f), h * f, w * f))

    def _call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        *batch, c, h, w = x.shape
        f = self.factor
        y = x.reshape(*batch, c, h // f, f, w // f, f)
        n = len(batch)
        y = y.permute(*range(n), n, n + 2, n + 4, n + 1, n + 3)
        return y.reshape(self.forward_shape(x.shape)), x.new_zeros(batch)

    def _inverse_and_ladj(self, y: Tensor) -> tuple[Tensor, Tensor]:
        *batch, c, h, w = y.shape
        f = self.factor
        x = y.reshape(*batch, c // (f * f), f, f, h, w)
        n = len(batch)
        x = x.permute(*range(n), n, n + 3, n + 1, n + 4, n + 2)
        return x.reshape(self.inverse_shape(y.shape)), y.new_zeros(batch)


def _check_shape_preserving(name: str, transforms: Sequence[Transform], shape: tuple) -> None:
    for i, t in enumerate(transforms):
        if not (isinstance(t, Transform) and isinstance(t, nn.Module)):
            raise TypeError(
                f"{name}[{i}] must be a Transform and an nn.Module (e.g. a Bijector), "
                f"got {type(t).__name__}"
            )
        if tuple(t.forward_shape(shape)) != shape:
            raise ValueError(
                f"{name}[{i}] must preserve the shape {shape}, maps it to "
                f"{tuple(t.forward_shape(shape))}"
            )


class MultiscaleTransform(Bijector):
    r"""One level of a multi-scale architecture (Glow, RealNVP) on :math:`(C, H, W)`: the
    first ``kept`` channels are squeezed to :math:`(4\,\text{kept}, H/2, W/2)`, pass through
    ``transforms`` (which preserve that shape, and may contain a deeper
    :class:`MultiscaleTransform`), are unsqueezed and pass through ``outer`` (bijectors on
    :math:`(\text{kept}, H, W)`, e.g. RealNVP's checkerboard couplings); the other
    :math:`C - \text{kept}` channels are factored out: they pass through unchanged, i.e. they
    go straight to the base distribution.

    .. math::
        f(x) = \big(o(S^{-1}(g(S(x_{1:k})))),\; x_{k+1:C}\big), \qquad
        \log|\det J_f(x)| = \log|\det J_g(S(x_{1:k}))| + \log|\det J_o|.

    Args:
        event_shape: ``C, H, W``.
        transforms: bijectors on the squeezed shape, applied in order.
        kept: channels kept (all by default).
        factor: the squeeze factor.
        outer: bijectors on the unsqueezed kept channels, applied in order after the others.
    """

    domain = constraints.independent(constraints.real, 3)
    codomain = constraints.independent(constraints.real, 3)

    def __init__(
        self,
        event_shape: Sequence[int],
        transforms: Sequence[Transform],
        *,
        kept: int | None = None,
        factor: int = 2,
        outer: Sequence[Transform] = (),
        cache_size: int = 1,
    ) -> None:
        super().__init__(cache_size=cache_size)
        c, h, w = _check_image_shape(event_shape)
        kept = c if kept is None else kept
        if not (isinstance(kept, int) and 1 <= kept <= c):
            raise ValueError(f"kept must be an integer in 1..{c}, got {kept!r}")
        self._event_shape = (c, h, w)
        self.kept = kept
        self.squeeze = SqueezeTransform(kept, h, w, factor=factor)
        _check_shape_preserving("transforms", transforms, self.squeeze.output_shape)
        _check_shape_preserving("outer", outer, (kept, h, w))
        self.transforms = nn.ModuleList(transforms)
        self.outer = nn.ModuleList(outer)

    @property
    def event_shape(self) -> tuple[int, ...]:
        return self._event_shape

    def _run(self, x: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        x_k, x_out = x[..., : self.kept, :, :], x[..., self.kept :, :, :]
        ladj = x.new_zeros(x.shape[:-3])

        def through(h: Tensor, transforms: Sequence[Transform]) -> Tensor:
            nonlocal ladj
            for t in reversed(transforms) if inverse else transforms:
                h, l_t = call_and_ladj(t.inv if inverse else t, h, 3)
                ladj = ladj + l_t
            return h

        if inverse:
            x_k = through(x_k, self.outer)
        if self.transforms:  # squeezing around nothing is the identity
            h, _ = self.squeeze.call_and_ladj(x_k, validate=False)  # checked at the boundary
            x_k, _ = self.squeeze.inverse_and_ladj(through(h, self.transforms), validate=False)
        if not inverse:
            x_k = through(x_k, self.outer)
        return torch.cat([x_k, x_out], dim=-3), ladj

    def _call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self._run(x, inverse=False)

    def _inverse_and_ladj(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return self._run(y, inverse=True)
