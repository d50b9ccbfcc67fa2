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
root lies in :math:`[w^\top y - |c|, w^\top y + |c|]`. Newton's method from a starting point on
the side where it converges monotonically (:func:`solve_planar`) solves it to floating-point
tolerance, batched, with no bisection; then :math:`z = y - \hat u\, h(\alpha + b)`. Gradients
flow through one final Newton step taken with autograd on, which gives the
implicit-function-theorem derivative of the root.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import FunctionCtx

from flowdist.transforms.base import Bijector, VectorBijector, check_dim

__all__ = ["PlanarStack", "PlanarTransform", "constrain_u", "solve_planar"]


def solve_planar(one_plus_c: Tensor, r: Tensor, *, max_iter: int = 200) -> Tensor:
    r"""Solve :math:`\beta + c \tanh \beta = r` for :math:`\beta` elementwise, given
    :math:`1 + c > 0`.

    :math:`g(\beta) = \beta + c\tanh\beta - r` is strictly increasing (its slope
    :math:`\tanh^2\beta + (1 + c)(1 - \tanh^2\beta)` is positive, and computed in this form it
    stays positive in floating point even as :math:`c \to -1`), with one inflection at
    :math:`\beta = 0`; the root has the sign of :math:`r`. On the root's side of the inflection,
    :math:`g` is concave-increasing (:math:`c\,r > 0`) or convex-increasing (:math:`c\,r < 0`), so
    Newton's method started on the side where the tangent never overshoots converges
    monotonically, with no bracketing or bisection: from :math:`\beta_0 = 0` when :math:`c \ge 0`
    (:math:`g(0) = -r`), and from :math:`\beta_0 = r - c\,\operatorname{sign} r` when :math:`c < 0`
    (then :math:`g(\beta_0)` has the sign of :math:`r`). Runs without autograd and stops when every
    step is below a few ulps.
    """
    eps = torch.finfo(r.dtype).eps
    with torch.no_grad():
        c = one_plus_c - 1
        beta = torch.where(c >= 0, torch.zeros_like(r), r - c * torch.sign(r))
        for i in range(max_iter):
            t = torch.tanh(beta)
            step = torch.addcmul(beta - r, c, t).div_(_det(t, one_plus_c))
            beta.sub_(step)
            if i % 2 and bool((step.abs_() <= (beta.abs() + 1).mul_(4 * eps)).all()):
                break
    return beta


def _det(t: Tensor, one_plus_c: Tensor) -> Tensor:
    r""":math:`1 + c\,(1 - t^2)` as :math:`t^2 + (1 + c)(1 - t^2)`: a sum of non-negative terms,
    accurate (and positive) when :math:`c \to -1`, where :math:`1 + c` is tiny."""
    t_sq = t * t
    return torch.addcmul(t_sq, one_plus_c, 1 - t_sq)


def _dot(x: Tensor, w: Tensor) -> Tensor:
    """:math:`x^\\top w` over the last dimension (a matrix-vector product when ``w`` is 1-D)."""
    return x @ w if w.dim() == 1 else torch.linalg.vecdot(x, w)


def constrain_u(u: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    r""":math:`\hat u = u + (m(w^\top u) - w^\top u)\, w / \lVert w \rVert^2` and
    :math:`1 + w^\top \hat u`, over the last dimension (``u``, ``w`` of shape ``(..., d)``).

    :math:`1 + w^\top \hat u = 1 + m(w^\top u) = \operatorname{softplus}(w^\top u)` is returned in
    that form (floored at the smallest normal number), not as :math:`1 + w^\top\hat u` rounded:
    that keeps it positive, so the step stays invertible in floating point, even for
    :math:`w^\top u \ll 0`. For :math:`w = 0` (or :math:`\lVert w \rVert^2` below the smallest
    normal number) :math:`\hat u = u`, the step is a translation and it is exactly 1.
    """
    tiny = torch.finfo(w.dtype).tiny
    wu, w_sq = _dot(u, w), _dot(w, w)
    softplus = F.softplus(wu)
    nonzero = w_sq >= tiny  # a subnormal |w|^2 counts as w = 0: u is then left as it is
    shift = torch.where(nonzero, (softplus - 1 - wu) / w_sq.clamp_min(tiny), 0.0)
    u_hat = u + shift.unsqueeze(-1) * w
    one_plus_c = torch.where(nonzero, softplus.clamp_min(tiny), 1 + _dot(u_hat, w))
    return u_hat, one_plus_c


class PlanarTransform(VectorBijector):
    r"""Planar flow step :math:`f(z) = z + \hat u \tanh(w^\top z + b)` on :math:`\mathbb R^d`.

    Args:
        dim: the event size :math:`d`.
        generator: random generator for the initial parameters, drawn uniformly in
            :math:`\pm 1/\sqrt d` (as in Pyro).
        cache_size: 1 (default) keeps the latest forward/inverse pair; see
            :mod:`flowdist.transforms.base` for why this is safe across optimizer steps.
    """

    param_names = ("u", "w", "b")

    @classmethod
    def param_shapes(cls, dim: int) -> tuple[tuple[int, ...], ...]:
        return (dim,), (dim,), ()

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (self.u.shape[-1],)

    def u_hat(self) -> tuple[Tensor, Tensor]:
        r"""The constrained :math:`\hat u` and :math:`1 + w^\top \hat u > 0`."""
        return constrain_u(self.u, self.w)

    def _call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        u_hat, one_plus_c = self.u_hat()
        t = torch.tanh(_dot(x, self.w) + self.b)
        y = torch.addcmul(x, t.unsqueeze(-1), u_hat)
        return y, torch.log(_det(t, one_plus_c))

    def _inverse_and_ladj(self, y: Tensor) -> tuple[Tensor, Tensor]:
        u_hat, one_plus_c = self.u_hat()
        return _planar_inverse(y, u_hat, one_plus_c, self.w, self.b)


def _planar_inverse(
    y: Tensor, u_hat: Tensor, one_plus_c: Tensor, w: Tensor, b: Tensor
) -> tuple[Tensor, Tensor]:
    r"""Invert one planar step: :math:`x` and :math:`\log|\det \partial x / \partial y|`."""
    t, log_det = _solve_tanh(_dot(y, w) + b, one_plus_c)
    return torch.addcmul(y, t.unsqueeze(-1), u_hat, value=-1), -log_det


def _solve_tanh(r: Tensor, one_plus_c: Tensor) -> tuple[Tensor, Tensor]:
    r"""Given :math:`r = w^\top y + b`, the root :math:`\beta = w^\top x + b` as
    :math:`t = \tanh\beta`, and the forward :math:`\log|\det|` at :math:`x`. When gradients
    are needed, one Newton step is taken with autograd on at the (detached) root: its derivative
    is the implicit-function-theorem derivative of the root."""
    beta = solve_planar(one_plus_c, r)
    t = torch.tanh(beta)
    if torch.is_grad_enabled() and (r.requires_grad or one_plus_c.requires_grad):
        beta = beta - (beta + (one_plus_c - 1) * t - r) / _det(t, one_plus_c)
        t = torch.tanh(beta)
    return t, torch.log(_det(t, one_plus_c))


class _PlanarStackFunction(torch.autograd.Function):
    r"""Forward and hand-derived backward of :math:`K` planar steps, with events stored as
    columns (``(d, N)``): every product is then a contiguous matrix-vector product.

    With :math:`a = w^\top z + b`, :math:`t = \tanh a`, :math:`s = 1 - t^2`,
    :math:`y = z + \hat u t`, :math:`\delta = t^2 + (1 + c)s` and :math:`\ell = \log \delta`,
    the adjoints are :math:`\bar a = s(\hat u^\top \bar y - 2 c t \bar\ell / \delta)`,
    :math:`\bar z = \bar y + w \bar a`, :math:`\bar{\hat u} = \sum_n \bar y_n t_n`,
    :math:`\bar w = \sum_n \bar a_n z_n`, :math:`\bar b = \sum_n \bar a_n`,
    :math:`\overline{1 + c} = \sum_n \bar\ell_n s_n / \delta_n`.
    """

    @staticmethod
    def forward(
        ctx: FunctionCtx, z: Tensor, u_hat: Tensor, w: Tensor, b: Tensor, one_plus_c: Tensor
    ) -> tuple[Tensor, Tensor]:
        zs, ts = [], []
        ladj = z.new_zeros(z.shape[1])
        for k in range(u_hat.shape[0]):
            zs.append(z)
            t = torch.tanh_((w[k] @ z).add_(b[k]))
            ts.append(t)
            ladj.add_(torch.log_(_det(t, one_plus_c[k])))
            z = torch.addr(z, u_hat[k], t)
        ctx.save_for_backward(u_hat, w, one_plus_c, torch.stack(zs), torch.stack(ts))
        return z, ladj

    @staticmethod
    def backward(ctx: FunctionCtx, gy: Tensor | None, gl: Tensor | None) -> tuple[Tensor, ...]:
        if torch.is_grad_enabled():  # backward(create_graph=True): a higher derivative
            raise RuntimeError(
                "PlanarStack's fused gradient is first-order only; for higher derivatives "
                "use separate PlanarTransform steps (PlanarStack.step(k) shares the parameters)"
            )
        u_hat, w, one_plus_c, zs, ts = ctx.saved_tensors
        gz = torch.zeros_like(zs[0]) if gy is None else gy.clone()
        gl = torch.zeros_like(ts[0]) if gl is None else gl
        g_uhat, g_w = torch.empty_like(u_hat), torch.empty_like(w)
        g_b, g_opc = torch.empty_like(one_plus_c), torch.empty_like(one_plus_c)
        for k in reversed(range(u_hat.shape[0])):
            t = ts[k]
            s = 1 - t * t
            gl_det = gl / _det(t, one_plus_c[k])
            ga = s * ((u_hat[k] @ gz) - 2 * (one_plus_c[k] - 1) * t * gl_det)
            g_uhat[k] = gz @ t
            g_w[k] = zs[k] @ ga
            g_b[k] = ga.sum()
            g_opc[k] = (s * gl_det).sum()
            gz.addr_(w[k], ga)
        return gz, g_uhat, g_w, g_b, g_opc


class PlanarStack(Bijector):
    r"""``K`` planar steps :math:`f_K \circ \dots \circ f_1` as one bijector, parameters stacked
    (``u``, ``w``: ``(K, d)``, ``b``: ``(K,)``).

    Mathematically identical to ``K`` :class:`PlanarTransform` steps (:meth:`step` returns
    them), but the forward pass and its gradient run as one fused kernel with a hand-derived
    backward, which is several times faster than autograd through ``K`` separate steps. The
    fused gradient is first-order only: for higher derivatives (e.g. Hessian-vector products)
    use separate :class:`PlanarTransform` steps. The inverse solves the steps in reverse order.
    """

    param_names = ("u", "w", "b")

    def __init__(
        self,
        dim: int,
        K: int,
        *,
        generator: torch.Generator | None = None,
        cache_size: int = 1,
    ) -> None:
        super().__init__(cache_size=cache_size)
        check_dim("dim", dim)
        check_dim("K", K)
        shapes = ((K, dim), (K, dim), (K,))
        self.init_parameters(shapes, bound=dim**-0.5, generator=generator)

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (self.u.shape[-1],)

    def __len__(self) -> int:
        return self.u.shape[0]

    def step(self, k: int) -> PlanarTransform:
        """The ``k``-th step as a :class:`PlanarTransform` sharing this stack's parameters."""
        return PlanarTransform.from_tensors(self.u[k], self.w[k], self.b[k], cache_size=0)

    def _call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        u_hat, one_plus_c = constrain_u(self.u, self.w)
        d = x.shape[-1]
        z = x.reshape(-1, d).T.contiguous()
        z, ladj = _PlanarStackFunction.apply(z, u_hat, self.w, self.b, one_plus_c)
        return z.T.reshape(x.shape), ladj.reshape(x.shape[:-1])

    def _inverse_and_ladj(self, y: Tensor) -> tuple[Tensor, Tensor]:
        u_hat, one_plus_c = constrain_u(self.u, self.w)
        z = y.reshape(-1, y.shape[-1]).T.contiguous()  # events as columns, as in the forward
        ladj = z.new_zeros(z.shape[1])
        for k in reversed(range(len(self))):
            t, log_det = _solve_tanh(self.w[k] @ z + self.b[k], one_plus_c[k])
            z = torch.addr(z, u_hat[k], t, alpha=-1)
            ladj = ladj - log_det
        return z.T.reshape(y.shape), ladj.reshape(y.shape[:-1])
