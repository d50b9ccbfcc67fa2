r"""The VAE part of ``flowdist demo``: a VAE and a conditional VAE on the embedded 8×8 digits.

Pixels are binarised (:math:`x > 8/16`) and modelled with a Bernoulli likelihood, so test
log-likelihoods are in nats per binary 64-pixel image. Each model reports the ELBO bound and the
importance-weighted estimate of :math:`\log p(x)` (:math:`\log p(x \mid y)` for the conditional
VAE) on the test split that every section uses (``random_state=0`` whatever the seed: the seed
drives training, so the closing table scores every family on the same images), the cost of
drawing samples, and its training time.
"""

from __future__ import annotations

import time

import pyro
import torch
from pyro.infer import TraceMeanField_ELBO

from flowdist.datasets import load_digits
from flowdist.report import Report, Score
from flowdist.vae.conditional import ConditionalVAE
from flowdist.vae.evaluate import importance_log_likelihood
from flowdist.vae.figures import digit_grid, latent_map
from flowdist.vae.train import fit
from flowdist.vae.vae import VAE

__all__ = ["run"]

DATA = "digits 8×8 (binarised)"
SHAPE = (8, 8)


def _sample_ms(model: VAE, y: torch.Tensor | None, generator: torch.Generator) -> float:
    start = time.perf_counter()
    model.sample(1000, y, generator=generator, mean=False)
    return 1e3 * (time.perf_counter() - start)


def run(
    report: Report, *, quick: bool, seed: int, device: torch.device, progress: bool
) -> list[Score]:
    """Train, evaluate and plot; returns the score rows (ELBO and importance-sampling rows)."""
    torch.manual_seed(seed)
    pyro.set_rng_seed(seed)
    data = load_digits(binarize=True)
    x_train, x_test = data.train_x.to(device), data.test_x.to(device)
    y_train, y_test = data.train_y.to(device), data.test_y.to(device)
    epochs, k = (25, 200) if quick else (150, 1000)
    batch_size = 128
    generator = torch.Generator(device=device).manual_seed(seed)
    report.section("Variational autoencoders on digits")
    report.text(
        f"Binarised 8×8 digits ({len(x_train)} train, {len(x_test)} test), Bernoulli likelihood, "
        "MLP 64-256-z (softplus), z = 8, "
        f"Adam lr 3e-3, batch {batch_size}, {epochs} epochs, "
        "closed-form KL (`TraceMeanField_ELBO`). The conditional VAE adds the one-hot label to "
        f"the encoder and decoder inputs. Test log-likelihood: ELBO and importance sampling with "
        f"k = {k}."
    )
    scores, rows = [], []
    models = {
        "VAE": (VAE(64, 8, hidden=(256,)), (x_train,), (x_test,), None),
        "conditional VAE": (
            ConditionalVAE(64, 10, 8, hidden=(256,)),
            (x_train, y_train),
            (x_test, y_test),
            torch.arange(10, device=device).repeat_interleave(100),
        ),
    }
    for name, (model, train, test, sample_y) in models.items():
        model.to(device)
        result = fit(
            model,
            train,
            epochs=epochs,
            batch_size=batch_size,
            lr=3e-3,
            loss=TraceMeanField_ELBO(),
            seed=seed,
            progress=progress,
        )
        iw, elbo = importance_log_likelihood(model.model, model.guide, *test, k=k)
        ms = _sample_ms(model, sample_y, generator)
        what = "log p(x | y)" if sample_y is not None else "log p(x)"
        for evaluation, value in (("ELBO bound", elbo), (f"IWAE estimate (k={k})", iw)):
            scores.append(Score(name, DATA, evaluation, float(value.mean()), ms, result.seconds))
        rows.append([name, what, float(elbo.mean()), float(iw.mean()), ms, result.seconds])
    report.table(
        ["model", "quantity", "ELBO", f"IWAE (k={k})", "sampling (ms / 1000)", "training (s)"],
        rows,
    )
    vae, cvae = models["VAE"][0], models["conditional VAE"][0]
    pairs = torch.stack([x_test[:16], vae.reconstruct(x_test[:16])], 1).reshape(32, 64)
    report.figure(
        digit_grid(pairs, SHAPE, ncols=16),
        "vae_reconstructions",
        "VAE: test digits (odd tiles) and their reconstructions E[x | z = guide mean] (even).",
    )
    report.figure(
        digit_grid(vae.sample(48, generator=generator), SHAPE, ncols=16),
        "vae_samples",
        "VAE: decoded means E[x | z] of prior samples z ~ N(0, I).",
    )
    active = vae.latent_mean(x_test).var(0).topk(2).indices.tolist()
    report.figure(
        latent_map(vae, SHAPE, dims=(active[0], active[1])),
        "vae_latent_map",
        f"VAE: decoded means over a grid of latent coordinates {active[0]} (across) and "
        f"{active[1]} (down), the two most active ones; the others at 0.",
    )
    labels = torch.arange(10, device=device).repeat_interleave(10)
    report.figure(
        digit_grid(
            cvae.generate(labels, generator=generator),
            SHAPE,
            ncols=10,
            row_labels=[str(d) for d in range(10)],
        ),
        "cvae_generation",
        "Conditional VAE: ten prior draws z decoded with each label 0–9 (one row per label).",
    )
    return scores
