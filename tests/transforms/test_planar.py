"""Planar and radial steps: the constraint, closed forms, the inverse solver, the fused stack."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from flowdist.testing import randomize
from flowdist.transforms import PlanarStack, PlanarTransform, RadialTransform
from flowdist.transforms.planar import _PlanarStackFunction, constrain_u, solve_planar


@settings(max_examples=50, deadline=None)
@given(
    u=st.lists(st.floats(-1e3, 1e3), min_size=3, max_size=3),
    w=st.lists(st.floats(-1e3, 1e3), min_size=3, max_size=3),
)
def test_constrained_u_keeps_the_step_invertible(u, w):
    u, w = torch.tensor(u, dtype=torch.float64), torch.tensor(w, dtype=torch.float64)
    u_hat, one_plus_c = constrain_u(u, w)
    assert one_plus_c > 0
    torch.testing.assert_close(
        one_plus_c - 1,
        w @ u_hat,
        atol=1e-9 * (1 + u_hat.abs().max()) * (1 + w.abs().max()),
        rtol=1e-9,
    )
    if (w * w).sum() >= torch.finfo(w.dtype).tiny:
        torch.testing.assert_close(one_plus_c, F.softplus(w @ u))  # 1 + m(w^T u)
    else:  # w = 0 within the normal range: a translation, u unchanged
        assert torch.equal(u_hat, u) and one_plus_c == 1


def test_planar_log_det_matches_the_closed_form():
    t = PlanarTransform(3).double()
    x = torch.randn(6, 3, dtype=torch.float64)
    u_hat, _ = t.u_hat()
    h_prime = 1 - torch.tanh(x @ t.w + t.b) ** 2
    expected = torch.log(1 + h_prime * (t.w @ u_hat))
    torch.testing.assert_close(t.log_abs_det_jacobian(x, t(x)), expected)


def test_radial_log_det_matches_the_paper_formula():
    t = RadialTransform(3).double()
    x = torch.randn(6, 3, dtype=torch.float64)
    alpha, beta = t.alpha_beta()
    r = (x - t.z0).norm(dim=-1)
    h = 1 / (alpha + r)
    h_prime = -(h**2)
    expected = 2 * torch.log(1 + beta * h) + torch.log(1 + beta * h + beta * h_prime * r)
    torch.testing.assert_close(t.log_abs_det_jacobian(x, t(x)), expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_solver_reaches_float_tolerance_in_hard_cases(dtype):
    g = torch.Generator().manual_seed(0)
    n = 20000
    c = torch.cat(
        [
            torch.rand(n, generator=g, dtype=torch.float64) * 2 - 0.999999,  # near -1: flat slope
            torch.rand(n, generator=g, dtype=torch.float64) * 100,  # large positive
            torch.tensor([-1 + 1e-6, -1 + 1e-6, 1e6], dtype=torch.float64),
        ]
    ).to(dtype)
    r = torch.cat(
        [
            torch.randn(2 * n, generator=g, dtype=torch.float64) * 30,
            torch.tensor([1e-7, 0.0, 3.0], dtype=torch.float64),
        ]
    ).to(dtype)
    beta = solve_planar(1 + c, r)
    residual = (beta + c * torch.tanh(beta) - r).abs()
    eps = torch.finfo(dtype).eps
    assert (residual <= 8 * eps * (1 + r.abs() + c.abs())).all()


def test_inverse_is_exact_for_extreme_parameters():
    t = PlanarTransform(2).double().with_cache(0)
    with torch.no_grad():
        t.w.copy_(torch.tensor([3.0, -2.0]))
        t.u.copy_(-t.w / (t.w @ t.w) * 50)  # w^T u = -50: u_hat pushed to w^T u_hat ~ -1
    assert t.u_hat()[1] < 0.01
    x = torch.randn(1000, 2, dtype=torch.float64) * 3
    torch.testing.assert_close(t.inv(t(x)), x, atol=1e-9, rtol=1e-9)


def test_large_inputs_do_not_overflow():
    t = PlanarTransform(2)
    x = torch.tensor([[1e30, -1e30], [-3e38, 3e38], [0.0, 0.0]])
    y, ladj = t.call_and_ladj(x)
    assert torch.isfinite(y).all() and torch.isfinite(ladj).all()
    with torch.no_grad():
        t.u.fill_(1e30)  # huge u: softplus path must stay finite
    y, ladj = t.call_and_ladj(torch.randn(3, 2))
    assert torch.isfinite(ladj).all()


def test_inverse_gradients_match_finite_differences():
    torch.manual_seed(0)
    u, w = torch.randn(2, dtype=torch.float64), torch.randn(2, dtype=torch.float64)
    b = torch.randn((), dtype=torch.float64)
    y = torch.randn(4, 2, dtype=torch.float64)

    def inverse(u, w, b, y):
        x, ladj = PlanarTransform.from_tensors(u, w, b, cache_size=0).inverse_and_ladj(y)
        return x, ladj

    inputs = tuple(v.requires_grad_() for v in (u, w, b, y))
    assert torch.autograd.gradcheck(inverse, inputs)


def test_fused_stack_gradients_match_finite_differences():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(3, 6, generator=g, dtype=torch.float64)
    u = torch.randn(4, 3, generator=g, dtype=torch.float64)
    w = torch.randn(4, 3, generator=g, dtype=torch.float64)
    b = torch.randn(4, generator=g, dtype=torch.float64)
    one_plus_c = torch.rand(4, generator=g, dtype=torch.float64) * 3 + 0.1
    inputs = tuple(v.requires_grad_() for v in (z, u, w, b, one_plus_c))
    assert torch.autograd.gradcheck(_PlanarStackFunction.apply, inputs)


def test_stack_equals_its_steps_in_value_and_gradient():
    g = torch.Generator().manual_seed(1)
    stack = randomize(PlanarStack(3, 5, generator=g), generator=g).double()
    x = torch.randn(8, 3, generator=g, dtype=torch.float64)

    y, ladj = stack.call_and_ladj(x)
    (y.square().sum() + ladj.sum()).backward()
    fused = [p.grad.clone() for p in stack.parameters()]
    stack.zero_grad()

    z, total = x, 0.0
    for k in range(len(stack)):
        z, step_ladj = stack.step(k).call_and_ladj(z)
        total = total + step_ladj
    (z.square().sum() + total.sum()).backward()
    torch.testing.assert_close(y, z)
    torch.testing.assert_close(ladj, total)
    for a, b in zip(fused, [p.grad for p in stack.parameters()], strict=True):
        torch.testing.assert_close(a, b)


def test_stack_double_backward_is_a_clear_error():
    stack = PlanarStack(2, 3)
    x = torch.randn(4, 2, requires_grad=True)
    _, ladj = stack.call_and_ladj(x)
    with pytest.raises(RuntimeError, match="first-order only"):
        torch.autograd.grad(ladj.sum(), x, create_graph=True)
    (grad,) = torch.autograd.grad(ladj.sum(), x)  # first order works
    assert torch.isfinite(grad).all()
