"""Tests of flowdist.targets: the 2-D energies of Rezende & Mohamed (2015, Table 1)."""

from __future__ import annotations

import math

import pytest
import torch

from flowdist.targets import (
    CONFINEMENT_SCALE,
    TARGETS,
    U1,
    U2,
    U3,
    U4,
    confinement,
    quadrature_log_partition,
)


def _u(target, z1: float, z2: float) -> float:
    return target.energy(torch.tensor([z1, z2], dtype=torch.float64)).item()


# Values worked out by hand from Table 1 (w1 = sin(pi z1 / 2), w2 = 3 exp(-(z1-1)^2/0.72),
# w3 = 3 sigmoid((z1-1)/0.3)).
HAND_VALUES = [
    # U1(0, 0): ring 0.5 (2/0.4)^2 = 12.5; -log(2 exp(-0.5 (2/0.6)^2)) = 50/9 - log 2.
    (U1, 0.0, 0.0, 12.5 + 50 / 9 - math.log(2)),
    # U1(2, 0): on the ring; -log(1 + exp(-0.5 (4/0.6)^2)) = -log(1 + e^{-200/9}).
    (U1, 2.0, 0.0, -math.log1p(math.exp(-200 / 9))),
    # U1(0, 3): ring 0.5 (1/0.4)^2 = 3.125, same bimodal term as at the origin.
    (U1, 0.0, 3.0, 3.125 + 50 / 9 - math.log(2)),
    # U2(1, 1): w1 = sin(pi/2) = 1, on the ridge.
    (U2, 1.0, 1.0, 0.0),
    # U2(0, 1): w1 = 0, 0.5 (1/0.4)^2.
    (U2, 0.0, 1.0, 3.125),
    # U2(-1, 0): w1 = -1, 0.5 (1/0.4)^2.
    (U2, -1.0, 0.0, 3.125),
    # U3(1, -0.5): w1 = 1, w2 = 3; d = -1.5; -log(e^{-0.5 (1.5/.35)^2} + e^{-0.5 (1.5/.35)^2}).
    (U3, 1.0, -0.5, 0.5 * (1.5 / 0.35) ** 2 - math.log(2)),
    # U3(0, 0): w1 = 0, w2 = 3 e^{-1/0.72}; -log(1 + e^{-0.5 (w2/0.35)^2}).
    (U3, 0.0, 0.0, -math.log1p(math.exp(-0.5 * (3 * math.exp(-1 / 0.72) / 0.35) ** 2))),
    # U4(1, 1): w1 = 1, w3 = 1.5; -log(1 + e^{-0.5 (1.5/0.35)^2}).
    (U4, 1.0, 1.0, -math.log1p(math.exp(-0.5 * (1.5 / 0.35) ** 2))),
    # U4(1, 0.25): d = -0.75; -log(e^{-0.5 (0.75/0.4)^2} + e^{-0.5 (0.75/0.35)^2}).
    (
        U4,
        1.0,
        0.25,
        -math.log(math.exp(-0.5 * (0.75 / 0.4) ** 2) + math.exp(-0.5 * (0.75 / 0.35) ** 2)),
    ),
]


@pytest.mark.parametrize(("target", "z1", "z2", "expected"), HAND_VALUES)
def test_energy_matches_hand_computed_values(target, z1, z2, expected):
    assert _u(target, z1, z2) == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_energies_are_stable_far_from_the_modes():
    # exp(-U) underflows there; the logsumexp form stays finite and exact:
    # U3(0, 40): both bumps at d = 40 and d = 40 + w2; the first dominates.
    u = _u(U3, 0.0, 40.0)
    assert math.isfinite(u)
    w2 = 3 * math.exp(-1 / 0.72)
    assert u == pytest.approx(
        0.5 * (40 / 0.35) ** 2 - math.log1p(math.exp(-(w2 * 40 + w2**2 / 2) / 0.35**2))
    )
    assert math.isfinite(_u(U1, 30.0, -30.0))


def test_confinement_leaves_the_window_unchanged():
    axis = torch.linspace(-4, 4, 161, dtype=torch.float64)
    z = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), dim=-1)
    for target in (U2, U3, U4):
        assert target.confined
        assert torch.equal(target.energy(z), target.printed_energy(z))
    assert not U1.confined and torch.equal(U1.energy(z), U1.printed_energy(z))


def test_confinement_outside_the_window():
    z1 = torch.tensor([4.0, 4.5, -5.0, 6.0], dtype=torch.float64)
    s = CONFINEMENT_SCALE
    expected = torch.tensor([0.0, 0.5 * (0.5 / s) ** 2, 0.5 * (1 / s) ** 2, 0.5 * (2 / s) ** 2])
    torch.testing.assert_close(confinement(z1), expected.double())
    z = torch.tensor([[5.0, 0.3]], dtype=torch.float64)
    assert U2.energy(z).item() == pytest.approx(U2.printed_energy(z).item() + 2.0)


def test_log_partition_converged_in_box_size_and_step():
    for target in TARGETS.values():
        base = quadrature_log_partition(target.energy, half_width=8.0, step=0.04)
        finer = quadrature_log_partition(target.energy, half_width=8.0, step=0.02)
        wider = quadrature_log_partition(target.energy, half_width=16.0, step=0.04)
        assert abs(finer - base) < 1e-10, target.name
        assert abs(wider - base) < 1e-10, target.name
        assert target.log_partition() == pytest.approx(finer, abs=1e-10), target.name


def test_printed_energies_are_not_normalisable():
    # Without confinement, log Z of U2-U4 grows by log 2 each time the box width doubles.
    for target in (U2, U3, U4):
        small, big = (
            quadrature_log_partition(target.printed_energy, half_width=w, step=0.04)
            for w in (8.0, 16.0)
        )
        assert big - small == pytest.approx(math.log(2), abs=1e-6), target.name


def test_log_prob_is_normalised_energy():
    z = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    for target in TARGETS.values():
        torch.testing.assert_close(target.unnormalized_log_prob(z), -target.energy(z))
        torch.testing.assert_close(target.log_prob(z), -target.energy(z) - target.log_partition())


def test_batch_shapes_and_dtypes():
    z = torch.zeros(3, 4, 2, dtype=torch.float32)
    for target in TARGETS.values():
        u = target.energy(z)
        assert u.shape == (3, 4) and u.dtype == torch.float32


@pytest.mark.parametrize(
    ("z", "error", "match"),
    [
        ([0.0, 1.0], TypeError, "z must be a torch.Tensor"),
        (torch.zeros(3, 2, dtype=torch.long), TypeError, "z must be a floating-point"),
        (torch.zeros(3, 3), ValueError, r"z must have shape \(\.\.\., 2\)"),
        (torch.tensor(1.0), ValueError, r"z must have shape"),
    ],
)
def test_bad_input(z, error, match):
    for target in TARGETS.values():
        with pytest.raises(error, match=match):
            target.energy(z)


def test_quadrature_rejects_misaligned_box():
    with pytest.raises(ValueError, match="half_width"):
        quadrature_log_partition(U1.energy, half_width=1.0, step=0.3)


def test_samples_follow_the_target():
    # U2's z2-integral is the same for every z1, so z1 is distributed as exp(-c(z1)): the
    # documented 13.5% of the mass lies outside the window, and z1 is symmetric.
    s = CONFINEMENT_SCALE * math.sqrt(2 * math.pi)
    outside = s / (8 + s)
    z = U2.sample(20_000, generator=torch.Generator().manual_seed(0))
    assert z.shape == (20_000, 2) and z.dtype == torch.float32
    se = math.sqrt(outside * (1 - outside) / 20_000)
    assert abs((z[:, 0].abs() > 4).double().mean().item() - outside) < 5 * se
    assert abs(z[:, 0].double().mean().item()) < 5 * 4.2 / math.sqrt(20_000)
    # on the ridge: z2 - w1(z1) ~ N(0, 0.4^2)
    d = (z[:, 1] - torch.sin(math.pi * z[:, 0] / 2)).double()
    assert abs(d.std().item() - 0.4) < 0.01


def test_samples_are_seeded():
    a = U1.sample(10, generator=torch.Generator().manual_seed(3))
    b = U1.sample(10, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    # U1 is a ring of radius 2 and width 0.4: nearly all draws within 2.5 widths of it
    radius = U1.sample(5000, generator=torch.Generator().manual_seed(0)).norm(dim=-1)
    assert ((radius - 2).abs() < 1.0).double().mean().item() > 0.98
    with pytest.raises(ValueError, match="n must be a positive integer"):
        U1.sample(0)
