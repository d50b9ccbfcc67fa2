import pickle

import pytest
import torch

from flowdist.flows.coupling import NICE, RealNVP, StandardLogistic, coupling_masks
from flowdist.flows.demo_images import digits_unit_scale, fit_flow
from flowdist.transforms.coupling import AdditiveCouplingTransform
from flowdist.transforms.image import LogitTransform


def _fit(flow, train, test, steps, seed=0):
    """Train by maximum likelihood; return the test log-likelihood before and after."""
    with torch.no_grad():
        before = flow().log_prob(test).mean().item()
    fit_flow(flow, train, steps=steps, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        after = flow().log_prob(test).mean().item()
    return before, after


@pytest.mark.parametrize("cls", [NICE, RealNVP])
def test_training_improves_digits_test_log_likelihood(cls):
    torch.manual_seed(0)
    train, test = digits_unit_scale()
    flow = cls(64, 4, (32,), data_transforms=[LogitTransform(64, alpha=0.05).inv])
    before, after = _fit(flow, train, test, steps=30)
    assert after > before + 20  # nats per image on the [0, 1] scale


@pytest.mark.parametrize("cls", [NICE, RealNVP])
def test_sampling_and_log_prob_agree(cls):
    flow = cls(6, 4, (16,))
    d = flow()
    x, log_p = d.rsample_and_log_prob((7,))
    assert x.shape == (7, 6)
    torch.testing.assert_close(d.log_prob(x.clone()), log_p, atol=1e-4, rtol=1e-4)
    other = pickle.loads(pickle.dumps(flow))
    torch.testing.assert_close(other().log_prob(x), d.log_prob(x))


def test_nice_is_volume_preserving_but_for_the_scaling():
    flow = NICE(4, 4, (8,), base="normal")
    with torch.no_grad():
        for t in flow.transforms:
            for p in t.parameters():
                p.add_(torch.randn_like(p) * 0.3)
    x = torch.randn(3, 4)
    d = flow()
    z = x
    for t in reversed(flow.transforms):
        z = t.inv(z)
    base = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    torch.testing.assert_close(d.log_prob(x), base - flow.transforms[0].log_scale.sum())


def test_nice_paper_architecture_and_logistic_prior():
    flow = NICE(784, layers=4, hidden=(1000,) * 5)
    couplings = [t for t in flow.transforms if isinstance(t, AdditiveCouplingTransform)]
    assert len(couplings) == 4
    assert sum(isinstance(m, torch.nn.Linear) for m in couplings[0].conditioner) == 6
    assert isinstance(flow.base, StandardLogistic)
    z = torch.tensor([0.0, 1.0])
    expected = -z - 2 * torch.nn.functional.softplus(-z)
    torch.testing.assert_close(StandardLogistic(2)().log_prob(z), expected.sum())


def test_conditional_realnvp():
    flow = RealNVP(4, 2, (8,), context_features=3)
    for p in flow.parameters():
        torch.nn.init.normal_(p, std=0.3)
    ctx = torch.randn(5, 3)
    d = flow(ctx)
    x, log_p = d.rsample_and_log_prob()
    assert x.shape == (5, 4)
    torch.testing.assert_close(d.log_prob(x.clone()), log_p, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(flow(ctx + 1).log_prob(x), log_p)


def test_bad_arguments():
    with pytest.raises(ValueError, match="mask"):
        coupling_masks(4, 2, "diagonal")
    with pytest.raises(ValueError, match="features"):
        coupling_masks(1, 2)
    with pytest.raises(ValueError, match="base"):
        NICE(4, base="gumbel")
    for hidden in ((-1,), (16, 0)):  # a layer of no units would ignore its input
        with pytest.raises(ValueError, match=r"hidden must be an integer >= 1"):
            RealNVP(3, 2, hidden)
    with pytest.raises(TypeError, match="hidden must be a sequence"):
        NICE(4, 2, 16)
