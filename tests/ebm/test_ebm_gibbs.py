"""Gibbs samplers against exact enumerated marginals and pairwise statistics.

Each test draws ``n`` samples from independent chains (so they are i.i.d. after burn-in) and
requires every first and second moment within five standard errors of its exact value,
:math:`5\\sqrt{p(1-p)/n}` — a fixed seed makes the test deterministic; the tolerance shrinks
with the sample size.
"""

from __future__ import annotations

import copy

import pytest
import torch
from ebm_helpers import DEVICES, all_states, brute_joint_log_f, randomize, small_bm

from flowdist.ebm import BernoulliRBM, DeepBoltzmannMachine, GaussianRBM
from flowdist.mcmc import PersistentChains, run_chain
from flowdist.mcmc.gibbs import (
    _BITS,
    BernoulliDraws,
    _threshold,
    alternating_gibbs_sweep,
    bernoulli,
    site_gibbs_sweep,
)

N = 6000


def _assert_moments_match(samples: torch.Tensor, states: torch.Tensor, probs: torch.Tensor):
    samples = samples.double()
    exact_mean = probs @ states
    exact_pair = (states * probs[:, None]).T @ states
    for got, want in (
        (samples.mean(0), exact_mean),
        (samples.T @ samples / len(samples), exact_pair),
    ):
        tol = 5 * torch.sqrt(want * (1 - want) / len(samples)) + 1e-3
        assert bool(((got - want).abs() <= tol).all()), (got - want).abs().max()


def test_site_gibbs_matches_exact_boltzmann_marginals():
    bm = small_bm(6, scale=1.0, seed=1)
    y = all_states(6)
    probs = bm.log_prob(y).exp().detach()
    x = bm.sample((N,), burn_in=30, generator=torch.Generator().manual_seed(0))
    _assert_moments_match(x, y, probs)


@pytest.mark.parametrize("sizes", [(6, 4), (5, 3, 3)])
def test_block_gibbs_matches_exact_layered_marginals(sizes):
    cls = BernoulliRBM if len(sizes) == 2 else DeepBoltzmannMachine
    model = cls(*sizes) if len(sizes) == 2 else cls(sizes)
    randomize(model.double(), 1.0, seed=4)
    v = all_states(sizes[0])
    probs = model.log_prob(v).exp().detach()
    x = model.sample((N,), burn_in=50, generator=torch.Generator().manual_seed(1))
    _assert_moments_match(x, v, probs)
    # the hidden layers too: states of the full chain against the brute-force joint
    states, log_f = brute_joint_log_f(model)
    joint = torch.softmax(log_f, 0)
    g = torch.Generator().manual_seed(2)
    chain = model.init_chain(N, g)
    for _ in range(50):
        chain = model.chain_step(chain, g)
    _assert_moments_match(torch.cat(chain, -1), states, joint)


def test_gaussian_rbm_gibbs_matches_exact_mean():
    grbm = randomize(GaussianRBM(3, 4, sigma=0.8, dtype=torch.float64), 0.8, seed=5)
    h = all_states(4)
    w, c, b, s = grbm.weight, grbm.hidden_bias, grbm.visible_bias, grbm.sigma
    wh = h @ w.T
    p_h = torch.softmax(h @ c + wh @ (b / s) + 0.5 * (wh**2).sum(-1), 0)
    exact_mean = (p_h @ (b + s * wh)).detach()
    x = grbm.sample((N,), burn_in=50, generator=torch.Generator().manual_seed(3))
    se = x.std(0) / N**0.5
    assert bool(((x.mean(0) - exact_mean).abs() <= 5 * se).all())


def test_thinning_persistence_and_step_count():
    steps = []

    def step(state):
        steps.append(1)
        return state + 1

    draws, final = run_chain(step, torch.zeros(2), num_samples=4, burn_in=3, thin=2)
    assert len(steps) == 3 + 3 * 2 and int(final[0]) == 9
    assert draws[:, 0].tolist() == [3, 5, 7, 9]
    with pytest.raises(ValueError, match="thin"):
        run_chain(step, torch.zeros(2), num_samples=1, burn_in=0, thin=0)

    rbm = randomize(BernoulliRBM(5, 3), 1.0, 0)
    g = torch.Generator().manual_seed(0)
    first = rbm.sample((8,), burn_in=5, persistent=True, generator=g)
    assert torch.equal(rbm._chains.state[0], first)
    # resumed with burn_in=0, the chains continue: two calls give the draws of one longer call
    once, twice = copy.deepcopy(rbm), copy.deepcopy(rbm)  # 8 stored chains: 4 start afresh
    kw = {"num_chains": 4, "thin": 2, "persistent": True}
    g = torch.Generator().manual_seed(1)
    a = twice.sample((8,), burn_in=5, generator=g, **kw)
    b = twice.sample((8,), burn_in=0, generator=g, **kw)
    longer = once.sample((16,), burn_in=5, generator=torch.Generator().manual_seed(1), **kw)
    assert torch.equal(longer, torch.cat([a, b]))
    third = rbm.sample((4, 2), burn_in=0, thin=1, num_chains=2, persistent=True, generator=g)
    assert third.shape == (4, 2, 5)
    with pytest.raises(ValueError, match="num_chains"):
        rbm.sample((5,), num_chains=2)


def test_persistent_chains_reset_on_shape_change():
    chains = PersistentChains(lambda n, g: torch.zeros(n, 2))
    a = chains.get(3, torch.zeros(1))
    chains.state = a + 1
    assert torch.equal(chains.get(3, torch.zeros(1)), a + 1)
    assert torch.equal(chains.get(4, torch.zeros(1)), torch.zeros(4, 2))
    assert chains.get(4, torch.zeros(1, dtype=torch.float64)).dtype == torch.float32


def _exact_law(probs: torch.Tensor, bits: int) -> torch.Tensor:
    """:math:`2^{-bits} \\#\\{s : \\mathrm{fl}_{32}(s) < t\\}` over all ``bits``-bit ``s``,
    counted by bisection with the comparison ``bernoulli`` makes (the integer dtype against its
    float32 threshold, ``torch.lt``)."""
    t = _threshold(probs, bits)
    dtype, half = _BITS[bits][0], 2 ** (bits - 1)
    lo = torch.full(probs.shape, -half, dtype=torch.int64)
    hi = torch.full(probs.shape, half, dtype=torch.int64)  # first s that fails; half: none
    while bool((lo < hi).any()):
        mid = (lo + hi) // 2  # a valid s where lo < hi, below only there
        below = torch.lt(mid.clamp(max=half - 1).to(dtype), t) & (lo < hi)
        lo, hi = torch.where(below, mid + 1, lo), torch.where(below, hi, mid)
    return (lo + half).double() / 2**bits


@pytest.mark.parametrize(("bits", "bound"), [(32, 2.0**-23), (16, 2.0**-17 + 2.0**-24)])
def test_bernoulli_law_is_exact_at_0_and_1_and_within_its_bound(bits, bound):
    g = torch.Generator().manual_seed(0)
    powers = torch.randint(1, 60, (5000,), generator=g).float()
    probs = torch.cat(
        [
            torch.rand(20000, generator=g),
            2.0**-powers,  # tiny
            1.0 - 2.0 ** -powers.clamp(max=24),  # next to 1
            torch.tensor([0.0, 1.0, 0.5, 0.25, 0.75, 1.0 - 2.0**-24]),
        ]
    )
    law = _exact_law(probs, bits)
    assert law[-6].item() == 0.0 and law[-5].item() == 1.0 and law[-4].item() == 0.5
    assert (law - probs.double()).abs().max().item() <= bound


def test_bernoulli_rejects_other_bit_counts():
    with pytest.raises(ValueError, match="bits must be one of"):
        bernoulli(torch.full((2, 300), 0.5), bits=8)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize(
    ("width", "bits"),
    [(6, 32), (300, 32), (300, 16), (306, 16)],
    ids=["uniforms", "32 bits", "16 bits", "16 bits, sliced"],
)
@pytest.mark.parametrize("device", DEVICES)
def test_bernoulli_frequencies_match_their_probabilities(dtype, width, bits, device):
    values = torch.tensor([0.0, 1e-3, 0.3, 0.5, 0.9, 1.0], dtype=dtype, device=device)
    probs = values.repeat(240000 // width, width // 6)
    draws = bernoulli(probs, torch.Generator(device).manual_seed(0), bits=bits)
    assert draws.dtype == dtype and set(draws.unique().tolist()) <= {0.0, 1.0}
    freq, p = draws.double().reshape(-1, 6).mean(0), values.double()
    n = probs.numel() // 6
    assert bool(((freq - p).abs() <= 5 * torch.sqrt(p * (1 - p) / n)).all()), freq
    # neighbouring draws (from random bits: the parts of one int64 and adjacent int64s)
    half = torch.full((4000, width), 0.5, dtype=dtype, device=device)
    neighbours = bernoulli(half, torch.Generator(device).manual_seed(1), bits=bits)[:, :6]
    corr = torch.corrcoef(neighbours.double().T).cpu()
    assert (corr - torch.eye(6, dtype=torch.float64)).abs().max() < 5 / 4000**0.5


def test_bernoulli_into_a_view_and_its_bad_arguments():
    out = torch.full((3, 6), 7.0, dtype=torch.bfloat16)
    g = torch.Generator().manual_seed(0)
    bernoulli(torch.tensor([[0.0, 1.0, 0.0, 1.0, float("nan")]]).expand(3, 5), g, out=out[:, :5])
    assert out[:, :5].tolist() == [[0.0, 1.0, 0.0, 1.0, 0.0]] * 3 and (out[:, 5] == 7).all()
    wide, probs = torch.full((2, 302), 7.0), torch.tensor([0.0, 1.0]).repeat(2, 151)[:, :301]
    bernoulli(probs, g, out=wide[:, :301])  # an odd-width view drawn from random bits
    assert torch.equal(wide[:, :301], probs) and (wide[:, 301] == 7).all()
    for shape in [(), (7,), (2, 3, 5), (2, 3, 256), (4, 257)]:  # rows narrow and wide
        assert bernoulli(torch.full(shape, 0.5), g).shape == shape
    with pytest.raises(ValueError, match=r"out must be a tensor of shape \(3, 5\)"):
        bernoulli(torch.full((3, 5), 0.5), g, out=torch.empty(3, 6))
    with pytest.raises(TypeError, match="probs must be a floating-point"):
        bernoulli(torch.ones(3, dtype=torch.int64), g)


@pytest.mark.parametrize(
    ("width", "dtype", "bits"),
    [
        (300, torch.float32, 16),
        (306, torch.bfloat16, 16),
        (300, torch.float32, 32),
        (6, torch.float32, 32),
        (300, torch.float64, 32),
    ],
)
def test_bernoulli_draws_reuse_their_buffers_for_bernoullis_draws(width, dtype, bits):
    """BernoulliDraws gives, call after call, exactly bernoulli's draws from the same stream —
    and fresh ones each call, not its buffers' previous contents."""
    probs = torch.rand(5, width, generator=torch.Generator().manual_seed(0)).to(dtype)
    draws = BernoulliDraws(probs.shape, dtype, bits, probs.device)
    mine, theirs = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    first = draws(probs, mine, torch.empty(5, width, dtype=dtype))
    second = draws(probs, mine, torch.empty(5, width, dtype=dtype))
    assert torch.equal(first, bernoulli(probs, theirs, bits=bits))
    assert torch.equal(second, bernoulli(probs, theirs, bits=bits))
    assert not torch.equal(first, second)


def test_alternating_sweep_draws_the_odd_layers_then_the_even_ones():
    calls = []

    def record(index, layers):
        calls.append((index, [float(t) for t in layers]))
        return layers[index] + 10

    out = alternating_gibbs_sweep([torch.tensor(float(i)) for i in range(4)], record)
    assert [index for index, _ in calls] == [1, 3, 0, 2]
    assert calls[2][1] == [0.0, 11.0, 2.0, 13.0]  # the even layers see the new odd ones
    assert [float(t) for t in out] == [10.0, 11.0, 12.0, 13.0]


def test_site_sweep_redraws_the_units_in_order():
    # one sweep from y = (1, 0): y1' ~ p(y1 | y2 = 0), then y2' ~ p(y2 | y1'); the reverse scan
    # (y2 first, given y1 = 1) has another one-step law, though the same stationary one
    coupling = torch.tensor([[0.0, 3.0], [3.0, 0.0]], dtype=torch.float64)
    bias = torch.tensor([-1.0, -1.5], dtype=torch.float64)
    n = 40000
    start = torch.tensor([1.0, 0.0], dtype=torch.float64).expand(n, 2)
    y = site_gibbs_sweep(start, coupling, bias, torch.Generator().manual_seed(0))

    def p1(s, other):  # p(y_s = 1 | the other unit)
        return torch.sigmoid(coupling[s, 1 - s] * other + bias[s]).item()

    def law(first, first_given):
        out = {}
        for a in (0, 1):
            pa = p1(first, first_given) if a else 1 - p1(first, first_given)
            for b in (0, 1):
                pb = p1(1 - first, a) if b else 1 - p1(1 - first, a)
                out[(a, b) if first == 0 else (b, a)] = pa * pb
        return out

    in_order, reverse = law(0, 0.0), law(1, 1.0)
    assert max(abs(in_order[s] - reverse[s]) for s in in_order) > 0.1
    for (a, b), p in in_order.items():
        freq = ((y[:, 0] == a) & (y[:, 1] == b)).double().mean().item()
        assert abs(freq - p) < 5 * (p * (1 - p) / n) ** 0.5 + 1e-9, (a, b)
