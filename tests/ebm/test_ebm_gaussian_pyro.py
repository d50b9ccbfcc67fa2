"""Gaussian RBM (training stability, NUTS on its free energy) and Pyro interop."""

from __future__ import annotations

import math

import pyro
import pytest
import torch
from ebm_helpers import all_states, randomize
from pyro.infer.mcmc import MCMC, NUTS

from flowdist.datasets import load_digits
from flowdist.ebm import BernoulliRBM, BoltzmannMachine, GaussianRBM, train_cd


def _exact_mean(grbm: GaussianRBM) -> torch.Tensor:
    h = all_states(grbm.num_hidden, grbm.weight.dtype)
    wh = h @ grbm.weight.T
    b, s = grbm.visible_bias, grbm.sigma
    p_h = torch.softmax(h @ grbm.hidden_bias + wh @ (b / s) + 0.5 * (wh**2).sum(-1), 0)
    return (p_h @ (b + s * wh)).detach()


def test_nuts_on_the_gaussian_rbm_free_energy_matches_the_exact_mean():
    grbm = randomize(GaussianRBM(2, 3, sigma=0.8, dtype=torch.float64), 0.8, seed=5)
    grbm.requires_grad_(False)
    pyro.set_rng_seed(0)
    mcmc = MCMC(
        NUTS(potential_fn=grbm.potential_fn()),
        num_samples=500,
        warmup_steps=200,
        initial_params={"x": torch.zeros(2, dtype=torch.float64)},
        disable_progbar=True,
    )
    mcmc.run()
    x = mcmc.get_samples()["x"]
    n_eff = mcmc.diagnostics()["x"]["n_eff"]
    se = x.std(0) / n_eff.sqrt()
    assert bool(((x.mean(0) - _exact_mean(grbm)).abs() <= 5 * se).all())


def test_gaussian_rbm_with_learned_variances_trains_stably():
    digits = load_digits()  # grayscale in [0, 1]; border pixels are constant: sigma would collapse
    x, xt = digits.train_x, digits.test_x
    g = torch.Generator().manual_seed(0)
    grbm = GaussianRBM(64, 12, sigma=0.3, learn_sigma=True, min_sigma=0.05, generator=g)
    before = grbm.log_prob(xt).mean().item()
    train_cd(grbm, x, epochs=10, batch_size=20, lr=3e-3, momentum=0.5, generator=g)
    after = grbm.log_prob(xt).mean().item()
    assert after > before + 10
    sigma = grbm.sigma.detach()
    assert float(sigma.min()) >= 0.05 - 1e-6  # the collapsing variances are held at min_sigma
    assert int((sigma < 0.0501).sum()) > 0
    assert all(bool(torch.isfinite(p).all()) for p in grbm.parameters())
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        train_cd(GaussianRBM(64, 12, learn_sigma=True), x, epochs=3, lr=1e4, generator=g)


def test_gaussian_rbm_rejects_bad_sigma():
    with pytest.raises(ValueError, match="sigma"):
        GaussianRBM(3, 2, sigma=0.0)
    with pytest.raises(ValueError, match="num_hidden"):
        GaussianRBM(3, 0)
    # a learned sigma below min_sigma would jump to min_sigma at the first update
    with pytest.raises(ValueError, match=r"at least min_sigma=0\.05 when learn_sigma=True"):
        GaussianRBM(3, 2, sigma=torch.tensor([1.0, 0.01, 1.0]), learn_sigma=True, min_sigma=0.05)
    sigma = GaussianRBM(3, 2, sigma=0.05, learn_sigma=True, min_sigma=0.05).sigma  # the boundary
    torch.testing.assert_close(sigma, torch.full((3,), 0.05))


def test_an_ebm_enters_a_pyro_model_through_factor_and_as_a_likelihood():
    rbm = randomize(BernoulliRBM(6, 4), 1.0, 0)
    x = torch.bernoulli(torch.full((5, 6), 0.5), generator=torch.Generator().manual_seed(0))

    def factor_model():
        pyro.factor("ebm", rbm.unnormalized_log_prob(x).sum())

    def likelihood_model():
        with pyro.plate("data", 5):
            pyro.sample("x", rbm, obs=x)

    factor_trace = pyro.poutine.trace(factor_model).get_trace()
    like_trace = pyro.poutine.trace(likelihood_model).get_trace()
    unnormalized = rbm.unnormalized_log_prob(x).sum()
    assert torch.allclose(factor_trace.log_prob_sum(), unnormalized)
    assert torch.allclose(like_trace.log_prob_sum(), unnormalized - 5 * rbm.log_partition().float())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_binary_support_check_is_exact(dtype):
    # the fast x - x^2 = 0 test accepts exactly {0, 1}: values one ulp off, subnormals,
    # huge values, nan and inf all fail, in whichever chunk of a large data set they sit
    bm = BoltzmannMachine(8, dtype=dtype)
    ok = torch.bernoulli(torch.full((300_000, 8), 0.5, dtype=dtype))
    assert bm._in_support(ok)
    tiny, big = torch.finfo(dtype).tiny * torch.finfo(dtype).eps, torch.finfo(dtype).max
    one = torch.ones((), dtype=dtype)
    below, above = (float(torch.nextafter(one, one * to)) for to in (0, 2))
    specials = (math.nan, math.inf, -math.inf)
    for bad in (0.5, -1.0, 2.0, below, above, tiny, -tiny, big, -big, *specials):
        x = ok.clone()
        x[-1, 3] = bad
        assert not bm._in_support(x), bad
        assert BernoulliRBM(8, 3, dtype=dtype)._in_support(x) is False


def test_bad_input_is_rejected_with_the_cause():
    rbm = BernoulliRBM(6, 4)
    with pytest.raises(ValueError, match="support"):
        rbm.log_prob(torch.full((2, 6), 0.5))
    with pytest.raises(ValueError, match="event_shape"):
        rbm.log_prob(torch.zeros(2, 5))
    with pytest.raises(TypeError, match="dtype"):
        rbm.log_prob(torch.zeros(2, 6, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        rbm.log_prob([[0.0] * 6])
    with pytest.raises(ValueError, match="outside the model's support"):
        train_cd(rbm, torch.full((4, 6), 0.5), epochs=1)
    with pytest.raises(ValueError, match=r"shape \(N, 6\)"):
        train_cd(rbm, torch.zeros(4, 7), epochs=1)
    with pytest.raises(ValueError, match="epochs"):
        train_cd(rbm, torch.zeros(4, 6), epochs=0)
    with pytest.raises(ValueError, match="lr"):
        train_cd(rbm, torch.zeros(4, 6), epochs=1, lr=lambda e: -1.0)
    with pytest.raises(ValueError, match="support"):
        rbm.estimate_log_partition(data=torch.full((3, 6), 2.0))
    # validate_args=False behaves as in torch: no support check
    loose = BernoulliRBM(6, 4, validate_args=False)
    assert loose.log_prob(torch.full((1, 6), 0.5)).shape == (1,)
