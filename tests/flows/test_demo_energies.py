"""Tests of the planar-flow demo section: reverse-KL fitting, KL estimates, Pyro interop."""

from __future__ import annotations

import math

import pyro
import pyro.distributions as pdist
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO
from pyro.infer.autoguide import AutoNormal

from flowdist.flows import PlanarFlow, demo_energies
from flowdist.flows.demo_energies import fit_reverse_kl, kl_estimate, run
from flowdist.plots import density_grid, grid_points, image_grid, tile_images
from flowdist.report import Report
from flowdist.targets import U1, U2, quadrature_log_partition


def _flow(k: int, seed: int = 0) -> PlanarFlow:
    return PlanarFlow(2, k, generator=torch.Generator().manual_seed(seed))


def test_short_reverse_kl_fit_reduces_kl():
    flow = _flow(8)
    before, se_before = kl_estimate(flow, U1, n=5000, seed=1)
    history = fit_reverse_kl(flow, U1, steps=300, batch=128, seed=0)
    after, se_after = kl_estimate(flow, U1, n=5000, seed=1)
    assert history.loss.shape == (300,) and torch.isfinite(history.loss).all()
    assert 0 < after < before - 0.5
    assert before - after > 20 * math.hypot(se_before, se_after)


def test_fit_is_deterministic_given_seeds():
    a, b, c = _flow(2), _flow(2), _flow(2)
    ha = fit_reverse_kl(a, U2, steps=20, batch=16, seed=3)
    hb = fit_reverse_kl(b, U2, steps=20, batch=16, seed=3)
    hc = fit_reverse_kl(c, U2, steps=20, batch=16, seed=4)
    assert torch.equal(ha.loss, hb.loss)
    assert not torch.equal(ha.loss, hc.loss)
    assert kl_estimate(a, U2, n=100, seed=0) == kl_estimate(b, U2, n=100, seed=0)


def test_annealing_schedule():
    history = fit_reverse_kl(_flow(2), U2, steps=10, batch=4, anneal_steps=4)
    expected = torch.tensor([0.01, 0.26, 0.51, 0.76, 1, 1, 1, 1, 1, 1], dtype=torch.float64)
    torch.testing.assert_close(history.beta, expected)


def test_kl_estimate_of_an_exact_fit_is_zero():
    # With w = 0 and b = 0 every planar step is the identity, so the flow is N(0, I); against
    # a standard normal "energy" the KL is 0 (whatever the layout of the parameters).
    flow = _flow(2)
    with torch.no_grad():
        for name, p in flow.named_parameters():
            if name.rsplit(".", 1)[-1] in ("w", "b"):
                p.zero_()

    class Gauss:
        name = "N(0, I)"

        def energy(self, z):
            return 0.5 * (z * z).sum(-1)

        def log_partition(self):
            return math.log(2 * math.pi)

    kl, se = kl_estimate(flow, Gauss(), n=1000)
    assert abs(kl) < 1e-5 and se < 1e-5


@pytest.mark.parametrize("bad", [0, -3, 2.5])
def test_fit_rejects_bad_budget(bad):
    with pytest.raises(ValueError, match="steps"):
        fit_reverse_kl(_flow(2), U1, steps=bad)


def test_flow_inside_pyro_sample():
    flow = _flow(4)
    data = torch.randn(10, 2, generator=torch.Generator().manual_seed(1))

    def model():
        pyro.sample("z", flow())
        with pyro.plate("data", 10):
            pyro.sample("x", flow(), obs=data)

    pyro.set_rng_seed(0)
    trace = poutine.trace(model).get_trace()
    trace.compute_log_prob()
    z = trace.nodes["z"]["value"]
    assert z.shape == (2,)
    # the trace scores its own sample from the forward pass; a copy goes through the inverse
    torch.testing.assert_close(
        trace.nodes["z"]["log_prob"], flow().log_prob(z.clone()), atol=1e-5, rtol=1e-5
    )
    assert trace.nodes["x"]["log_prob"].shape == (10,)
    torch.testing.assert_close(trace.nodes["x"]["log_prob"], flow().log_prob(data))


# A non-Gaussian posterior: z ~ N(0, I_2), y ~ N(|z|, 0.2^2), y = 2 observed; the posterior
# is a ring of radius ~2, which no Gaussian fits.
Y, NOISE = 2.0, 0.2


def ring_model():
    z = pyro.sample("z", pdist.Normal(torch.zeros(2), torch.ones(2)).to_event(1))
    pyro.sample("y", pdist.Normal(z.norm(dim=-1), NOISE), obs=torch.tensor(Y))


def _fit_svi(guide, steps: int = 300) -> tuple[float, float]:
    """Fit with SVI, then the ELBO and its standard error from 3 × 10^4 particles."""
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    svi = SVI(
        ring_model, guide, pyro.optim.Adam({"lr": 0.02}), Trace_ELBO(16, vectorize_particles=True)
    )
    for _ in range(steps):
        svi.step()
    pyro.set_rng_seed(1)
    elbo = Trace_ELBO(num_particles=10_000, vectorize_particles=True, max_plate_nesting=0)
    values = torch.tensor([-elbo.loss(ring_model, guide) for _ in range(3)])
    return values.mean().item(), values.std().item() / math.sqrt(3) + 1e-3


def test_flow_guide_beats_mean_field_on_a_ring_posterior():
    flow = _flow(8)

    def flow_guide():
        pyro.module("flow", flow)
        pyro.sample("z", flow())

    flow_elbo, flow_se = _fit_svi(flow_guide)
    normal_elbo, normal_se = _fit_svi(AutoNormal(ring_model))

    def joint_energy(z):
        r = z.norm(dim=-1)
        prior = 0.5 * (z * z).sum(-1) + math.log(2 * math.pi)
        like = 0.5 * ((Y - r) / NOISE) ** 2 + math.log(NOISE * math.sqrt(2 * math.pi))
        return prior + like

    log_evidence = quadrature_log_partition(joint_energy, half_width=6.0, step=0.02)
    # Both are lower bounds on log p(y); the flow's is ~1.3 nats higher (noise ~0.01).
    assert flow_elbo < log_evidence + 5 * flow_se
    assert normal_elbo < log_evidence + 5 * normal_se
    assert flow_elbo - normal_elbo > 0.5
    assert flow_elbo - normal_elbo > 20 * math.hypot(flow_se, normal_se)


def test_run_quick_writes_figure_and_table(tmp_path, monkeypatch):
    # a smaller budget than quick mode's: this checks the report, not the fits
    tiny = demo_energies._Budget(steps=10, batch=16, grid=24, kl_samples=200, test_samples=100)
    monkeypatch.setattr(demo_energies, "_QUICK", tiny)
    report = Report(tmp_path)
    scores = run(report, quick=True, seed=0, progress=False)
    report.write()
    assert (tmp_path / "figures" / "planar_energies.png").stat().st_size > 5_000
    text = (tmp_path / "report.md").read_text()
    assert "| U4 |" in text and "KL, K = 32" in text and "E_p[log q], K = 32" in text
    assert len(scores) == 1 and scores[0].train_seconds > 0
    assert math.isfinite(scores[0].test_log_likelihood)


def test_grid_points_and_density_grid():
    points, area = grid_points(4.0, 4)
    assert points.shape == (4, 4, 2)
    assert points[0, 0].tolist() == [-3.0, -3.0] and points[0, 1].tolist() == [-1.0, -3.0]
    assert area.item() == 4.0
    fig = density_grid(
        [[torch.ones(4, 4)] * 2], half_width=4.0, row_labels=["a"], col_labels=["b", "c"]
    )
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match="row_labels"):
        density_grid([[torch.ones(4, 4)]], half_width=4.0, row_labels=[], col_labels=["b"])


def test_tile_images_layout():
    images = torch.arange(5, dtype=torch.float32).repeat_interleave(4).reshape(5, 4) + 1
    tiled = tile_images(images, nrow=2, shape=(2, 2), pad=1)
    assert tiled.shape == (3 * 3 - 1, 2 * 3 - 1)
    assert tiled[0, 0] == 1 and tiled[0, 3] == 2 and tiled[3, 0] == 3 and tiled[6, 0] == 5
    assert tiled[6, 3] == 1  # the empty cell holds the minimum
    assert image_grid(images, 2, (2, 2)).axes
    with pytest.raises(ValueError, match="images of shape"):
        tile_images(torch.ones(3, 5), nrow=2, shape=(2, 2))
    with pytest.raises(ValueError, match=r"images of shape \(3, 64\)"):  # 12 images of 16
        tile_images(torch.ones(3, 64), nrow=2, shape=(4, 4))
    images[0, 0] = float("nan")
    assert tile_images(images, nrow=2, shape=(2, 2), pad=1)[6, 3] == 1  # padding stays finite
    with pytest.raises(ValueError, match="n must be a positive integer"):
        grid_points(1.0, 2.5)


def test_report_tables_and_figure_names(tmp_path):
    report = Report(tmp_path)
    report.table(["model", "note"], [["a|b", 1.5]])
    with pytest.raises(ValueError, match="2 cells each"):
        report.table(["model", "note"], [["a"]])
    for bad in ("sub/x", "../escape", ".hidden"):
        with pytest.raises(ValueError, match="plain file name"):
            report.figure(None, bad, "caption")
    report.write()
    assert "| a\\|b | 1.5 |" in (tmp_path / "report.md").read_text()
