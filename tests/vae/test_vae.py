import math
import warnings

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO
from pyro.poutine.messenger import Messenger
from pyro.util import check_model_guide_match, check_site_shape
from torch import nn
from torch.distributions import kl_divergence

from flowdist.vae import VAE, GaussianLikelihood, evaluate
from flowdist.vae.evaluate import IWAE_ELBO, importance_log_likelihood, log_weights
from flowdist.vae.likelihoods import (
    BernoulliLikelihood,
    ContinuousBernoulliLikelihood,
    logits_of_probs,
)


def binary(n, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, d, generator=g) < 0.3).float()


def small_vae(**kw):
    kw.setdefault("hidden", (16,))
    return VAE(kw.pop("x_shape", 12), kw.pop("z_dim", 3), **kw)


def linear_gaussian(d=5, z_dim=2, sigma=0.5, seed=0):
    """A VAE whose model is x = W z + b + sigma * eps, with a linear encoder."""
    torch.manual_seed(seed)
    vae = VAE(
        d,
        z_dim,
        encoder=nn.Linear(d, 8),
        decoder=nn.Linear(z_dim, d),
        likelihood=GaussianLikelihood((d,), scale=sigma),
    )
    W, b = vae.decoder.weight.detach(), vae.decoder.bias.detach()
    cov = W @ W.T + sigma**2 * torch.eye(d)
    exact = dist.MultivariateNormal(b, cov)
    x = exact.sample((20,))
    return vae, x, exact.log_prob(x)


def test_analytic_kl_and_monte_carlo_elbo_agree():
    vae = small_vae(name="a")
    x = binary(10, 12)
    k = 4000
    with torch.no_grad():
        lw, _ = log_weights(vae.model, vae.guide, x, num_particles=k)
    per_particle = lw.sum(1)
    mc, stderr = per_particle.mean(), per_particle.std() / math.sqrt(k)
    pyro.set_rng_seed(1)
    analytic = -TraceMeanField_ELBO(num_particles=k, vectorize_particles=True).loss(
        vae.model, vae.guide, x
    )
    monte_carlo = -Trace_ELBO(num_particles=k, vectorize_particles=True).loss(
        vae.model, vae.guide, x
    )
    assert abs(analytic - float(mc)) < 5 * float(stderr)
    assert abs(monte_carlo - float(mc)) < 5 * math.sqrt(2) * float(stderr)


def test_mean_field_elbo_uses_closed_form_kl():
    # a likelihood that ignores z: the mean-field ELBO is then log p(x) - KL exactly, every draw
    vae = small_vae(name="b", decoder=nn.Sequential(nn.Linear(3, 12), nn.Unflatten(-1, (12,))))
    with torch.no_grad():
        vae.decoder[0].weight.zero_()
    x = binary(4, 12)
    q = vae.encode(x)
    expected = vae.decode(torch.zeros(4, 3)).log_prob(x) - kl_divergence(q, vae.prior())
    losses = {TraceMeanField_ELBO().loss(vae.model, vae.guide, x) for _ in range(3)}
    assert len(losses) == 1
    assert losses.pop() == pytest.approx(-float(expected.detach().sum()), rel=1e-5)


def test_elbo_and_iwae_bound_the_exact_linear_gaussian_log_likelihood():
    vae, x, exact = linear_gaussian()
    iw = {}
    for k in (1, 10, 100, 5000):
        pyro.set_rng_seed(k)
        iw[k], elbo = importance_log_likelihood(vae.model, vae.guide, x, k=k, max_elements=4000)
        if k == 5000:
            assert (elbo < exact).all()  # the ELBO, averaged over 5000 draws, is below log p
    means = [float(iw[k].mean()) for k in (1, 10, 100, 5000)]
    assert means == sorted(means)  # tightens with k
    gap_10, gap_5000 = float((exact - iw[10]).mean()), float((exact - iw[5000]).mean())
    assert 0 < gap_5000 < 0.25 * gap_10


def test_chunking_does_not_change_the_estimate():
    vae, x, _ = linear_gaussian()
    pyro.set_rng_seed(0)
    whole, _ = importance_log_likelihood(vae.model, vae.guide, x, k=64)
    pyro.set_rng_seed(0)
    chunked, _ = importance_log_likelihood(vae.model, vae.guide, x, k=64, max_elements=5 * 20 * 8)
    # different draws; both estimate the same quantity closely for this small model
    assert torch.allclose(whole, chunked, atol=0.1)
    assert chunked.shape == (20,)


def test_chunks_and_batches_combine_into_the_estimates_of_all_particles(monkeypatch):
    # known log-weights (particle i of the whole run, data point j: a fixed table) make the
    # combination exact: log mean exp and mean over all k particles, whatever the chunking
    k, n = 10, 7
    table = torch.randn(k, n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    drawn = []

    def fake_log_weights(model, guide, x, *, num_particles):
        first = sum(drawn) % k  # the particles of this batch drawn so far
        drawn.append(num_particles)
        return table[first : first + num_particles][:, x[:, 0].long()], 1.0  # x[:, 0]: index

    monkeypatch.setattr(evaluate, "log_weights", fake_log_weights)
    x = torch.arange(n, dtype=torch.float64)[:, None].expand(n, 3)
    iw, elbo = importance_log_likelihood(None, None, x, k=k, batch_size=3, max_elements=36)
    assert drawn == [4, 4, 2, 4, 4, 2, 10]  # 36 // (3 rows * 3) = 4 particles a chunk; 1 row: 12
    torch.testing.assert_close(iw, table.logsumexp(0) - math.log(k))
    torch.testing.assert_close(elbo, table.mean(0))


def test_iwae_loss_with_one_particle_is_the_trace_elbo():
    vae = small_vae(name="c")
    x = binary(8, 12)
    pyro.set_rng_seed(3)
    iwae = IWAE_ELBO(1).differentiable_loss(vae.model, vae.guide, x, num_data=80)
    pyro.set_rng_seed(3)
    elbo = Trace_ELBO().differentiable_loss(vae.model, vae.guide, x, num_data=80)
    assert float(iwae.detach()) == pytest.approx(float(elbo.detach()), rel=1e-5)


def test_iwae_loss_is_tighter_than_the_elbo():
    vae = small_vae(name="d")
    x = binary(8, 12)
    elbo = Trace_ELBO(num_particles=500, vectorize_particles=True, max_plate_nesting=1)
    elbo = elbo.loss(vae.model, vae.guide, x)
    iwae = sum(float(IWAE_ELBO(50)(vae.model, vae.guide, x).detach()) for _ in range(10)) / 10
    assert iwae < elbo


class _ScoreFunction(Messenger):
    """Make every guide sample non-reparameterised, so Trace_ELBO uses the score function."""

    def _pyro_sample(self, msg):
        fn = msg["fn"]
        if isinstance(fn, dist.Independent):
            msg["fn"] = fn.base_dist.has_rsample_(False).to_event(fn.reinterpreted_batch_ndims)


def _grad_samples(vae, x, guide, n=100):
    grads = []
    for _ in range(n):
        vae.zero_grad()
        Trace_ELBO().differentiable_loss(vae.model, guide, x).backward()
        grads.append(vae.encoder.head.weight.grad.flatten().clone())
    return torch.stack(grads)


def test_pathwise_gradient_has_lower_variance_than_score_function():
    vae = small_vae(name="e")
    x = binary(4, 12)
    pathwise = _grad_samples(vae, x, vae.guide)
    score = _grad_samples(vae, x, _ScoreFunction()(vae.guide))
    assert pathwise.abs().sum() > 0  # gradients reach the encoder through the sample
    # same expectation (checked loosely), much lower variance
    assert pathwise.var(0).sum() < 0.1 * score.var(0).sum()
    assert torch.allclose(pathwise.mean(0), score.mean(0), atol=5 * score.std(0).max() / 10)


@pytest.mark.parametrize("flow_steps", [0, 3])
@pytest.mark.parametrize("x_shape", [(12,), (1, 8, 8)])
def test_shapes_under_plate_and_subsampling_scale(flow_steps, x_shape):
    vae = VAE(x_shape, 3, hidden=(16,), flow_steps=flow_steps, name=f"s{flow_steps}{len(x_shape)}")
    x = (torch.rand(5, *x_shape) < 0.5).float()
    guide_trace = poutine.trace(vae.guide).get_trace(x, num_data=50)
    model_trace = poutine.trace(poutine.replay(vae.model, guide_trace)).get_trace(x, num_data=50)
    for trace in (guide_trace, model_trace):
        trace.compute_log_prob()
        assert trace.nodes["z"]["value"].shape == (5, 3)
        assert trace.nodes["z"]["log_prob"].shape == (5,)
        assert trace.nodes["z"]["scale"] == pytest.approx(10.0)
    assert model_trace.nodes["x"]["fn"].event_shape == x_shape
    assert model_trace.nodes["x"]["log_prob"].shape == (5,)
    # vectorised particles add a batch dimension in front of the plate
    loss = Trace_ELBO(num_particles=4, vectorize_particles=True, max_plate_nesting=1)
    assert math.isfinite(loss.loss(vae.model, vae.guide, x))
    lw, scale = log_weights(vae.model, vae.guide, x, num_particles=7, num_data=50)
    assert lw.shape == (7, 5) and float(scale) == pytest.approx(10.0)
    assert vae.sample(6, generator=torch.Generator().manual_seed(0)).shape == (6, *x_shape)
    assert vae.reconstruct(x).shape == x.shape


@pytest.mark.parametrize("flow_steps", [0, 2])
def test_model_and_guide_pass_pyro_validation(flow_steps):
    vae = small_vae(name=f"v{flow_steps}", flow_steps=flow_steps)
    x = binary(6, 12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        guide_trace = poutine.trace(vae.guide).get_trace(x, num_data=60)
        model_trace = poutine.trace(poutine.replay(vae.model, guide_trace)).get_trace(
            x, num_data=60
        )
        check_model_guide_match(model_trace, guide_trace, max_plate_nesting=1)
        for trace in (model_trace, guide_trace):
            trace.compute_log_prob()
            for site in trace.nodes.values():
                if site["type"] == "sample":
                    check_site_shape(site, max_plate_nesting=1)
        for elbo in (Trace_ELBO(), TraceMeanField_ELBO()):
            assert math.isfinite(elbo.loss(vae.model, vae.guide, x, num_data=60))


def test_svi_trains_the_vae():
    vae = small_vae(name="svi", likelihood="continuous_bernoulli")
    x = torch.rand(64, 12, generator=torch.Generator().manual_seed(0)) ** 3
    svi = pyro.infer.SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-2}), TraceMeanField_ELBO())
    first = sum(svi.step(x) for _ in range(5))
    for _ in range(40):
        svi.step(x)
    last = sum(svi.step(x) for _ in range(5))
    assert last < first - 5 * 64


@pytest.mark.parametrize("likelihood", ["gaussian", GaussianLikelihood((12,), scale=0.3)])
def test_gaussian_likelihood_learned_or_fixed(likelihood):
    vae = small_vae(name="g", likelihood=likelihood)
    learned = isinstance(likelihood, str)
    assert isinstance(vae.likelihood.log_scale, nn.Parameter) == learned
    x = torch.randn(4, 12)
    loss = Trace_ELBO().differentiable_loss(vae.model, vae.guide, x)
    loss.backward()
    assert (vae.likelihood.log_scale.grad is not None) == learned


def test_parameter_free_encoder_body():
    vae = VAE(12, 3, encoder=nn.Identity(), name="identity")
    assert vae.encoder.head.in_features == 12
    assert vae.encode(binary(2, 12)).batch_shape == (2,)


def test_float64_and_to():
    vae = small_vae(name="f64", flow_steps=2).to(torch.float64)
    x = binary(5, 12).double()
    loss = Trace_ELBO().differentiable_loss(vae.model, vae.guide, x)
    assert loss.dtype == torch.float64
    assert vae.sample(3).dtype == torch.float64


def test_bad_input_errors():
    vae = small_vae(name="bad")
    with pytest.raises(ValueError, match=r"x lies outside the support of BernoulliLikelihood"):
        vae.model(torch.full((3, 12), 0.5))
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 12\)"):
        vae.guide(binary(3, 10))
    with pytest.raises(ValueError, match=r"x must be a batch"):
        vae.guide(binary(1, 12)[0])
    with pytest.raises(TypeError, match="dtype"):
        vae.model(binary(3, 12).double())
    with pytest.raises(ValueError, match="num_data"):
        vae.model(binary(3, 12), num_data=2)
    cb = small_vae(name="cb", likelihood="continuous_bernoulli")
    with pytest.raises(ValueError, match=r"\[0, 1\].*\[-0\.5, 2\]"):
        cb.guide(torch.linspace(-0.5, 2, 36).reshape(3, 12))
    with pytest.raises(ValueError, match="likelihood must be"):
        small_vae(likelihood="poisson")
    with pytest.raises(ValueError, match="flow_steps"):
        small_vae(flow_steps=-1)


def test_support_check_sees_in_place_changes():
    vae = small_vae(name="inplace")
    x = binary(3, 12)
    vae.model(x)
    vae.guide(x)  # the same batch: checked once, still accepted
    x.mul_(0.5)
    with pytest.raises(ValueError, match="support"):
        vae.guide(x)


def test_flow_guide_density_is_the_change_of_variables():
    vae = small_vae(name="flowq", flow_steps=4)
    x = binary(6, 12)
    q = vae.encode(x)
    z = q.rsample()
    cached = q.log_prob(z)  # the forward pass's log-determinants, from the cache
    inverted = q.log_prob(z.clone())  # no cache: every planar step is inverted
    assert torch.allclose(cached, inverted, atol=1e-4)
    loss = Trace_ELBO().differentiable_loss(vae.model, vae.guide, x)
    loss.backward()
    for step in vae.encoder.steps:  # flow parameters are amortised: the encoder learns them
        assert step.hyper.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("likelihood", ["bernoulli", "continuous_bernoulli", "gaussian"])
def test_sampled_data_come_from_the_generator_and_the_likelihood(likelihood):
    vae = small_vae(name=f"gen-{likelihood}", likelihood=likelihood)
    draws = []
    for global_seed in (1, 2):  # the global RNG must not matter
        torch.manual_seed(global_seed)
        g = torch.Generator().manual_seed(0)
        draws.append(vae.sample(4000, generator=g, mean=False))
    assert torch.equal(*draws)
    x = draws[0]
    vae.likelihood.check(x)  # in the support
    # E[x] = E_z E[x | z]: the sample mean against decoded means of other latents
    means = vae.sample(4000, generator=torch.Generator().manual_seed(1))
    assert bool(((x.mean(0) - means.mean(0)).abs() < 6 * x.std(0) / 4000**0.5 + 1e-3).all())


@pytest.mark.parametrize(
    "likelihood",
    [
        BernoulliLikelihood(6),
        ContinuousBernoulliLikelihood(6),
        GaussianLikelihood(6, scale=0.5),
        GaussianLikelihood(6),  # a learned scale, set below to exp(N(0, 1))
    ],
    ids=["bernoulli", "continuous_bernoulli", "gaussian", "gaussian-learned"],
)
def test_likelihood_draws_have_the_law_of_the_distribution(likelihood):
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in likelihood.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    params = torch.randn(6, generator=g)
    n = 20000
    x = likelihood.sample(params.expand(n, 6), generator=g)
    law = likelihood(params).base_dist
    # mean and variance per element, within 6 standard errors estimated from the draws
    se_mean = x.std(0) / n**0.5
    assert bool(((x.mean(0) - law.mean).abs() < 6 * se_mean).all())
    centred = (x - law.mean) ** 2
    se_var = centred.std(0) / n**0.5
    assert bool(((centred.mean(0) - law.variance).abs() < 6 * se_var).all())


def test_likelihood_supports_and_logits_at_the_boundary():
    lik = ContinuousBernoulliLikelihood(3)
    lik.check(torch.tensor([[0.0, 0.5, 1.0]]))  # both ends of [0, 1] belong to it
    above = torch.nextafter(torch.tensor(1.0), torch.tensor(2.0))
    with pytest.raises(ValueError):
        lik.check(torch.stack([torch.tensor(0.0), torch.tensor(0.5), above])[None])
    eps = torch.finfo(torch.float32).eps ** 0.5
    logits = logits_of_probs(torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(logits, torch.logit(torch.tensor([eps, 1 - eps])))


def test_log_weights_and_iwae_honour_poutine_mask():
    vae = small_vae(name="mask")
    x = binary(4, 12)
    mask = torch.tensor([True, True, False, False])
    model, guide = poutine.mask(vae.model, mask=mask), poutine.mask(vae.guide, mask=mask)
    pyro.set_rng_seed(0)
    masked = log_weights(model, guide, x, num_particles=3)[0]
    pyro.set_rng_seed(0)
    full = log_weights(vae.model, vae.guide, x, num_particles=3)[0]
    assert torch.equal(masked[:, 2:], torch.zeros(3, 2))
    torch.testing.assert_close(masked[:, :2], full[:, :2])
    pyro.set_rng_seed(0)
    loss = IWAE_ELBO(1)(model, guide, x)
    pyro.set_rng_seed(0)
    elbo = Trace_ELBO().differentiable_loss(model, guide, x)
    assert float(loss.detach()) == pytest.approx(float(elbo.detach()), rel=1e-5)


def test_iwae_refuses_a_guide_site_without_a_reparameterised_sample():
    vae = small_vae(name="score")
    with pytest.raises(ValueError, match=r"guide site 'z'.*not reparameterised"):
        _ScoreFunction()(lambda: IWAE_ELBO(2)(vae.model, vae.guide, binary(4, 12)))()
