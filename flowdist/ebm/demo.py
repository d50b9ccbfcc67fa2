r"""The energy-based models' part of ``flowdist demo``: RBMs and a DBM on binarized digits.

Trains, on scikit-learn's 8×8 digits binarized at > 8 (80/20 split, ``random_state=0``):

* an RBM with 16 hidden units (CD-1) — test log-likelihood **exact** (:math:`2^{16}` hidden
  states enumerated), and the AIS estimate beside it as a check of AIS;
* an RBM with 64 hidden units (CD-1) — **AIS** estimate (Salakhutdinov & Murray 2008);
* a DBM 64–32–16 (layer-wise pre-training, then mean-field + persistent chains) — the
  **variational lower bound** with an AIS :math:`\log Z`;

against the independent-Bernoulli baseline, and draws sample grids from each.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from flowdist.datasets import load_digits
from flowdist.ebm.base import UnnormalizedDistribution
from flowdist.ebm.dbm import DeepBoltzmannMachine
from flowdist.ebm.rbm import BernoulliRBM
from flowdist.ebm.train import train_cd
from flowdist.report import Report, Score

__all__ = ["fit_dbm", "independent_bernoulli_log_likelihood", "run", "sample_grid"]

DATA = "digits (binarized)"


def independent_bernoulli_log_likelihood(train: Tensor, test: Tensor) -> float:
    r"""Mean test :math:`\log p` under independent Bernoullis fitted to ``train`` (add-one)."""
    p = (train.sum(0) + 1) / (train.shape[0] + 2)
    return float((test * p.log() + (1 - test) * (1 - p).log()).sum(1).mean())


def sample_grid(samples: Tensor, title: str, side: int = 8, vmax: float = 1.0) -> Any:
    """A figure of ``samples`` (rows of ``side * side`` pixels) tiled in a square mosaic,
    dark on light (:func:`flowdist.plots.image_grid`)."""
    from flowdist.plots import image_grid

    cols = max(1, int(samples.shape[0] ** 0.5))
    return image_grid(samples, cols, (side, side), title=title, cmap="gray_r", vmin=0.0, vmax=vmax)


def fit_dbm(
    dbm: DeepBoltzmannMachine,
    train: Tensor,
    *,
    epochs: int,
    batch_size: int = 20,
    pretrain_lr: float = 0.05,
    lr: float = 0.02,
    final_lr: float = 0.002,
    momentum: float = 0.5,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> None:
    r"""The demo's DBM recipe: greedy layer-wise pre-training (CD-1 at ``pretrain_lr``), then
    joint training with mean-field data terms and persistent chains, the learning rate decaying
    linearly as :math:`\text{lr}\,(1 - e/\text{epochs}) + \text{final\_lr}` at epoch :math:`e`."""
    dbm.pretrain(
        train,
        epochs=epochs,
        lr=pretrain_lr,
        batch_size=batch_size,
        generator=generator,
        progress=progress,
    )
    train_cd(
        dbm,
        train,
        epochs=epochs,
        batch_size=batch_size,
        persistent=True,
        momentum=momentum,
        lr=lambda e: lr * (1 - e / epochs) + final_lr,
        generator=generator,
        progress=progress,
    )


def _sampling_ms_per_1000(model: UnnormalizedDistribution, burn_in: int, seed: int) -> tuple:
    g = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    start = time.perf_counter()
    x = model.sample((1000,), burn_in=burn_in, generator=g)
    return 1000 * (time.perf_counter() - start), x


def run(
    report: Report, *, quick: bool, seed: int, device: torch.device, progress: bool
) -> list[Score]:
    """Train and score the RBMs and the DBM on binarized digits; see the module docstring.

    On the CPU this runs single-threaded (restoring the thread count after): these matrices
    are tiny, and on a shared 2-core machine two threads made it up to 10x slower (measured).
    """
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        return _run(report, quick=quick, seed=seed, device=device, progress=progress)
    finally:
        torch.set_num_threads(threads)


def _run(
    report: Report, *, quick: bool, seed: int, device: torch.device, progress: bool
) -> list[Score]:
    split = load_digits(binarize=True)
    train, test = split.train_x.to(device), split.test_x.to(device)
    epochs = 10 if quick else 30
    betas = 2000 if quick else 14500
    burn_in = 200 if quick else 1000
    g = torch.Generator(device=device).manual_seed(seed)
    report.section("Energy-based models on binarized digits")
    baseline = independent_bernoulli_log_likelihood(train, test)
    report.text(
        f"Digits binarized at > 8, {len(train)} train / {len(test)} test images. "
        f"Independent-Bernoulli baseline: test log-likelihood {baseline:.2f} nats/image. "
        f"Training: CD-1 (RBMs), {epochs} epochs; AIS: {betas} intermediate distributions, "
        f"100 runs, base-rate initial model; samples: {burn_in} Gibbs sweeps from random states."
    )
    scores, rows = [], [["independent Bernoulli", "exact", baseline, "", ""]]

    def fit(fitter: Callable[[], object]) -> float:
        start = time.perf_counter()
        fitter()
        return time.perf_counter() - start

    def cd(model: BernoulliRBM) -> Callable[[], object]:
        return lambda: train_cd(
            model,
            train,
            epochs=epochs,
            batch_size=20,
            lr=0.05,
            momentum=0.5,
            generator=g,
            progress=progress,
        )

    # RBM-16: exact log-likelihood (and AIS beside it)
    rbm16 = BernoulliRBM(64, 16, generator=g, device=device)
    seconds = fit(cd(rbm16))
    with torch.no_grad():
        exact = float(rbm16.log_prob(test).mean())
        log_z = float(rbm16.log_partition())
        est = rbm16.estimate_log_partition(num_chains=100, betas=betas, data=train, generator=g)
    rows.append(
        [
            "RBM-16 (CD-1)",
            "exact",
            exact,
            f"{log_z:.3f}",
            f"AIS {est.log_z:.3f} ± {est.std_error:.3f}",
        ]
    )
    ms, x16 = _sampling_ms_per_1000(rbm16, burn_in, seed)
    scores.append(Score("RBM-16 (CD-1)", DATA, "exact", exact, ms, seconds))

    def ais_scored(model, name: str, evaluation: str, seconds: float, log_lik) -> tuple:
        with torch.no_grad():
            est = model.estimate_log_partition(num_chains=100, betas=betas, data=train, generator=g)
            ll = float(log_lik(test).mean())
        rows.append(
            [name, evaluation, ll, f"{est.log_z:.3f} ± {est.std_error:.3f}", f"ESS {est.ess:.0f}"]
        )
        ms, x = _sampling_ms_per_1000(model, burn_in, seed)
        scores.append(Score(name, DATA, evaluation, ll, ms, seconds))
        return ll, x

    # RBM-64: AIS
    rbm64 = BernoulliRBM(64, 64, generator=g, device=device)
    seconds = fit(cd(rbm64))
    ll64, x64 = ais_scored(rbm64, "RBM-64 (CD-1)", "AIS estimate", seconds, rbm64.log_prob)

    # DBM 64-32-16: pre-training, then mean-field + persistent chains
    dbm = DeepBoltzmannMachine((64, 32, 16), generator=g, device=device)
    seconds = fit(lambda: fit_dbm(dbm, train, epochs=epochs, generator=g, progress=progress))
    _, xdbm = ais_scored(
        dbm, "DBM 64-32-16", "variational bound + AIS", seconds, dbm.variational_lower_bound
    )

    report.table(["model", "log p(x) by", "test log-lik. (nats/image)", "log Z", "note"], rows)
    report.text(
        f"The RBMs beat the independent-Bernoulli baseline by "
        f"{exact - baseline:.2f} (16 hidden, exact) and {ll64 - baseline:.2f} nats/image "
        "(64 hidden, AIS). The DBM's number is a lower bound on its log-likelihood."
    )
    for name, x, caption in (
        ("ebm_rbm16_samples", x16, "RBM-16: 64 samples after Gibbs sampling"),
        ("ebm_rbm64_samples", x64, "RBM-64: 64 samples after Gibbs sampling"),
        ("ebm_dbm_samples", xdbm, "DBM 64-32-16: 64 samples after Gibbs sampling"),
    ):
        report.figure(sample_grid(x[:64], caption), name, caption)
    return scores
