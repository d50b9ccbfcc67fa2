r"""Property checks and Hypothesis strategies for any :class:`torch.distributions.Transform`.

Point them at your own transform::

    from flowdist.testing import check_transform
    check_transform(MyTransform(), torch.randn(8, 3, dtype=torch.float64))

Each ``check_*`` function raises :class:`AssertionError` with a readable message. What they
verify, for inputs :math:`x` of shape ``batch_shape + event_shape``:

* **inverse**: :math:`f^{-1}(f(x)) = x`;
* **log-det**: the reported :math:`\log|\det J_f(x)|` equals ``slogdet`` of the autograd
  Jacobian of each event (float64), and has shape ``batch_shape``;
* **inverse log-det**: :math:`\log|\det J_{f^{-1}}(f(x))| = -\log|\det J_f(x)|`;
* **dtype**: outputs keep the input's floating dtype;
* **broadcasting**: a new leading batch dimension broadcasts through the transform;
* **normalization** (events of size ≤ 2): the pushed-forward density integrates to one;
* **serialization**: ``state_dict`` round trip, ``pickle`` and ``deepcopy`` (after a forward
  call) give a transform with identical outputs.

:func:`randomize` perturbs every parameter of a module, so that checks run away from the
near-identity initialisation; :func:`batch_shapes`, :func:`float_dtypes` and :func:`seeds` are
Hypothesis strategies.
"""

from __future__ import annotations

import copy
import math
import pickle

import torch
from hypothesis import strategies as st
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, Normal, Transform

from flowdist.transforms.base import Bijector, InverseBijector

__all__ = [
    "batch_shapes",
    "check_broadcasting",
    "check_dtype",
    "check_inverse",
    "check_inverse_log_det",
    "check_log_det",
    "check_normalization",
    "check_serialization",
    "check_transform",
    "float_dtypes",
    "randomize",
    "seeds",
    "tolerances",
]


# ------------------------------------------------------------------------- strategies
def batch_shapes(max_dims: int = 2, max_side: int = 3) -> st.SearchStrategy[tuple[int, ...]]:
    """Batch shapes with up to ``max_dims`` dimensions of size 1 to ``max_side``."""
    return st.lists(st.integers(1, max_side), max_size=max_dims).map(tuple)


def float_dtypes() -> st.SearchStrategy[torch.dtype]:
    """``torch.float32`` or ``torch.float64``."""
    return st.sampled_from([torch.float32, torch.float64])


def seeds() -> st.SearchStrategy[int]:
    """Seeds for :class:`torch.Generator`."""
    return st.integers(0, 2**31 - 1)


def randomize(module: nn.Module, *, generator: torch.Generator, scale: float = 1.0) -> nn.Module:
    r"""Add :math:`\mathcal N(0, \text{scale}^2)` noise to every floating parameter, in place."""
    with torch.no_grad():
        for p in module.parameters():
            if p.is_floating_point():
                noise = torch.randn(p.shape, generator=generator, dtype=torch.float64)
                p.add_(scale * noise.to(p))
    return module


def tolerances(dtype: torch.dtype) -> tuple[float, float]:
    """Default ``(atol, rtol)`` for a dtype."""
    return (1e-8, 1e-6) if dtype == torch.float64 else (2e-4, 2e-4)


# ------------------------------------------------------------------------- helpers
def _event_dim(t: Transform) -> int:
    return t.domain.event_dim


def _forward(t: Transform, x: Tensor) -> tuple[Tensor, Tensor]:
    """``t(x)`` and the log-det summed to batch shape (event of ``max(event_dim, 1)`` dims).

    A flowdist bijector or inverse runs its own pass (``call_and_ladj``): the inverse of a
    stateless bijector would otherwise answer ``log_abs_det_jacobian`` by negating the
    forward's formula, and its own log-det code would go unchecked."""
    if isinstance(t, (Bijector, InverseBijector)):
        y, ladj = t.call_and_ladj(x)
    else:
        y = t(x)
        ladj = t.log_abs_det_jacobian(x, y)
    e = _event_dim(t)
    batch_dims = x.dim() - max(e, 1)
    return y, ladj.reshape(*ladj.shape[:batch_dims], -1).sum(-1) if e == 0 else ladj


def _close(name: str, actual: Tensor, expected: Tensor, atol: float, rtol: float) -> None:
    if actual.shape != expected.shape:
        raise AssertionError(f"{name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}")
    if not torch.isfinite(actual).all():
        raise AssertionError(f"{name}: non-finite values {actual}")
    err = (actual - expected).abs()
    bound = atol + rtol * expected.abs()
    if not (err <= bound).all():
        i = int((err - bound).flatten().argmax())
        raise AssertionError(
            f"{name}: max error {err.max().item():.3g} (at flat index {i}: "
            f"{actual.flatten()[i].item():.8g} vs {expected.flatten()[i].item():.8g}), "
            f"atol={atol:g}, rtol={rtol:g}"
        )


def _tols(x: Tensor, atol: float | None, rtol: float | None) -> tuple[float, float]:
    a, r = tolerances(x.dtype)
    return (a if atol is None else atol), (r if rtol is None else rtol)


# ------------------------------------------------------------------------- checks
def check_inverse(
    t: Transform, x: Tensor, *, atol: float | None = None, rtol: float | None = None
) -> None:
    r""":math:`f^{-1}(f(x)) = x` (computed without the cache: ``y`` is cloned first)."""
    atol, rtol = _tols(x, atol, rtol)
    with torch.no_grad():
        y = t(x).clone()
        _close("inverse(forward(x))", t.inv(y), x, atol, rtol)


def check_log_det(
    t: Transform, x: Tensor, *, atol: float | None = None, rtol: float | None = None
) -> None:
    r"""The log-det equals :math:`\log|\det J|` of the autograd Jacobian, per event, in float64;
    its shape is the batch shape."""
    atol, rtol = _tols(x, atol, rtol)
    e = max(_event_dim(t), 1)
    batch_shape, event_shape = x.shape[: x.dim() - e], x.shape[x.dim() - e :]
    n, m = math.prod(batch_shape), math.prod(event_shape)
    _, ladj = _forward(t, x)
    if ladj.shape != batch_shape:
        raise AssertionError(
            f"log_abs_det_jacobian has shape {tuple(ladj.shape)}, expected the batch shape "
            f"{tuple(batch_shape)} for inputs {tuple(x.shape)}"
        )
    y_size = t.forward_shape(x.shape)
    if math.prod(y_size) != x.numel():
        raise AssertionError(f"forward changes the number of elements: {x.shape} -> {y_size}")
    jac = torch.autograd.functional.jacobian(lambda v: t(v.clone()), x.detach())
    jac = jac.reshape(n, m, n, m)
    blocks = jac[torch.arange(n), :, torch.arange(n), :].to(torch.float64)
    sign, logdet = torch.linalg.slogdet(blocks)
    if (sign == 0).any():
        raise AssertionError("the Jacobian is singular at some input")
    # tolerance grows with the event size for float32 round-off
    _close("log|det J| vs autograd", ladj.detach().reshape(n).double(), logdet, atol * m, rtol)


def check_inverse_log_det(
    t: Transform, x: Tensor, *, atol: float | None = None, rtol: float | None = None
) -> None:
    r""":math:`\log|\det J_{f^{-1}}(y)| = -\log|\det J_f(f^{-1}(y))|` at :math:`y = f(x)`.

    The forward log-det is taken at the inverse's own output :math:`f^{-1}(y)`, not at
    :math:`x`: the identity then holds exactly even where :math:`f^{-1}` is ill-conditioned in
    float32 (how close :math:`f^{-1}(y)` is to :math:`x` is :func:`check_inverse`'s job)."""
    atol, rtol = _tols(x, atol, rtol)
    with torch.no_grad():
        y = t(x).clone()
        x2, ladj_inv = _forward(t.inv, y)
        _, ladj = _forward(t, x2.clone())
        _close("inverse log-det + forward log-det", ladj_inv, -ladj, atol * 10, rtol)


def check_dtype(t: Transform, x: Tensor) -> None:
    """Outputs and log-dets keep the input dtype."""
    with torch.no_grad():
        y, ladj = _forward(t, x)
    for name, value in (("forward", y), ("log-det", ladj), ("inverse", t.inv(y.clone()))):
        if value.dtype != x.dtype:
            raise AssertionError(f"{name} returned {value.dtype} for a {x.dtype} input")


def check_broadcasting(
    t: Transform, x: Tensor, *, atol: float | None = None, rtol: float | None = None
) -> None:
    """A new leading batch dimension broadcasts: transforming ``stack([x, x / 2])`` equals
    transforming ``x`` and ``x / 2`` separately (also for parameters with batch dimensions)."""
    atol, rtol = _tols(x, atol, rtol)
    with torch.no_grad():
        y, ladj = _forward(t, torch.stack([x, x / 2]))
        for i, xi in enumerate((x.clone(), x / 2)):
            yi, ladj_i = _forward(t, xi)
            _close(f"forward of stacked input {i}", y[i], yi, atol, rtol)
            _close(f"log-det of stacked input {i}", ladj[i], ladj_i, atol, rtol)


def check_normalization(
    t: Transform,
    base: Distribution | None = None,
    *,
    limit: float = 8.0,
    points: int = 401,
    atol: float = 2e-3,
) -> None:
    r"""For events of size 1 or 2: :math:`\int p_0(f^{-1}(y))\,|\det J_{f^{-1}}(y)|\,dy = 1`,
    by the trapezoid rule on :math:`[-\text{limit}, \text{limit}]^d` (``base`` defaults to
    :math:`\mathcal N(0, I)` in float64; the transform must be float64)."""
    dtype = torch.float64
    if base is None:
        dim = _dim_of(t)
        base = Independent(Normal(torch.zeros(dim, dtype=dtype), torch.ones(dim, dtype=dtype)), 1)
    dim = base.event_shape[0]
    if dim not in (1, 2):
        raise ValueError(f"check_normalization needs events of size 1 or 2, got {dim}")
    axis = torch.linspace(-limit, limit, points, dtype=dtype)
    grid = torch.cartesian_prod(*[axis] * dim).reshape(-1, dim)
    with torch.no_grad():
        x, ladj = _forward(t.inv, grid)  # summed over the event, also for elementwise ones
        log_q = base.log_prob(x) + ladj
    q = log_q.exp().reshape([points] * dim)
    for _ in range(dim):
        q = torch.trapezoid(q, axis, dim=0)
    if not abs(q.item() - 1) <= atol:
        raise AssertionError(f"the density integrates to {q.item():.6f} on the box, not 1")


def _dim_of(t: Transform) -> int:
    shape = getattr(t, "event_shape", None)
    if shape is None or len(shape) != 1:
        raise ValueError("pass base= for a transform without a 1-D event_shape")
    return shape[0]


def check_serialization(t: Transform, x: Tensor) -> None:
    """``deepcopy`` and ``pickle`` work after a forward call and reproduce the outputs; for
    modules, loading the ``state_dict`` into a copy reproduces them too."""
    with torch.no_grad():
        y, ladj = _forward(t, x)
    copies = {"deepcopy": copy.deepcopy(t), "pickle": pickle.loads(pickle.dumps(t))}
    if isinstance(t, nn.Module):
        other = copy.deepcopy(t)
        with torch.no_grad():
            for p in other.parameters():
                p.add_(1.0)
        other.load_state_dict(t.state_dict())
        copies["state_dict"] = other
    for name, c in copies.items():
        with torch.no_grad():
            y2, ladj2 = _forward(c, x.clone())
        _close(f"{name}: forward", y2, y, 0.0, 0.0)
        _close(f"{name}: log-det", ladj2, ladj, 0.0, 0.0)


def check_transform(
    t: Transform,
    x: Tensor,
    *,
    atol: float | None = None,
    rtol: float | None = None,
    normalization: bool = False,
    serialization: bool = True,
) -> None:
    """Run every check on ``t`` at inputs ``x`` (``batch_shape + event_shape``).

    ``serialization=False`` skips :func:`check_serialization` (for transient transforms whose
    parameters are outputs of a network, which ``deepcopy`` cannot copy);
    ``normalization=True`` adds :func:`check_normalization` (float64, events of size ≤ 2)."""
    check_dtype(t, x)
    check_inverse(t, x, atol=atol, rtol=rtol)
    check_log_det(t, x, atol=atol, rtol=rtol)
    check_inverse_log_det(t, x, atol=atol, rtol=rtol)
    check_broadcasting(t, x, atol=atol, rtol=rtol)
    if serialization:
        check_serialization(t, x)
    if normalization:
        check_normalization(t)
