r"""The four 2-D test energies of Rezende & Mohamed (2015, Table 1), as unnormalized densities.

Each target is :math:`p(z) = e^{-U(z)} / Z` on :math:`\mathbb R^2`, with

.. math::
    w_1(z) = \sin\!\left(\frac{2\pi z_1}{4}\right), \quad
    w_2(z) = 3\, e^{-\frac12 \left(\frac{z_1 - 1}{0.6}\right)^2}, \quad
    w_3(z) = 3\, \sigma\!\left(\frac{z_1 - 1}{0.3}\right),

.. math::
    U_1(z) &= \tfrac12\left(\frac{\lVert z\rVert - 2}{0.4}\right)^2
        - \log\left(e^{-\frac12\left(\frac{z_1 - 2}{0.6}\right)^2}
                  + e^{-\frac12\left(\frac{z_1 + 2}{0.6}\right)^2}\right), \\
    U_2(z) &= \tfrac12\left(\frac{z_2 - w_1(z)}{0.4}\right)^2 + c(z_1), \\
    U_3(z) &= -\log\left(e^{-\frac12\left(\frac{z_2 - w_1(z)}{0.35}\right)^2}
        + e^{-\frac12\left(\frac{z_2 - w_1(z) + w_2(z)}{0.35}\right)^2}\right) + c(z_1), \\
    U_4(z) &= -\log\left(e^{-\frac12\left(\frac{z_2 - w_1(z)}{0.4}\right)^2}
        + e^{-\frac12\left(\frac{z_2 - w_1(z) + w_3(z)}{0.35}\right)^2}\right) + c(z_1),

the sums of exponentials evaluated with ``logsumexp`` (finite far from the modes).

**Confinement** :math:`c(z_1)`. As printed, :math:`U_2`–:math:`U_4` do not depend on
:math:`z_1` except through the periodic or bounded :math:`w_i`, so for every :math:`z_1` the
:math:`z_2`-integral of :math:`e^{-U}` is the same positive constant and
:math:`\int_{\mathbb R^2} e^{-U} = \infty`: over a box of width :math:`2L` the integral grows
like :math:`2L`, i.e. :math:`\log Z` grows by :math:`\log 2` each time the width doubles, and
reverse KL against them has no minimiser (:math:`q` can always lower it by spreading along
:math:`z_1`). We add

.. math::
    c(z_1) = \tfrac12\left(\frac{(|z_1| - 4)_+}{s}\right)^2, \qquad s = 0.5,

which is **exactly zero** on the paper's window :math:`[-4, 4]^2` (so the density there is the
paper's, unchanged up to the constant :math:`Z`), continuously differentiable (gradient-based
fitting sees no kink) and a Gaussian tail of scale :math:`s` outside. The alternative
:math:`\tfrac12 (z_1/4)^8` changes the window's density by up to a factor :math:`e^{-1/2}` at
:math:`|z_1| = 4` (and by 5% already at :math:`|z_1| = 3`), which this choice avoids. The price
is the mass the tails carry outside the window, :math:`s\sqrt{2\pi}/(8 + s\sqrt{2\pi}) \approx
13.5\%` for all three.

**Partition functions.** Because the :math:`z_2`-integral of :math:`e^{-U}` is a constant
:math:`A` for :math:`U_2`–:math:`U_4` (:math:`A = 0.4\sqrt{2\pi}`, :math:`0.7\sqrt{2\pi}`,
:math:`0.75\sqrt{2\pi}`), :math:`Z = A\,(8 + s\sqrt{2\pi})` in closed form; :math:`U_1` (a ring,
normalisable as printed) has no closed form, and its constant was obtained with
:func:`quadrature_log_partition` at float64. The tests check every constant against quadrature
converged in box size and grid step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "CONFINEMENT_SCALE",
    "TARGETS",
    "U1",
    "U2",
    "U3",
    "U4",
    "WINDOW",
    "Energy2D",
    "confinement",
    "quadrature_log_partition",
]

#: The half-width of the paper's plotting window :math:`[-4, 4]^2`.
WINDOW = 4.0
#: The scale :math:`s` of the confinement's Gaussian tail outside the window.
CONFINEMENT_SCALE = 0.5

_SQRT_2PI = math.sqrt(2 * math.pi)
# Integral of exp(-c(z1)) over the real line: the window's width plus the two half-Gaussians.
_CONFINED_LENGTH = 2 * WINDOW + CONFINEMENT_SCALE * _SQRT_2PI
# U1's log Z, from quadrature_log_partition(U1.energy, half_width=8, step=0.005) at float64
# (converged to ~1e-14 in box size and step; see tests/test_targets.py).
_LOG_Z_U1 = 1.8775016261097068


def _check_z(z: object) -> Tensor:
    if not isinstance(z, Tensor):
        raise TypeError(f"z must be a torch.Tensor, got {type(z).__name__}")
    if not z.is_floating_point():
        raise TypeError(f"z must be a floating-point tensor, got dtype {z.dtype}")
    if z.dim() == 0 or z.shape[-1] != 2:
        raise ValueError(f"z must have shape (..., 2), got {tuple(z.shape)}")
    return z


def _gauss(x: Tensor, scale: float) -> Tensor:
    r""":math:`-\frac12 (x / \text{scale})^2`, the log of an unnormalised Gaussian bump."""
    return -0.5 * (x / scale) ** 2


def _neg_log_sum_exp(a: Tensor, b: Tensor) -> Tensor:
    r""":math:`-\log(e^a + e^b)`, stable for very negative ``a`` and ``b``."""
    return -torch.logaddexp(a, b)


def _w1(z1: Tensor) -> Tensor:
    return torch.sin(2 * math.pi * z1 / 4)


def confinement(z1: Tensor) -> Tensor:
    r""":math:`c(z_1) = \frac12 \big((|z_1| - 4)_+ / s\big)^2`: zero on the window, a Gaussian tail
    of scale :math:`s` = :data:`CONFINEMENT_SCALE` outside it."""
    return 0.5 * ((z1.abs() - WINDOW).clamp_min(0) / CONFINEMENT_SCALE) ** 2


def _u1(z1: Tensor, z2: Tensor) -> Tensor:
    ring = 0.5 * ((torch.hypot(z1, z2) - 2) / 0.4) ** 2
    return ring + _neg_log_sum_exp(_gauss(z1 - 2, 0.6), _gauss(z1 + 2, 0.6))


def _u2(z1: Tensor, z2: Tensor) -> Tensor:
    return 0.5 * ((z2 - _w1(z1)) / 0.4) ** 2


def _u3(z1: Tensor, z2: Tensor) -> Tensor:
    d = z2 - _w1(z1)
    w2 = 3 * torch.exp(_gauss(z1 - 1, 0.6))
    return _neg_log_sum_exp(_gauss(d, 0.35), _gauss(d + w2, 0.35))


def _u4(z1: Tensor, z2: Tensor) -> Tensor:
    d = z2 - _w1(z1)
    w3 = 3 * torch.sigmoid((z1 - 1) / 0.3)
    return _neg_log_sum_exp(_gauss(d, 0.4), _gauss(d + w3, 0.35))


@dataclass(frozen=True)
class Energy2D:
    r"""An unnormalized density :math:`p(z) = e^{-U(z)}/Z` on :math:`\mathbb R^2`.

    Attributes:
        name: ``"U1"`` … ``"U4"``.
        confined: whether :math:`U` adds the :func:`confinement` :math:`c(z_1)` to the paper's
            printed energy (needed for :math:`U_2`–:math:`U_4` to be normalisable).
    """

    name: str
    _printed: Callable[[Tensor, Tensor], Tensor]
    confined: bool
    _log_z: float

    def printed_energy(self, z: Tensor) -> Tensor:
        """The energy exactly as printed in the paper's Table 1 (without confinement)."""
        z = _check_z(z)
        return self._printed(z[..., 0], z[..., 1])

    def energy(self, z: Tensor) -> Tensor:
        r""":math:`U(z)` for ``z`` of shape ``(..., 2)``; returns shape ``z.shape[:-1]``."""
        u = self.printed_energy(z)
        return u + confinement(z[..., 0]) if self.confined else u

    def unnormalized_log_prob(self, z: Tensor) -> Tensor:
        r""":math:`-U(z) = \log p(z) + \log Z`."""
        return -self.energy(z)

    def log_partition(self) -> float:
        r""":math:`\log Z = \log \int_{\mathbb R^2} e^{-U(z)}\, dz` (a precomputed constant)."""
        return self._log_z

    def log_prob(self, z: Tensor) -> Tensor:
        r"""The normalised :math:`\log p(z) = -U(z) - \log Z`."""
        return -self.energy(z) - self._log_z

    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        step: float = 0.02,
        half_width: float = 8.0,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        r"""``n`` independent draws from :math:`p`, exact up to a grid of step :math:`h`: a cell
        of the grid on :math:`[-L, L]^2` is drawn with probability :math:`\propto e^{-U}` at
        its centre, then a point uniformly within it (so the draws follow the piecewise-constant
        approximation of :math:`p`, off by :math:`O(h^2)`; the mass outside :math:`[-8, 8]^2`
        is below :math:`10^{-13}` for all four targets). Returns shape ``(n, 2)``."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        cells = round(2 * half_width / step)
        axis = (torch.arange(cells, dtype=torch.float64) + 0.5) * step - half_width
        centres = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), dim=-1).reshape(-1, 2)
        probs = torch.softmax(-self.energy(centres), dim=0)
        index = torch.multinomial(probs, n, replacement=True, generator=generator)
        jitter = torch.rand(n, 2, generator=generator, dtype=torch.float64) - 0.5
        return (centres[index] + step * jitter).to(dtype)


def _confined_log_z(ridge_mass: float) -> float:
    return math.log(ridge_mass * _SQRT_2PI * _CONFINED_LENGTH)


U1 = Energy2D("U1", _u1, confined=False, _log_z=_LOG_Z_U1)
U2 = Energy2D("U2", _u2, confined=True, _log_z=_confined_log_z(0.4))
U3 = Energy2D("U3", _u3, confined=True, _log_z=_confined_log_z(0.35 + 0.35))
U4 = Energy2D("U4", _u4, confined=True, _log_z=_confined_log_z(0.4 + 0.35))

#: The four energies by name.
TARGETS: dict[str, Energy2D] = {t.name: t for t in (U1, U2, U3, U4)}


def quadrature_log_partition(
    energy: Callable[[Tensor], Tensor],
    *,
    half_width: float = 8.0,
    step: float = 0.01,
    dtype: torch.dtype = torch.float64,
) -> float:
    r""":math:`\log \int_{[-L, L]^2} e^{-U(z)}\, dz` by the trapezoidal rule on a square grid of
    step :math:`h` (``step``) and half-width :math:`L` (``half_width``), summed in log space.

    For smooth integrands that vanish at the box's edge the trapezoidal rule converges faster
    than any power of :math:`h`; the confinement's second derivative jumps at
    :math:`|z_1| = 4`, which costs :math:`O(h^4)` unless 4 is a grid node (it is when
    :math:`4/h` is an integer).
    """
    n = round(half_width / step)
    if n < 1 or not math.isclose(n * step, half_width, rel_tol=1e-9):
        raise ValueError(f"half_width must be a positive multiple of step, got {half_width}/{step}")
    axis = torch.arange(-n, n + 1, dtype=dtype) * step
    weights = torch.ones_like(axis)
    weights[[0, -1]] = 0.5
    log_w = weights.log()
    partial = []
    for rows in torch.split(torch.arange(axis.numel()), 256):
        z = torch.stack(torch.broadcast_tensors(axis[rows, None], axis[None, :]), dim=-1)
        log_f = -energy(z) + log_w[rows, None] + log_w[None, :]
        partial.append(torch.logsumexp(log_f.flatten(), dim=0))
    return (torch.logsumexp(torch.stack(partial), dim=0) + 2 * math.log(step)).item()
