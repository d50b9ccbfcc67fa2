"""Exact log Z by enumeration against brute force; AIS against exact log Z."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from ebm_helpers import all_states, brute_joint_log_f, randomize, small_bm

from flowdist.ebm import (
    BernoulliRBM,
    BoltzmannMachine,
    DeepBoltzmannMachine,
    GaussianRBM,
    PartitionTooLargeError,
    ais,
)
from flowdist.ebm.layered import _LayeredPath
from flowdist.ebm.partition import enumerate_log_sum_exp, salakhutdinov_murray_betas


def test_enumeration_chunks_agree_with_one_pass():
    w = torch.randn(7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    exact = torch.logsumexp(all_states(7) @ w, 0)
    for chunk in (1, 5, 128, 1 << 15):
        got = enumerate_log_sum_exp(lambda s: s @ w, 7, max_units=25, what="x", chunk_size=chunk)
        assert torch.allclose(got, exact, atol=1e-12)
    # the closed form: prod_i (1 + e^{w_i})
    assert torch.allclose(exact, torch.nn.functional.softplus(w).sum(), atol=1e-12)


def test_enumeration_gradient_is_exact_and_holds_no_chunk_graph():
    # d/dw log sum_s exp(s.w + (s.w)^2 / 10), chunk by chunk, against autograd of one pass
    w = torch.randn(10, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    w.requires_grad_(True)

    def log_f(s):
        sw = s @ w
        return sw + sw**2 / 10

    one_pass = torch.logsumexp(log_f(all_states(10)), 0)
    (expected,) = torch.autograd.grad(one_pass, w)
    saved = []

    def pack(t):
        saved.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        got = enumerate_log_sum_exp(log_f, 10, max_units=25, what="x", chunk_size=64)
    torch.testing.assert_close(got, one_pass, rtol=0, atol=1e-12)
    torch.testing.assert_close(torch.autograd.grad(got, w)[0], expected, rtol=1e-12, atol=1e-12)
    # a held graph would save tensors of all 1024 states; the chunks' outputs are 16 scalars
    assert sum(saved) < 64, sum(saved)


def test_boltzmann_log_partition_matches_brute_force():
    bm = small_bm(6)
    y = all_states(6)
    brute = torch.logsumexp(0.5 * ((y @ bm.coupling) * y).sum(-1) + y @ bm.bias, 0)
    assert torch.allclose(bm.log_partition(), brute, atol=1e-10)
    assert torch.allclose(bm.log_prob(y).exp().sum(), torch.tensor(1.0, dtype=torch.float64))


@pytest.mark.parametrize("sizes", [(4, 3), (3, 5), (3, 2, 3), (2, 3, 2, 2)])
def test_layered_log_partition_matches_brute_force(sizes):
    cls = BernoulliRBM if len(sizes) == 2 else DeepBoltzmannMachine
    model = cls(*sizes, dtype=torch.float64) if len(sizes) == 2 else cls(sizes, dtype=torch.float64)
    randomize(model, 1.0, seed=len(sizes))
    _, log_f = brute_joint_log_f(model)
    assert torch.allclose(model.log_partition(), torch.logsumexp(log_f, 0), atol=1e-10)


def test_free_energy_matches_brute_force_marginalisation():
    for model in (BernoulliRBM(4, 3, dtype=torch.float64), DeepBoltzmannMachine((3, 2, 3))):
        randomize(model.double(), 1.0, seed=3)
        states, log_f = brute_joint_log_f(model)
        v = all_states(model.layer_sizes[0])
        n_v = v.shape[1]
        for row in v:
            mask = (states[:, :n_v] == row).all(1)
            brute = torch.logsumexp(log_f[mask], 0)
            assert torch.allclose(-model.free_energy(row[None])[0], brute, atol=1e-10)
        # batched call equals row-by-row, and probabilities sum to one
        assert torch.allclose(model.log_prob(v).exp().sum(), torch.tensor(1.0).double())


def test_free_energy_is_alias_for_rbm():
    rbm = randomize(BernoulliRBM(5, 4), 1.0, 0)
    v = all_states(5, torch.float32)
    assert torch.equal(rbm.free_energy(v), rbm.energy(v))
    assert torch.equal(rbm.unnormalized_log_prob(v), -rbm.energy(v))


def test_gaussian_rbm_log_partition_matches_quadrature():
    grbm = GaussianRBM(1, 3, sigma=0.7, dtype=torch.float64)
    randomize(grbm, 1.0, seed=2)  # also randomizes nothing for the fixed sigma buffer
    x = torch.linspace(-30, 30, 200001, dtype=torch.float64)[:, None]
    log_f = -grbm.energy(x)
    dx = float(x[1, 0] - x[0, 0])
    quad = torch.logsumexp(log_f, 0) + math.log(dx)
    assert torch.allclose(grbm.log_partition(), quad, atol=1e-6)


def test_log_partition_recomputed_after_parameter_change():
    rbm = randomize(BernoulliRBM(4, 3, dtype=torch.float64), 1.0, 0)
    before = rbm.log_partition()
    with torch.no_grad():
        rbm.weight.add_(0.5)
    after = rbm.log_partition()
    _, log_f = brute_joint_log_f(rbm)
    assert not torch.allclose(before, after)
    assert torch.allclose(after, torch.logsumexp(log_f, 0), atol=1e-10)


def test_too_large_for_enumeration_points_to_ais():
    rbm = BernoulliRBM(30, 26)
    with pytest.raises(PartitionTooLargeError, match=r"2\^26 .*estimate_log_partition"):
        rbm.log_partition()
    with pytest.raises(ValueError, match="estimate_log_partition"):
        rbm.log_prob(torch.zeros(30))
    assert rbm.log_partition_method is None
    for sizes in ((30, 12), (12, 30)):  # the smaller layer is enumerated
        small = BernoulliRBM(*sizes)
        small.max_enumerable_units = 12
        assert small.log_partition_method == "exact"
    with pytest.raises(PartitionTooLargeError, match="2\\^21"):
        BoltzmannMachine(21).log_partition()


def test_schedule_of_salakhutdinov_murray():
    betas = salakhutdinov_murray_betas()
    assert betas.numel() == 14501 and betas[0] == 0 and betas[-1] == 1
    assert bool((betas.diff() > 0).all())
    assert int((betas < 0.5).sum()) == 500 and int(((betas >= 0.5) & (betas < 0.9)).sum()) == 4000
    assert salakhutdinov_murray_betas(29).numel() == 30


@pytest.mark.parametrize(
    "make",
    [
        lambda: randomize(BernoulliRBM(8, 5), 1.0, 0),
        lambda: randomize(DeepBoltzmannMachine((6, 4, 3)), 1.0, 1),
        lambda: small_bm(7, 0.8, 2, torch.float32),
        lambda: randomize(GaussianRBM(3, 4, learn_sigma=True), 0.7, 3),  # sigma != 1
    ],
)
def test_ais_agrees_with_exact_within_its_error(make):
    model = make()
    data = torch.bernoulli(torch.full((50, model.event_shape[0]), 0.3))
    data = None if isinstance(model, GaussianRBM) else data
    est = model.estimate_log_partition(
        num_chains=200, betas=2000, data=data, generator=torch.Generator().manual_seed(0)
    )
    exact = float(model.log_partition())
    assert est.lower - 1e-3 <= exact <= est.upper + 1e-3
    assert abs(est.log_z - exact) < 0.05
    assert 0 < est.std_error < 0.05 and est.ess > 20


@pytest.mark.parametrize("sizes", [(6, 4, 3), (5, 4, 3, 4)])
@pytest.mark.parametrize("summed_parity", [0, 1])
def test_layered_ais_is_unbiased_whichever_parity_is_summed_out(sizes, summed_parity):
    # the DBM default sums out v and the even layers (chains on the odd ones); summing out the
    # odd layers instead is the RBM's path: both must estimate the same exact log Z
    model = randomize(DeepBoltzmannMachine(sizes, dtype=torch.float64), 1.0, len(sizes))
    data = torch.bernoulli(torch.full((50, sizes[0]), 0.3, dtype=torch.float64))
    base = model.annealing_path(data).base
    path = _LayeredPath(model, base, summed_parity)
    assert path.summed == list(range(summed_parity, len(sizes), 2))
    with warnings.catch_warnings():  # no autograd graph over the parameters, no warning
        warnings.simplefilter("error")
        est = ais(path, num_chains=200, betas=2000, generator=torch.Generator().manual_seed(0))
    exact = float(model.log_partition())
    assert est.lower - 1e-3 <= exact <= est.upper + 1e-3
    assert abs(est.log_z - exact) < 0.1 and est.ess > 20


def test_log_prob_uses_ais_estimate_when_not_enumerable():
    rbm = randomize(BernoulliRBM(30, 27), 0.1, 0)
    x = torch.bernoulli(torch.full((3, 30), 0.5))
    est = rbm.estimate_log_partition(num_chains=20, betas=50)
    assert rbm.log_partition_method == "ais"
    assert torch.allclose(rbm.log_prob(x), rbm.unnormalized_log_prob(x) - est.log_z)
    with torch.no_grad():
        rbm.weight.mul_(2.0)  # stale estimate is not used
    assert rbm.log_partition_method is None


def test_ais_rejects_non_finite_weights():
    rbm = BernoulliRBM(6, 3)
    with torch.no_grad():
        rbm.weight[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match=r"parameter 'weights.0' is not finite"):
        rbm.estimate_log_partition(num_chains=10, betas=10)

    class Overflowing:  # a path whose densities overflow: the weights are caught, not averaged
        log_z0 = 0.0

        def init(self, n, generator):
            return torch.zeros(n)

        def log_f(self, state, beta):
            return (state + beta * 1e308 * 10).double()

        def transition(self, state, beta, generator):
            return state

    with pytest.raises(FloatingPointError, match="non-finite importance weights in 4 of 4"):
        ais(Overflowing(), num_chains=4, betas=5)


def test_ais_validates_arguments():
    rbm = BernoulliRBM(6, 3)
    with pytest.raises(ValueError, match="num_chains"):
        ais(rbm.annealing_path(), num_chains=1)
    with pytest.raises(ValueError, match="betas must increase"):
        ais(rbm.annealing_path(), betas=torch.tensor([0.0, 0.7, 0.5, 1.0]))
    with pytest.raises(ValueError, match="method"):
        rbm.estimate_log_partition("tap")
