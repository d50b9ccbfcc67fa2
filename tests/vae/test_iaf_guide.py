"""The IAF flow guide: its bijectors pass the property kit, its density is the change of
variables of the Gaussian, and it fits a correlated posterior better than the diagonal guide."""

import math

import pytest
import torch
from pyro.infer import Trace_ELBO

from flowdist import testing
from flowdist.vae import VAE, GaussianLikelihood


def test_iaf_steps_are_exact_bijectors_reading_the_features():
    torch.manual_seed(0)
    vae = VAE(6, 3, hidden=(16,), flow_steps=2, flow="iaf").double()
    x = (torch.rand(5, 6, dtype=torch.float64) < 0.5).double()
    h = vae.encoder.body(x)
    for step in vae.encoder.steps:
        with torch.no_grad():  # move off the identity start
            for p in step.parameters():
                p.normal_(0, 0.3)
        t = step(h).inv  # the IAF direction: sampling in one pass
        z = torch.randn(5, 3, dtype=torch.float64)
        testing.check_inverse(t, z)
        testing.check_log_det(t, z)
    # log q(z|x) of the sample (from the forward pass) equals the one recomputed through the
    # inverse (d MADE passes per step) on a copy the cache does not know
    q = vae.encode(x)
    z, log_q = q.rsample_and_log_prob()
    assert torch.allclose(q.log_prob(z.detach().clone()), log_q, atol=1e-8)


def test_iaf_guide_samples_in_one_pass_per_step_with_alternating_orders():
    vae = VAE(6, 3, hidden=(16,), flow_steps=3, flow="iaf")
    mades = [step.transform.made for step in vae.encoder.steps]
    assert [m.order.tolist() for m in mades] == [[1, 2, 3], [3, 2, 1], [1, 2, 3]]
    calls = []
    for made in mades:
        made.register_forward_hook(lambda *args: calls.append(1))
    vae.encode((torch.rand(5, 6) < 0.5).float()).rsample_and_log_prob()
    assert len(calls) == 3  # the IAF direction: one MADE pass per step (a MAF would need 3 each)


def test_bad_flow_argument_is_named():
    with pytest.raises(TypeError, match="flow must be 'iaf' or a Bijector class"):
        VAE(6, 3, flow_steps=1, flow="maf")


def test_iaf_guide_fits_a_correlated_posterior_better_than_the_diagonal():
    # x = z1 + z2 + noise: the exact posterior of z given x is a correlated Gaussian
    torch.manual_seed(0)
    x = (torch.randn(128, 2) @ torch.ones(2, 1)) + 0.1 * torch.randn(128, 1)
    elbos = {}
    for flow_steps in (0, 2):
        torch.manual_seed(1)
        vae = VAE(
            1,
            2,
            encoder=torch.nn.Sequential(torch.nn.Linear(1, 32), torch.nn.Tanh()),
            decoder=torch.nn.Linear(2, 1),
            likelihood=GaussianLikelihood((1,), scale=0.1),
            flow_steps=flow_steps,
            flow="iaf",
        )
        with torch.no_grad():
            vae.decoder.weight.fill_(1.0)
            vae.decoder.bias.zero_()
        vae.decoder.requires_grad_(False)
        opt = torch.optim.Adam([p for p in vae.parameters() if p.requires_grad], lr=1e-2)
        for _ in range(200):
            opt.zero_grad()
            vae.training_loss(Trace_ELBO(), x).div(len(x)).backward()
            opt.step()
        with torch.no_grad():
            torch.manual_seed(2)
            elbos[flow_steps] = -sum(vae.training_loss(Trace_ELBO(), x) for _ in range(20)) / (
                20 * len(x)
            )
    # exact log p(x): x ~ N(0, 2 + 0.01); the diagonal guide pays the KL to the correlated
    # posterior (about 2 nats here), the IAF guide recovers most of it
    log_px = -0.5 * (x**2 / 2.01 + math.log(2 * math.pi * 2.01)).mean()
    assert elbos[2] > elbos[0] + 0.5, elbos
    assert log_px - 0.5 < elbos[2] <= log_px + 0.05, (elbos, log_px)
