import math

import torch

from flowdist.report import Report
from flowdist.vae.demo import run


def test_demo_quick_writes_figures_and_scores(tmp_path):
    report = Report(tmp_path)
    scores = run(report, quick=True, seed=0, device=torch.device("cpu"), progress=False)
    assert [(s.model, s.evaluation) for s in scores] == [
        ("VAE", "ELBO bound"),
        ("VAE", "IWAE estimate (k=200)"),
        ("conditional VAE", "ELBO bound"),
        ("conditional VAE", "IWAE estimate (k=200)"),
    ]
    for elbo, iwae in (scores[:2], scores[2:]):
        assert math.isfinite(elbo.test_log_likelihood)
        # the estimate is above the bound, and both beat a pixel-independent Bernoulli model
        assert elbo.test_log_likelihood < iwae.test_log_likelihood < 0
        assert elbo.test_log_likelihood > -24.6  # independent pixels: -24.64
    report.write()
    names = {p.name for p in (tmp_path / "figures").iterdir()}
    assert names == {
        "vae_reconstructions.png",
        "vae_samples.png",
        "vae_latent_map.png",
        "cvae_generation.png",
    }
    assert "IWAE" in (tmp_path / "report.md").read_text()
