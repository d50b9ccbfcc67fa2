"""Deep Boltzmann machine: mean-field bound, pre-training and joint training."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch
from ebm_helpers import all_states, randomize

from flowdist.datasets import load_digits
from flowdist.ebm import BernoulliRBM, DeepBoltzmannMachine, train_cd
from flowdist.ebm.dbm import _ScaledRBM
from flowdist.ebm.layered import layer_input
from flowdist.mcmc.gibbs import bernoulli


def test_mean_field_is_a_fixed_point_and_bounds_the_exact_log_likelihood():
    dbm = randomize(DeepBoltzmannMachine((5, 4, 3, 2), dtype=torch.float64), 1.0, 0)
    v = all_states(5)
    mus = dbm.mean_field(v, num_iters=200)
    for i in range(1, 4):
        again = torch.sigmoid(layer_input(i, mus, list(dbm.weights), list(dbm.biases)))
        assert torch.allclose(again, mus[i], atol=1e-8)
    bound = dbm.variational_lower_bound(v, num_iters=200)
    exact = dbm.log_prob(v)
    assert bool((bound <= exact + 1e-9).all())
    assert (exact - bound).max().item() > 1e-4  # a real bound, not an identity
    # with zero couplings the posterior factorizes: the bound is tight
    with torch.no_grad():
        for w in dbm.weights:
            w.zero_()
    assert torch.allclose(dbm.variational_lower_bound(v), dbm.log_prob(v), atol=1e-10)


def test_dbm_needs_two_hidden_layers():
    with pytest.raises(ValueError, match="BernoulliRBM"):
        DeepBoltzmannMachine((5, 4))
    with pytest.raises(ValueError, match="layer_sizes"):
        DeepBoltzmannMachine((5, 0, 3))


def test_energy_of_large_even_layers_points_to_the_bound():
    dbm = DeepBoltzmannMachine((4, 3, 30))
    with pytest.raises(ValueError, match="variational_lower_bound"):
        dbm.energy(torch.zeros(2, 4))


def test_pretraining_and_joint_training_improve_the_likelihood():
    digits = load_digits(binarize=True)
    x, xt = digits.train_x, digits.test_x
    g = torch.Generator().manual_seed(0)
    dbm = DeepBoltzmannMachine((64, 12, 6), generator=g)
    initial = dbm.log_prob(xt).mean().item()
    dbm.pretrain(x, epochs=8, lr=0.05, batch_size=20, generator=g)
    assert dbm.log_partition_method == "exact"  # 12 odd units: enumerable
    pretrained = dbm.log_prob(xt).mean().item()
    train_cd(dbm, x, epochs=8, batch_size=20, persistent=True, lr=0.01, momentum=0.5, generator=g)
    joint = dbm.log_prob(xt).mean().item()
    bound = dbm.variational_lower_bound(xt).mean().item()
    assert pretrained > initial + 10
    assert joint > pretrained
    assert joint - 3 < bound <= joint


def test_pretraining_follows_the_doubled_rbm_recipe():
    # Salakhutdinov & Hinton (2009): the bottom RBM doubles its up-pass, the top one its
    # down-pass, middle ones both; each trains on samples of the one below's doubled posterior,
    # and a middle layer's bias is the mean of the two RBMs' biases for it
    sizes = (6, 4, 3, 2)
    data = (torch.rand(40, 6, generator=torch.Generator().manual_seed(1)) < 0.4).float()
    dbm = DeepBoltzmannMachine(sizes)
    dbm.pretrain(data, epochs=2, batch_size=10, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    x, rbms = data, []
    for i, (up, down) in enumerate([(2.0, 1.0), (2.0, 2.0), (1.0, 2.0)]):
        rbm = _ScaledRBM(sizes[i], sizes[i + 1], up=up, down=down, generator=g)
        train_cd(rbm, x, epochs=2, batch_size=10, generator=g)
        rbms.append(rbm)
        with torch.no_grad():
            x = bernoulli(torch.sigmoid(rbm.hidden_bias + up * (x @ rbm.weight)), generator=g)
    for i, rbm in enumerate(rbms):
        assert torch.equal(dbm.weights[i], rbm.weight)
    assert torch.equal(dbm.biases[0], rbms[0].visible_bias)
    assert torch.equal(dbm.biases[3], rbms[2].hidden_bias)
    for i in (1, 2):
        assert torch.equal(dbm.biases[i], (rbms[i - 1].hidden_bias + rbms[i].visible_bias) / 2)


@pytest.mark.parametrize("shape", [(30, 30), (30, 30, 30)], ids=["rbm", "dbm"])
def test_an_ais_estimate_proven_too_low_warns(shape):
    model = DeepBoltzmannMachine(shape) if len(shape) > 2 else BernoulliRBM(*shape)
    model = randomize(model, 0.05, 0)  # weak couplings: short AIS runs are accurate
    g = torch.Generator().manual_seed(0)
    estimate = model.estimate_log_partition(num_chains=20, betas=200, generator=g)
    x = (torch.rand(8, 30, generator=g) < 0.5).float()
    score = model.variational_lower_bound if len(shape) > 2 else model.log_prob
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fine = score(x)
    assert bool((fine < 0).all())
    # an estimate 1000 nats low makes some probabilities exceed 1: the model must say so
    low = dataclasses.replace(estimate, log_z=estimate.log_z - 1000.0)
    model._estimate = (model._state_key(), low)
    with pytest.warns(RuntimeWarning, match="nats too low"):
        wrong = score(x)
    torch.testing.assert_close(wrong, fine + 1000.0)
