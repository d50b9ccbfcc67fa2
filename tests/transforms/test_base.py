"""The Bijector base class: Transform + nn.Module plumbing and the safe cache."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys

import pyro
import pyro.distributions as pdist
import pytest
import torch
from torch.distributions import Independent, Normal, TransformedDistribution

from flowdist.transforms import (
    AffineCouplingTransform,
    InverseBijector,
    PlanarStack,
    PlanarTransform,
    RadialTransform,
    half_mask,
)


def _base(dim: int = 2) -> Independent:
    return Independent(Normal(torch.zeros(dim), torch.ones(dim)), 1)


def test_drop_in_transformed_distribution_matches_change_of_variables():
    torch.manual_seed(0)
    steps = [PlanarTransform(2), RadialTransform(2), PlanarStack(2, 3)]
    d = TransformedDistribution(_base(), steps)
    x = d.sample((7,))
    # log p(x) = log p0(z0) - sum log|det J|, computed by hand along the inverse path
    expected = torch.zeros(7)
    y = x.clone()
    for t in reversed(steps):
        z = t.inv(y)
        expected -= t.log_abs_det_jacobian(z, y)
        y = z
    expected += _base().log_prob(y)
    torch.testing.assert_close(d.log_prob(x.clone()), expected)


def test_pyro_sample_accepts_transformed_distribution():
    steps = [PlanarTransform(2), PlanarTransform(2)]
    d = pdist.TransformedDistribution(pdist.Normal(torch.zeros(2), 1.0).to_event(1), steps)

    def model():
        return pyro.sample("x", d)

    trace = pyro.poutine.trace(model).get_trace()
    x = trace.nodes["x"]["value"]
    trace.compute_log_prob()
    torch.testing.assert_close(trace.nodes["x"]["log_prob"], d.log_prob(x.clone()))


def test_module_plumbing_parameters_hash_inverse():
    t = PlanarTransform(3)
    assert {n for n, _ in t.named_parameters()} == {"u", "w", "b"}
    assert len({t, PlanarTransform(3)}) == 2  # hashable (sets of modules work)
    assert isinstance(t.inv, InverseBijector) and t.inv.inv is t
    assert t.event_dim == 1 and t.bijective and t.sign == 1
    x = torch.randn(4, 3)
    y, ladj = t.inv.call_and_ladj(t(x).clone())
    torch.testing.assert_close(y, x, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ladj, -t.log_abs_det_jacobian(x, t(x)))


def test_to_changes_dtype_and_clears_cache():
    t = PlanarTransform(2)
    x = torch.randn(3, 2)
    t(x)
    t.to(torch.float64)
    assert t.u.dtype == torch.float64 and t._cache is None
    assert t(x.double()).dtype == torch.float64


def test_cache_is_used_while_parameters_are_unchanged():
    t = PlanarTransform(2)
    x = torch.randn(5, 2)
    y, ladj = t.call_and_ladj(x)
    assert t.inv(y) is x  # no inverse solve for an output the transform produced
    assert t.log_abs_det_jacobian(x, y) is ladj
    x2 = t.inv(y.clone())  # a tensor the user passes in is never answered from the cache
    assert x2 is not x and t(x2) is not y


def test_cache_ignores_a_cached_tensor_modified_in_place():
    t = PlanarTransform(2, generator=torch.Generator().manual_seed(0))
    d = TransformedDistribution(_base(), [t])
    with torch.no_grad():
        x = d.sample((5,))
        x.clamp_(-0.1, 0.1)  # edited after the forward pass cached it
        torch.testing.assert_close(d.log_prob(x), d.log_prob(x.clone()))
        with torch.inference_mode():  # no version counters: not cached at all
            z = torch.randn(5, 2)
            assert t.inv(t(z)) is not z


def test_log_prob_of_a_sample_differentiates_for_score_function_losses():
    # sample() runs under no_grad; its cached log-det has no graph, so log_prob must recompute
    t = PlanarTransform(2, generator=torch.Generator().manual_seed(0))
    d = TransformedDistribution(_base(), [t])
    x = d.sample((64,))
    grads = []
    for value in (x, x.clone()):  # the sample itself (a cache hit) and a copy (a miss)
        t.zero_grad()
        (value.pow(2).sum(-1) * d.log_prob(value)).mean().backward()
        grads.append([p.grad.clone() for p in t.parameters()])
    for hit, miss in zip(*grads, strict=True):
        torch.testing.assert_close(hit, miss)
    assert any(bool(g.abs().sum() > 0) for g in grads[0])
    with torch.no_grad():
        x = d.sample((3,))
        assert t.inv(x) is t.inv(x)  # without gradients the cache still answers


@pytest.mark.parametrize(
    "make_optimizer",
    [
        lambda p: torch.optim.SGD(p, lr=0.1),
        lambda p: torch.optim.Adam(p, lr=0.1, foreach=False),
        lambda p: torch.optim.Adam(p, lr=0.1, foreach=True),
        lambda p: torch.optim.Adam(p, lr=0.1, fused=True),  # fused: no version-counter bump
    ],
    ids=["sgd", "adam", "adam-foreach", "adam-fused"],
)
def test_cache_never_returns_values_from_old_parameters(make_optimizer):
    torch.manual_seed(0)
    t = PlanarTransform(2)
    opt = make_optimizer(t.parameters())
    x = torch.randn(5, 2)
    y, ladj = t.call_and_ladj(x)
    (y.sum() + ladj.sum()).backward()
    opt.step()
    y2, ladj2 = t.call_and_ladj(x)
    fresh = PlanarTransform(2).with_cache(0)
    fresh.load_state_dict(t.state_dict())
    y3, ladj3 = fresh.call_and_ladj(x)
    assert y2 is not y
    torch.testing.assert_close(y2, y3)
    torch.testing.assert_close(ladj2, ladj3)
    assert not torch.allclose(y2, y)


def test_cache_invalidated_by_in_place_update_and_load_state_dict():
    t = PlanarTransform(2)
    x = torch.randn(5, 2)
    y = t(x)
    with torch.no_grad():
        t.w.mul_(2)
    y2 = t(x)
    assert y2 is not y and not torch.allclose(y, y2)
    t.load_state_dict(PlanarTransform(2).state_dict())
    assert t(x) is not y2


@pytest.mark.parametrize("cls", [PlanarTransform, RadialTransform])
def test_deepcopy_and_pickle_after_forward_with_graph(cls):
    t = cls(2)
    x = torch.randn(4, 2, requires_grad=True)
    t(x)  # the cache now holds tensors with autograd history
    for other in (copy.deepcopy(t), pickle.loads(pickle.dumps(t))):
        assert other._cache is None
        torch.testing.assert_close(other(x.detach()), t(x.detach()))


def test_repeated_log_prob_of_the_same_data_can_backpropagate_each_time():
    t = PlanarTransform(2)
    x = torch.randn(3, 2)
    for _ in range(2):  # no optimizer step in between: the second graph must be fresh
        y, ladj = t.inverse_and_ladj(x)
        (y.sum() + ladj.sum()).backward()


def test_with_cache_zero_disables_cache():
    t = PlanarTransform(2).with_cache(0)
    x = torch.randn(3, 2)
    assert t.inv(t(x)) is not x
    with pytest.raises(ValueError, match="cache_size"):
        t.with_cache(2)


@pytest.mark.parametrize(
    ("x", "error", "match"),
    [
        (torch.randn(4, 3), ValueError, r"x must have shape \(\.\.\., 2\)"),
        (torch.randn(4, 2, dtype=torch.float64), TypeError, "x has dtype torch.float64"),
        ([[0.0, 1.0]], TypeError, "x must be a torch.Tensor"),
    ],
)
def test_bad_input_names_the_argument(x, error, match):
    with pytest.raises(error, match=match):
        PlanarTransform(2)(x)


@pytest.mark.parametrize("dim", [0, -1, 2.5, True])
def test_bad_dim(dim):
    with pytest.raises(ValueError, match="dim must be a positive integer"):
        PlanarTransform(dim)


def test_first_optimizer_step_of_a_process_invalidates_the_cache():
    """Regression: the very first optimizer step in a fresh process must count."""
    code = (
        "import torch\n"
        "from flowdist.transforms import PlanarTransform\n"
        "t = PlanarTransform(2)\n"
        "opt = torch.optim.Adam(t.parameters(), lr=0.1, fused=True)\n"
        "x = torch.randn(4, 2)\n"
        "y = t(x)\n"
        "y.sum().backward()\n"
        "opt.step()\n"
        "assert t(x) is not y\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("swap", ["setattr", "load_state_dict_assign", "functional_call"])
def test_cache_sees_parameters_swapped_into_the_module_tree(swap):
    # the coupling's state is its conditioner's parameters: the cache key must follow tensors
    # that replace them, however they are put there
    torch.manual_seed(0)
    t = AffineCouplingTransform(half_mask(4), hidden=(8,))
    other = AffineCouplingTransform(half_mask(4), hidden=(8,)).with_cache(0)
    with torch.no_grad():
        for p in (*t.parameters(), *other.parameters()):
            p.normal_()
    y = torch.randn(5, 4)
    x = t.inv(y)  # cached: the forward of x would answer y
    state = {k: v.clone() for k, v in other.state_dict().items()}
    if swap == "setattr":
        for name, _ in list(t.named_parameters()):
            path, attr = name.rsplit(".", 1)
            setattr(t.get_submodule(path), attr, torch.nn.Parameter(state[name]))
        y2 = t(x)
    elif swap == "load_state_dict_assign":
        t.load_state_dict(state, assign=True)
        y2 = t(x)
    else:
        y2 = torch.func.functional_call(t, state, (x,))
    assert y2 is not y
    torch.testing.assert_close(y2, other(x))
    assert not torch.allclose(y2, y)
