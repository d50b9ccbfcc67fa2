"""Learning: gradients against finite differences of the exact log-likelihood, CD/PCD training
that measurably improves the exact likelihood, recovery of a planted Boltzmann machine."""

from __future__ import annotations

import pytest
import torch
from ebm_helpers import DEVICES, all_states, brute_joint_log_f, randomize, small_bm

from flowdist.datasets import load_digits
from flowdist.ebm import (
    BernoulliRBM,
    BoltzmannMachine,
    DeepBoltzmannMachine,
    GaussianRBM,
    UnnormalizedDistribution,
    train_cd,
)
from flowdist.ebm.layered import LayeredBoltzmannMachine
from flowdist.ebm.rbm import _AugmentedChains
from flowdist.ebm.train import _from_random_rows


def _finite_difference(fn, params, eps=1e-5):
    grads = []
    for p in params:
        g = torch.zeros_like(p)
        flat, gflat = p.data.view(-1), g.view(-1)
        for i in range(flat.numel()):
            old = float(flat[i])
            flat[i] = old + eps
            up = float(fn().detach())
            flat[i] = old - eps
            down = float(fn().detach())
            flat[i] = old
            gflat[i] = (up - down) / (2 * eps)
        grads.append(g)
    return grads


def _data(n_units, n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((n, n_units), 0.4, dtype=torch.float64), generator=g)


def test_rbm_gradient_matches_finite_differences_of_exact_log_likelihood():
    rbm = randomize(BernoulliRBM(4, 3, dtype=torch.float64), 0.7, 0)
    x = _data(4)
    v = all_states(4)
    p_v = rbm.log_prob(v).exp().detach()
    model_term = rbm.statistics(rbm.rao_blackwell(rbm.chain_from_data(v, None)), weights=p_v)
    ml_grad = [a - b for a, b in zip(rbm.positive_statistics(x), model_term, strict=True)]
    fd = _finite_difference(lambda: rbm.log_prob(x).mean(), list(rbm.parameters()))
    for a, b in zip(ml_grad, fd, strict=True):
        assert torch.allclose(a, b, atol=1e-7)
    # the closed-form statistics equal autograd of -F
    auto = torch.autograd.grad(rbm.unnormalized_log_prob(x).mean(), list(rbm.parameters()))
    for a, b in zip(rbm.positive_statistics(x), auto, strict=True):
        assert torch.allclose(a, b, atol=1e-12)
    # the Monte-Carlo (PCD/CD) estimate converges to it: model term from exact-distribution
    # Gibbs samples, within five standard errors of a statistic in [0, 1]
    n = 20000
    samples = rbm.sample((n,), burn_in=40, generator=torch.Generator().manual_seed(0))
    chain = rbm.chain_from_data(samples, None)
    mc = [
        a - b
        for a, b in zip(rbm.positive_statistics(x), rbm.negative_statistics(chain), strict=True)
    ]
    for a, b in zip(mc, fd, strict=True):
        assert torch.allclose(a, b, atol=5 * 0.5 / n**0.5)


def test_boltzmann_gradient_matches_finite_differences():
    bm = small_bm(5, 0.7, 1)
    x = _data(5)
    y = all_states(5)
    p = bm.log_prob(y).exp().detach()
    model_term = [torch.triu((y * p[:, None]).T @ y, 1), p @ y]
    grad = [a - b for a, b in zip(bm.sufficient_statistics(x), model_term, strict=True)]
    fd = _finite_difference(lambda: bm.log_prob(x).mean(), list(bm.parameters()))
    for a, b in zip(grad, fd, strict=True):
        assert torch.allclose(a, b, atol=1e-7)


def test_dbm_model_statistics_are_the_gradient_of_log_partition():
    dbm = randomize(DeepBoltzmannMachine((3, 2, 3), dtype=torch.float64), 0.8, 2)
    states, log_f = brute_joint_log_f(dbm)
    p = torch.softmax(log_f, 0).detach()
    layers = list(states.split(list(dbm.layer_sizes), dim=-1))
    expected = dbm.statistics(layers, weights=p)
    rao = dbm.statistics(dbm.rao_blackwell(layers), weights=p)
    fd = _finite_difference(lambda: dbm.log_partition(), list(dbm.parameters()))
    for a, b, c in zip(expected, rao, fd, strict=True):
        assert torch.allclose(a, c, atol=1e-7) and torch.allclose(b, c, atol=1e-7)


@pytest.fixture(scope="module")
def digits():
    return load_digits(binarize=True)


def _independent_log_likelihood(train, test):
    p = (train.sum(0) + 1) / (len(train) + 2)
    return float((test * p.log() + (1 - test) * (1 - p).log()).sum(1).mean())


def test_cd_training_beats_independent_bernoulli_and_ais_matches_exact(digits):
    g = torch.Generator().manual_seed(0)
    rbm = BernoulliRBM(64, 16, generator=g)
    before = rbm.log_prob(digits.test_x).mean().item()
    lrs = []

    def lr(epoch):
        lrs.append(epoch)
        return 0.05

    history = train_cd(
        rbm,
        digits.train_x,
        epochs=20,
        batch_size=20,
        lr=lr,
        momentum=0.5,
        generator=g,
        callback=lambda e: rbm.log_prob(digits.test_x).mean().item(),
    )
    after = rbm.log_prob(digits.test_x).mean().item()
    baseline = _independent_log_likelihood(digits.train_x, digits.test_x)
    assert lrs == list(range(20)) and len(history.monitor) == 20 and history.total_seconds > 0
    assert after > before + 20 and after > baseline + 3
    est = rbm.estimate_log_partition(
        data=digits.train_x, generator=torch.Generator().manual_seed(1)
    )
    assert abs(est.log_z - float(rbm.log_partition())) < 0.05


def test_pcd_with_weight_decay_improves_likelihood(digits):
    runs = {}
    for decay in (0.0, 0.01):
        g = torch.Generator().manual_seed(0)
        rbm = BernoulliRBM(64, 8, generator=g)
        before = rbm.log_prob(digits.test_x).mean().item()
        train_cd(
            rbm,
            digits.train_x,
            epochs=10,
            batch_size=50,
            k=1,
            persistent=True,
            lr=0.02,
            momentum=0.5,
            weight_decay=decay,
            generator=g,
        )
        runs[decay] = (before, rbm.log_prob(digits.test_x).mean().item(), rbm.weight.norm())
    for before, after, _ in runs.values():
        assert after > before + 10
    assert runs[0.01][2] < runs[0.0][2]


def test_persistent_chains_start_from_training_rows_drawn_uniformly():
    data = all_states(5, torch.float32)[::4]  # 8 distinct rows
    g = torch.Generator().manual_seed(0)
    for model in (BernoulliRBM(5, 3, generator=g), DeepBoltzmannMachine((5, 4, 3), generator=g)):
        state = _from_random_rows(model, data)(40_000, g)
        v = model.visible(state)
        match = (v[:, None, :] == data[None]).all(-1)  # (chains, rows)
        assert bool(match.any(1).all())  # every chain starts at a training row
        counts = match.sum(0).double()  # uniform: 5000 each, sd 66
        assert bool(((counts - 5000).abs() < 5 * 66).all()), counts
        hidden = state[1:] if isinstance(state, tuple) else []
        assert all(bool(((h == 0) | (h == 1)).all()) for h in hidden)


def test_learning_recovers_a_planted_boltzmann_machine():
    planted = small_bm(8, 0.6, 7)
    with torch.no_grad():  # centred biases: every marginal near 1/2, couplings identifiable
        planted.bias.copy_(-planted.coupling.sum(1) / 2)
    y = all_states(8)
    g = torch.Generator().manual_seed(0)
    idx = torch.multinomial(
        planted.log_prob(y).exp().detach(), 20000, replacement=True, generator=g
    )
    data = y[idx]
    bm = BoltzmannMachine(8, dtype=torch.float64, generator=g)
    start = (bm.coupling - planted.coupling).abs().max()
    train_cd(
        bm,
        data,
        epochs=16,
        batch_size=200,
        persistent=True,
        k=1,
        lr=lambda e: 0.1 if e < 8 else 0.02,
        momentum=0.5,
        generator=g,
    )
    err_w = (bm.coupling - planted.coupling).abs().max()
    err_b = (bm.bias - planted.bias).abs().max()
    assert start > 0.9 and err_w < 0.15 and err_b < 0.2, (start, err_w, err_b)
    gap = planted.log_prob(data).mean() - bm.log_prob(data).mean()
    assert abs(gap.item()) < 0.01
    assert torch.equal(bm.coupling, bm.coupling.T) and bool((bm.coupling.diag() == 0).all())


def test_bfloat16_products_and_time_budget(digits):
    g = torch.Generator().manual_seed(0)
    rbm = BernoulliRBM(64, 16, generator=g, compute_dtype=torch.bfloat16)
    before = rbm.log_prob(digits.test_x).mean().item()
    history = train_cd(
        rbm, digits.train_x, epochs=50, batch_size=20, lr=0.05, generator=g, max_seconds=0.0
    )
    assert len(history.seconds) == 1  # the budget stops training after the first epoch
    train_cd(rbm, digits.train_x, epochs=10, batch_size=20, lr=0.05, generator=g)
    assert rbm.weight.dtype == torch.float32  # mixed precision: parameters keep their dtype
    assert rbm.log_prob(digits.test_x).mean().item() > before + 15


@pytest.mark.parametrize(
    "build",
    [lambda: GaussianRBM(4, 3), lambda: DeepBoltzmannMachine((4, 3, 2))],
    ids=["grbm", "dbm"],
)
def test_train_cd_checks_the_support_once(build, monkeypatch):
    """The support check (a pass over the values and a device sync) runs once per call, on the
    whole data — not on every mini-batch and chain state (these models' statistics go through
    their checked energies and mean-field posteriors)."""
    model = build()
    checked = []
    real = UnnormalizedDistribution._check_support

    def check_support(self, x, name="x"):
        checked.append(name)
        real(self, x, name)

    monkeypatch.setattr(UnnormalizedDistribution, "_check_support", check_support)
    for persistent in (False, True):
        checked.clear()
        train_cd(model, torch.zeros(8, 4), epochs=2, batch_size=2, persistent=persistent)
        assert checked == ["data"]
    model.energy(torch.zeros(2, 4))  # outside training the checks are back
    assert checked == ["data", "x"]


class _ConstantGradient(BernoulliRBM):
    """An RBM whose contrastive gradient is 1 everywhere: train_cd's update rule alone."""

    def contrastive_gradient(self, x, k, generator=None, state=None):
        return [torch.ones_like(p) for p in self.parameters()], (x, x[:, :3])


@pytest.mark.parametrize(
    "momentum", [0.0, 0.5, lambda epoch: 0.5 * epoch], ids=["none", "constant", "schedule"]
)
def test_train_cd_update_is_sgd_with_momentum_and_weight_decay(momentum):
    rbm = randomize(_ConstantGradient(4, 3, dtype=torch.float64), 0.5, 0)
    start = [p.detach().clone() for p in rbm.parameters()]
    train_cd(
        rbm,
        torch.zeros(4, 4, dtype=torch.float64),
        epochs=2,
        batch_size=2,
        lr=0.1,
        momentum=momentum,
        weight_decay=0.2,
    )
    for theta, got in zip(start, rbm.parameters(), strict=True):
        u = torch.zeros_like(theta)
        for epoch in (0, 0, 1, 1):  # two updates per epoch
            mu = momentum(epoch) if callable(momentum) else momentum
            grad = 1.0 - (0.2 * theta if theta.dim() >= 2 else 0.0)  # decay on weights only
            u = mu * u + 0.1 * grad
            theta = theta + u
        torch.testing.assert_close(got.detach(), theta, rtol=0, atol=1e-12)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("persistent", [False, True])
def test_rbm_contrastive_gradient_is_positive_minus_negative_statistics(persistent, fused):
    rbm = randomize(BernoulliRBM(6, 4, dtype=torch.float64), 0.7, 1)
    x = _data(6, n=9)
    g = torch.Generator().manual_seed(0)
    state = rbm.init_chain(5, g) if persistent else None  # 5 chains for 9 data rows
    method = rbm.contrastive_gradient if fused else UnnormalizedDistribution.contrastive_gradient
    grads, (v, h) = method(*([] if fused else [rbm]), x, 2, g, state)
    assert v.shape == (5 if persistent else 9, 6) and h.shape == (v.shape[0], 4)
    expected = [
        a - b
        for a, b in zip(rbm.positive_statistics(x), rbm.negative_statistics((v, h)), strict=True)
    ]
    for a, b in zip(grads, expected, strict=True):
        assert torch.allclose(a, b, atol=1e-12)


def test_scaled_pretraining_rbm_gradient_uses_its_scaled_conditionals():
    from flowdist.ebm.dbm import _ScaledRBM

    rbm = randomize(_ScaledRBM(6, 4, up=2.0, down=1.0, dtype=torch.float64), 0.7, 1)
    x = _data(6, n=9)
    grads, state = rbm.contrastive_gradient(x, 1, torch.Generator().manual_seed(0))
    expected = [
        a - b
        for a, b in zip(rbm.positive_statistics(x), rbm.negative_statistics(state), strict=True)
    ]
    for a, b in zip(grads, expected, strict=True):
        assert torch.allclose(a, b, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("compute_dtype", [None, torch.bfloat16])
def test_fused_rbm_gradient_on_wide_layers_draws_the_exact_conditionals(compute_dtype, device):
    # W = 0 makes every unit independent, p(v_i = 1) = sigmoid(b_i), p(h_j = 1) = sigmoid(c_j);
    # 300 visible and 260 hidden units take bernoulli's random-bits path
    rbm = BernoulliRBM(300, 260, init_std=0.0, compute_dtype=compute_dtype, device=device)
    with torch.no_grad():
        rbm.visible_bias.copy_(torch.linspace(-4.0, 4.0, 300))
        rbm.hidden_bias.copy_(torch.linspace(-3.0, 3.0, 260))
    n = 4000
    g = torch.Generator(device).manual_seed(0)
    for state in (None, rbm.init_chain(n, g)):  # CD-1 from the data, PCD-1 from chains
        grads, (v, h) = rbm.contrastive_gradient(torch.zeros(n, 300, device=device), 1, g, state)
        for draws, bias in ((v, rbm.visible_bias), (h, rbm.hidden_bias)):
            p = torch.sigmoid(bias)
            assert bool(((draws.mean(0) - p).abs() <= 5 * (p * (1 - p) / n).sqrt()).all())
        # x = 0; a 16-bit compute dtype rounds the gradient, the bias terms too, to 2^-9
        rtol = 2**-8 if compute_dtype else 1.3e-6
        torch.testing.assert_close(grads[1], -v.mean(0), rtol=rtol, atol=1e-5)
        # P_x = P_v = sigmoid(c), summed in one product; a 16-bit compute dtype on a CPU rounds
        # 127 P stochastically (_AugmentedChains): 2n independent errors of variance <= 1/4
        atol = 5 * (2 * n / 4) ** 0.5 / 127 / n if compute_dtype and device == "cpu" else 1e-6
        assert grads[2].abs().max() < atol


@pytest.mark.parametrize(("n", "m"), [(8, 8), (8, 4), (4, 8)])
def test_integer_gradient_product_is_the_exact_product_on_average(n, m):
    """A 16-bit compute dtype on a CPU takes the gradient product in int8: alpha [P, 1] with
    rows scaled by 1 (data) or r = n/m (chains) is rounded stochastically, the chains' sign
    moved to the binary factor. Every draw is within one step per row of the exact product;
    the mean of K draws within the rounding's bias (1/512 step per row) plus 5 standard
    deviations of the rounding noise (variance <= 1/4 step^2 per row)."""
    rbm = BernoulliRBM(300, 260, compute_dtype=torch.bfloat16)
    chains = _AugmentedChains(rbm, n, m, torch.device("cpu"))
    assert chains.integer
    g = torch.Generator().manual_seed(0)
    chains.rows[:, :-1] = (torch.rand(n + m, 300, generator=g) < 0.3).to(torch.bfloat16)
    p = torch.rand(n + m, 260, generator=g)
    p[:, :7] = torch.tensor([0.0, 1.0, 0.5, 1 / 127, 1e-6, 1 - 1e-6, 0.3])  # edge cases
    r = n / m
    s = torch.tensor([1.0] * n + [-r] * m, dtype=torch.float64)[:, None]
    exact = chains.rows.double().T @ (s * torch.cat([p.double(), torch.ones(n + m, 1)], 1))
    steps, draws = n + m, 300
    total = torch.zeros_like(exact)
    for _ in range(draws):
        chains._scale(p, slice(None))
        draw = chains._integer_product(g).double() * chains.unit
        assert bool(((draw - exact).abs() < steps * chains.unit).all())
        total += draw
    bias, noise = steps / 512, 5 * (steps / 4 / draws) ** 0.5
    assert (total / draws - exact).abs().max() < (bias + noise) * chains.unit
    # the rounding is random: two draws of the same product differ
    chains._scale(p, slice(None))
    first = chains._integer_product(g).clone()
    chains._scale(p, slice(None))
    assert not torch.equal(first, chains._integer_product(g))


def test_fused_rbm_chain_samples_the_exact_marginals():
    rbm = randomize(BernoulliRBM(5, 3, dtype=torch.float64), 1.0, 2)
    g = torch.Generator().manual_seed(0)
    n = 20000
    state = rbm.init_chain(n, g)
    x = _data(5, n=3)
    for _ in range(30):  # PCD-1 moves of a fixed model
        _, state = rbm.contrastive_gradient(x, 1, g, state)
    v = all_states(5)
    exact = (rbm.log_prob(v).exp()[:, None] * v).sum(0)
    assert torch.allclose(state[0].mean(0), exact, atol=5 * 0.5 / n**0.5)
    # h is a draw from p(h | v) of the returned v
    p_h = torch.sigmoid(state[0] @ rbm.weight + rbm.hidden_bias)
    assert torch.allclose(state[1].mean(0), p_h.mean(0), atol=5 * 0.5 / n**0.5)


@pytest.mark.parametrize("make", [lambda: BernoulliRBM(4, 3), lambda: small_bm(4)])
def test_log_prob_differentiates_through_the_exact_log_partition(make):
    model = randomize(make().double(), 0.7, 0)
    x = all_states(4)[[1, 5, 7, 12]]
    model.log_prob(x).mean().backward()
    got = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    # brute force: log p(x) = log p~(x) - logsumexp over all 16 visible states
    log_p = model.unnormalized_log_prob(x) - model.unnormalized_log_prob(all_states(4)).logsumexp(0)
    log_p.mean().backward()
    for a, p in zip(got, model.parameters(), strict=True):
        torch.testing.assert_close(a, p.grad)
    assert any(bool(g.abs().sum() > 0.01) for g in got)
    with torch.no_grad():  # the cached value serves without gradients
        torch.testing.assert_close(model.log_prob(x), log_p.detach())


def test_train_cd_leaves_frozen_parameters_and_a_fixed_sigma_unchanged():
    g = torch.Generator().manual_seed(0)
    data = (torch.rand(40, 6, generator=g) < 0.5).float()
    for model, frozen in (
        (BernoulliRBM(6, 4, generator=g), "biases.0"),
        (small_bm(6), "bias"),
        (GaussianRBM(6, 4, generator=g), "visible_bias"),
    ):
        x = torch.randn(40, 6, generator=g) if isinstance(model, GaussianRBM) else data
        model = model.to(x.dtype)
        param = dict(model.named_parameters())[frozen].requires_grad_(False)
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        train_cd(model, x, epochs=2, batch_size=10, lr=0.05, generator=g)
        for name, p in model.named_parameters():
            assert torch.equal(p, before[name]) == (p is param), name
    everything_frozen = GaussianRBM(3, 2, generator=g).requires_grad_(False)
    before = [p.clone() for p in everything_frozen.parameters()]
    train_cd(everything_frozen, torch.randn(10, 3, generator=g), epochs=1, batch_size=5)
    assert all(map(torch.equal, before, everything_frozen.parameters()))
    grbm = GaussianRBM(4, 3, sigma=0.01, min_sigma=0.05, generator=g)  # fixed, below min_sigma
    train_cd(grbm, 0.01 * torch.randn(50, 4, generator=g), epochs=1, lr=1e-4, generator=g)
    torch.testing.assert_close(grbm.sigma, torch.full((4,), 0.01))


@pytest.mark.parametrize(
    "make",
    [
        lambda g: BernoulliRBM(6, 3, generator=g),
        lambda g: GaussianRBM(6, 3, generator=g),
        lambda g: BoltzmannMachine(6, generator=g),
        lambda g: DeepBoltzmannMachine((6, 4, 3), generator=g),
        lambda g: LayeredBoltzmannMachine((6, 4, 3), generator=g),  # samples its data term
    ],
    ids=["rbm", "gaussian-rbm", "bm", "dbm", "layered"],
)
@pytest.mark.parametrize("persistent", [False, True], ids=["cd", "pcd"])
def test_training_depends_on_the_generator_only(make, persistent):
    data = (torch.rand(40, 6, generator=torch.Generator().manual_seed(9)) < 0.4).float()
    trained = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        g = torch.Generator().manual_seed(0)
        model = make(g)
        train_cd(model, data, epochs=2, batch_size=10, persistent=persistent, generator=g)
        trained.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(*trained)


@pytest.mark.parametrize("k", [1, 3])
def test_fused_cd_k_chain_follows_the_k_step_kernel(k):
    # CD-k from one data row: the returned v_k has the law T^k(x, .), T(v, v') = sum_h p(h|v)
    # p(v'|h), computed exactly by enumerating the 32 visible and 8 hidden states
    rbm = randomize(BernoulliRBM(5, 3, dtype=torch.float64), 1.5, 4)
    v, h = all_states(5), all_states(3)
    p_h = torch.sigmoid(v @ rbm.weight + rbm.hidden_bias)  # (32, 3)
    p_v = torch.sigmoid(h @ rbm.weight.T + rbm.visible_bias)  # (8, 5)
    h_given_v = (h[None] * p_h[:, None] + (1 - h[None]) * (1 - p_h[:, None])).prod(-1)
    v_given_h = (v[None] * p_v[:, None] + (1 - v[None]) * (1 - p_v[:, None])).prod(-1)
    kernel = h_given_v @ v_given_h  # (32, 32)
    start = 19
    law = torch.linalg.matrix_power(kernel, k)[start]
    n = 20000
    x = v[start].expand(n, 5)
    _, (v_k, _) = rbm.contrastive_gradient(x, k, torch.Generator().manual_seed(k))
    exact = law @ v
    if k > 1:  # T^k differs from T here: a chain that never redrew h would fail
        assert (exact - kernel[start] @ v).abs().max() > 0.05
    assert torch.allclose(v_k.mean(0), exact, atol=5 * 0.5 / n**0.5)


class _GenericLoopRBM(BernoulliRBM):
    """A BernoulliRBM that train_cd trains with its generic loop (an overridden hook)."""

    def after_update(self) -> None:
        pass


@pytest.mark.parametrize(
    ("persistent", "k", "num_chains", "momentum", "weight_decay"),
    [
        (True, 1, None, 0.0, 0.0),
        (True, 2, 7, lambda epoch: 0.5 * epoch, 0.01),
        (False, 1, None, 0.5, 0.01),
        (False, 3, None, lambda epoch: 0.0, 0.0),
    ],
    ids=["pcd", "pcd2-chains-schedule-decay", "cd-momentum-decay", "cd3-zero-schedule"],
)
def test_rbm_fused_epochs_equal_the_generic_loop(persistent, k, num_chains, momentum, weight_decay):
    """train_cd's own epochs for a BernoulliRBM (the augmented matrix, parameters written back
    per epoch) make the generic loop's updates and random draws: the same parameters, to
    rounding, after 3 epochs of mini-batches that do not divide the data, with a callback that
    changes the parameters between epochs."""
    kw = {"k": 1, "num_chains": 5, "start": None, "momentum": False}
    assert BernoulliRBM(2, 2)._fused_sgd(**kw) is not None
    assert _GenericLoopRBM(2, 2)._fused_sgd(**kw) is None
    data = _data(9, n=23, seed=3)
    trained = []
    for cls in (BernoulliRBM, _GenericLoopRBM):
        rbm = randomize(cls(9, 5, dtype=torch.float64), 0.5, 1)
        g = torch.Generator().manual_seed(0)

        def shrink(epoch, rbm=rbm):
            with torch.no_grad():
                rbm.weight.mul_(0.9)

        train_cd(
            rbm,
            data,
            epochs=3,
            batch_size=5,
            k=k,
            persistent=persistent,
            num_chains=num_chains,
            lr=0.2,
            momentum=momentum,
            weight_decay=weight_decay,
            generator=g,
            callback=shrink,
        )
        trained.append([p.detach().clone() for p in rbm.parameters()])
        trained[-1].append(torch.rand(3, generator=g))  # the generator advanced alike
    assert (trained[0][0] - randomize(BernoulliRBM(9, 5).double(), 0.5, 1).weight).abs().max() > 0.1
    for fused, generic in zip(*trained, strict=True):
        torch.testing.assert_close(fused, generic, rtol=0, atol=1e-12)
