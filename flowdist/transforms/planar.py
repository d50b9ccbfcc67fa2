r"""Planar flow step (Rezende & Mohamed, 2015), with an exact inverse.

.. math::
    f(z) = z + \hat u \, h(w^\top z + b), \qquad h = \tanh,

with :math:`\hat u = u + \big(m(w^\top u) - w^\top u\big)\, w / \lVert w\rVert^2` and
:math:`m(a) = -1 + \operatorname{softplus}(a)`, so that :math:`w^\top \hat u > -1` and :math:`f`
is invertible. By the matrix determinant lemma the Jacobian determinant costs :math:`O(d)`:

.. math::
    \log\left|\det \frac{\partial f}{\partial z}\right|
      = \log\left|1 + h'(w^\top z + b)\, w^\top \hat u\right|.

**Inverse.** Writing :math:`\alpha = w^\top z` and :math:`c = w^\top \hat u`, the equation
:math:`y = f(z)` gives :math:`w^\top y = \alpha + c\,h(\alpha + b)`, a scalar equation whose left
side is strictly increasing in :math:`\alpha` (its derivative :math:`1 + c\,h' > 0`) and whose
root lies in :math:`[w^\top y - |c|, w^\top y + |c|]`. A bracketed Newton iteration (bisection
whenever a Newton step leaves the bracket) solves it to floating-point tolerance, batched; then
:math:`z = y - \hat u\, h(\alpha + b)`. Gradients flow through one final Newton step taken with
autograd on, which gives the implicit-function-theorem derivative of the root.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flowdist.transforms.base import Bijector, check_dim

__all__ = ["PlanarTransform", "solve_monotone"]


def solve_monotone(
    g: callable,
    lo: Tensor,
    hi: Tensor,
    init: Tensor,
    *,
    max_iter: int = 100,
) -> Tensor:
    r"""Solve :math:`g(\alpha) = 0` elementwise for a strictly increasing :math:`g` whose root
    lies in :math:`[lo, hi]`, by bracketed Newton (bisection when a step leaves the bracket).

    ``g(alpha)`` returns :math:`(g(\alpha), g'(\alpha))`. Runs without autograd; iterates until
    every element has converged to a few ulps or ``max_iter`` steps (bisection alone halves the
    bracket each step, so 100 steps reach any float64 tolerance).
    """
    eps = torch.finfo(init.dtype).eps
    with torch.no_grad():
        a, lo, hi = init.clamp(lo, hi), lo.clone(), hi.clone()
        for _ in range(max_iter):
            value, slope = g(a)
            lo = torch.where(value < 0, a, lo)
            hi = torch.where(value > 0, a, hi)
            step = a - value / slope
            inside = (step > lo) & (step < hi)
            new = torch.where(inside, step, 0.5 * (lo + hi))
            new = torch.where(value == 0, a, new)
            done = ((new - a).abs() <= 4 * eps * (1 + a.abs())).all()
            a = new
            if done:
                break
    return a


def _dot(x: Tensor, w: Tensor) -> Tensor:
    """:math:`x^\\top w` over the last dimension (a matrix-vector product when ``w`` is 1-D)."""
    return x @ w if w.dim() == 1 else torch.linalg.vecdot(x, w)


class PlanarTransform(Bijector):
    r"""Planar flow step :math:`f(z) = z + \hat u \tanh(w^\top z + b)` on :math:`\mathbb R^d`.

    Args:
        dim: the event size :math:`d`.
        generator: random generator for the initial parameters, drawn uniformly in
            :math:`\pm 1/\sqrt d` (as in Pyro).
        cache_size: 1 (default) keeps the latest forward/inverse pair; see
            :mod:`flowdist.transforms.base` for why this is safe across optimizer steps.
    """

    param_names = ("u", "w", "b")

    def __init__(
        self, dim: int, *, generator: torch.Generator | None = None, cache_size: int = 1
    ) -> None:
        super().__init__(cache_size=cache_size)
        check_dim("dim", dim)
        bound = dim**-0.5
        u, w, b = (torch.rand(n, generator=generator) * 2 * bound - bound for n in (dim, dim, ()))
        self.u = nn.Parameter(u)
        self.w = nn.Parameter(w)
        self.b = nn.Parameter(b)

    @classmethod
    def param_shapes(cls, dim: int) -> tuple[tuple[int, ...], ...]:
        return (dim,), (dim,), ()

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (self.u.shape[-1],)

    def u_hat(self) -> tuple[Tensor, Tensor]:
        r"""The constrained :math:`\hat u` and :math:`w^\top \hat u` (which is :math:`> -1`)."""
        u, w = self.u, self.w
        wu = _dot(u, w).unsqueeze(-1)
        w_sq = _dot(w, w).unsqueeze(-1).clamp_min(torch.finfo(w.dtype).tiny)
        u_hat = u + (F.softplus(wu) - 1 - wu) * w / w_sq
        return u_hat, _dot(u_hat, w)

    def _call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        u_hat, uw = self.u_hat()
        t = torch.tanh(_dot(x, self.w) + self.b)
        y = torch.addcmul(x, t.unsqueeze(-1), u_hat)
        return y, torch.log1p((1 - t * t) * uw)

    def _inverse_and_ladj(self, y: Tensor) -> tuple[Tensor, Tensor]:
        u_hat, c = self.u_hat()
        w, b = self.w, self.b
        s = _dot(y, w)
        c, b = torch.broadcast_tensors(c, b)

        def g(alpha: Tensor) -> tuple[Tensor, Tensor]:
            t = torch.tanh(alpha + b)
            return alpha + c * t - s, 1 + c * (1 - t * t)

        bound = c.abs().detach()
        alpha = solve_monotone(g, s.detach() - bound, s.detach() + bound, s.detach())
        value, slope = g(alpha)  # one differentiable Newton step: implicit gradients
        alpha = alpha - value / slope
        t = torch.tanh(alpha + b)
        x = y - t.unsqueeze(-1) * u_hat
        return x, -torch.log1p((1 - t * t) * c)
