"""Flow and FlowDistribution: fused passes, Pyro interop, conditioning, validation, training."""

from __future__ import annotations

import pyro
import pytest
import torch
from torch.distributions import TransformedDistribution

import flowdist.flows.train as train_module
from flowdist.flows import NICE, Flow, FlowDistribution, PlanarFlow, RadialFlow, StandardNormal
from flowdist.testing import randomize
from flowdist.transforms import ConditionalTransform, PlanarTransform, RadialTransform


def _randomized(flow, seed=0, scale=0.5):
    return randomize(flow, generator=torch.Generator().manual_seed(seed), scale=scale)


@pytest.mark.parametrize("make", [lambda: PlanarFlow(2, 8), lambda: RadialFlow(2, 4)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_sample_log_prob_equals_log_prob_of_the_sample(make, dtype):
    torch.manual_seed(0)
    flow = _randomized(make()).to(dtype)
    d = flow()
    assert isinstance(d, FlowDistribution) and isinstance(d, TransformedDistribution)
    x, log_q = d.rsample_and_log_prob((64,))
    assert x.dtype == dtype and log_q.shape == (64,)
    for t in flow.transforms:
        t.with_cache(0)  # force the inverse path
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(d.log_prob(x.detach().clone()), log_q.detach(), atol=tol, rtol=tol)


def test_log_prob_is_a_normalized_density():
    flow = _randomized(PlanarFlow(2, 6), scale=0.7).double()
    axis = torch.linspace(-9, 9, 361, dtype=torch.float64)
    grid = torch.cartesian_prod(axis, axis)
    with torch.no_grad():
        p = flow().log_prob(grid).exp().reshape(361, 361)
    mass = torch.trapezoid(torch.trapezoid(p, axis, dim=0), axis, dim=0)
    assert abs(mass.item() - 1) < 2e-3


def test_pyro_sample_and_trace_log_prob():
    flow = _randomized(PlanarFlow(2, 4))

    def model():
        return pyro.sample("z", flow())

    trace = pyro.poutine.trace(model).get_trace()
    trace.compute_log_prob()
    z = trace.nodes["z"]["value"]
    for t in flow.transforms:
        t.with_cache(0)
    torch.testing.assert_close(
        trace.nodes["z"]["log_prob"], flow().log_prob(z.clone()), atol=1e-4, rtol=1e-4
    )


def test_conditional_flow_uses_the_context():
    torch.manual_seed(0)
    flow = Flow(
        [ConditionalTransform(PlanarTransform, 2, 3), RadialTransform(2)], StandardNormal(2)
    )
    _randomized(flow, scale=0.3)
    assert flow.conditional
    context = torch.randn(5, 3)
    d = flow(context)
    assert d.batch_shape == (5,)
    x, log_q = d.rsample_and_log_prob((7,))
    assert x.shape == (7, 5, 2) and log_q.shape == (7, 5)
    other = flow(context.flip(0))
    assert not torch.allclose(other.log_prob(x.detach()), log_q.detach())
    with pytest.raises(ValueError, match="context"):
        flow()


def test_maximum_likelihood_training_improves_held_out_likelihood():
    g = torch.Generator().manual_seed(0)
    # a banana-shaped data set
    z = torch.randn(2000, 2, generator=g)
    data = torch.stack([z[:, 0], z[:, 1] + 0.8 * z[:, 0] ** 2 - 1], -1)
    train, test = data[:1500], data[1500:]
    flow = PlanarFlow(2, 8, generator=g)
    opt = torch.optim.Adam(flow.parameters(), lr=2e-2)
    with torch.no_grad():
        before = flow().log_prob(test).mean()
    for _ in range(150):
        opt.zero_grad()
        (-flow().log_prob(train).mean()).backward()
        opt.step()
    with torch.no_grad():
        after = flow().log_prob(test).mean()
    assert after > before + 0.3, (before, after)


def test_flow_follows_to_and_state_dict():
    flow = PlanarFlow(2, 3).double()
    x, _ = flow().rsample_and_log_prob((4,))
    assert x.dtype == torch.float64
    clone = PlanarFlow(2, 3).double()
    clone.load_state_dict(flow.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(clone().log_prob(x.detach()), flow().log_prob(x.detach()))


def test_validation_errors_name_the_problem():
    flow = PlanarFlow(2, 3)
    d = flow()
    with pytest.raises(ValueError, match="value"):
        d.log_prob(torch.tensor([[float("nan"), 0.0]]))
    with pytest.raises(ValueError, match=r"value must have shape \(\.\.\., 2\)"):
        flow(validate_args=False).log_prob(torch.zeros(4, 3))
    with pytest.raises(TypeError, match=r"value has dtype torch\.float64"):
        d.log_prob(torch.zeros(4, 2, dtype=torch.float64))
    with torch.no_grad():
        flow.transforms[0].w[1, 0] = float("inf")
    with pytest.raises(ValueError, match="parameter 'w' has non-finite values"):
        flow().rsample_and_log_prob((3,))
    torch.distributions.Distribution.set_default_validate_args(False)
    try:  # without validation, the flow-level check still names the parameter
        with pytest.raises(ValueError, match=r"transforms\[0\] \(PlanarStack\) parameter 'w'"):
            flow(validate_args=True).rsample_and_log_prob((3,))
    finally:
        torch.distributions.Distribution.set_default_validate_args(True)
    with pytest.raises(TypeError, match=r"transforms\[0\] must be"):
        Flow([torch.nn.Linear(2, 2)], StandardNormal(2))


def test_validate_args_reaches_the_base_and_samples_are_checked():
    flow = NICE(4, 2, (8,), base="normal")  # ends in a ScaleTransform (x = z e^s)
    bad = torch.tensor([[0.0, float("nan"), 0.0, 0.0]])
    with pytest.raises(ValueError, match="value"):
        flow().log_prob(bad)
    # validate_args=False: no check anywhere, as in torch.distributions (the base is the flow's)
    assert torch.isnan(flow(validate_args=False).log_prob(bad)).all()
    assert flow.base()._validate_args == torch.distributions.Distribution._validate_args
    with torch.no_grad():
        flow.transforms[0].log_scale.fill_(100.0)  # finite, but e^100 overflows float32
    # the log-density does not depend on the sample here, so only the sample is non-finite
    with pytest.raises(ValueError, match=r"carry base draws beyond the range of torch\.float32"):
        flow(validate_args=True).rsample_and_log_prob((3,))
    x, log_prob = flow(validate_args=False).rsample_and_log_prob((3,))
    assert not torch.isfinite(x).all() and torch.isfinite(log_prob).all()
    with pytest.raises(ValueError, match="K must be a positive integer"):
        PlanarFlow(2, 0)


def test_generator_makes_sampling_reproducible():
    flow = _randomized(PlanarFlow(2, 4))
    draws = [
        flow().rsample_and_log_prob((5,), generator=torch.Generator().manual_seed(7))
        for _ in range(2)
    ]
    torch.testing.assert_close(draws[0], draws[1])
    x = flow().rsample((5,), generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(x, draws[0][0])
    other = flow().rsample((5,), generator=torch.Generator().manual_seed(8))
    assert not torch.allclose(x, other)


def test_fit_density_stops_after_patience_and_restores_the_best_epoch(monkeypatch):
    flow = PlanarFlow(2, 2)
    data = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    scripted = iter([-5.0, -4.0, -4.5, -4.6, -3.0])  # held-out log-likelihoods, epoch by epoch
    states = []

    def scripted_log_prob(flow, valid):
        states.append({k: v.clone() for k, v in flow.state_dict().items()})
        return next(scripted)

    monkeypatch.setattr(train_module, "mean_log_prob", scripted_log_prob)
    result = train_module.fit_density(flow, data, valid=data, epochs=5, batch_size=16, patience=2)
    assert result.best_epoch == 1 and len(result.valid_nll) == 4  # epochs 2 and 3: no better
    for key, value in flow.state_dict().items():
        assert torch.equal(value, states[1][key]), key
    assert not torch.equal(states[1]["transforms.0.w"], states[3]["transforms.0.w"])
    with pytest.raises(ValueError, match="patience: early stopping needs valid data"):
        train_module.fit_density(flow, data, patience=2)


def test_vector_flows_have_k_steps():
    assert len(RadialFlow(3, 5).transforms) == 5
    assert len(PlanarFlow(3, 5).transforms[0].u) == 5  # one fused stack of K planar steps
