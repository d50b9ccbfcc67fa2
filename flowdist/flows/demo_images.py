r"""Demo section: NICE, RealNVP, Glow and MAF fitted to the 8×8 digits by maximum likelihood.

**Convention.** A digit pixel is a level :math:`k \in \{0, \dots, 16\}`; it is dequantised to
:math:`y = (k + u)/17 \in [0, 1)` with :math:`u \sim \mathcal U[0, 1)`, and every flow models
:math:`y` through RealNVP's logit pre-processing (:class:`~flowdist.transforms.image
.LogitTransform`, :math:`\alpha = 0.05`) placed inside the flow, so its Jacobian is counted.
Log-likelihoods are reported in **nats per image for the density on** :math:`[0, 1]^{64}`, and
in bits per dimension on the 17-level scale,
:math:`-(\log p(y) - 64 \log 17)/(64 \log 2)`, whose uniform-model value is
:math:`\log_2 17 \approx 4.09`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from flowdist.datasets import load_digits
from flowdist.flows.autoregressive import MAF
from flowdist.flows.core import Flow
from flowdist.flows.coupling import NICE, RealNVP
from flowdist.flows.demo_energies import seeded
from flowdist.flows.glow import Glow
from flowdist.report import Report, Score
from flowdist.transforms.image import LogitTransform, bits_per_dim, dequantize

__all__ = ["DIGIT_LEVELS", "MODELS", "dequantized", "digits_unit_scale", "fit_flow", "run"]

#: Pixel levels of the digits (0 to 16).
DIGIT_LEVELS = 17
ALPHA = 0.05


def dequantized(train: Tensor, test: Tensor, levels: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    r"""Train and test pixel levels :math:`k \in \{0, \dots, L - 1\}` dequantised to
    :math:`(k + u)/L \in [0, 1)` with one generator seeded with ``seed`` (train first)."""
    g = torch.Generator().manual_seed(seed)
    return dequantize(train, levels, generator=g), dequantize(test, levels, generator=g)


def digits_unit_scale(seed: int = 0) -> tuple[Tensor, Tensor]:
    r"""Train and test digits dequantised to :math:`[0, 1)`: :math:`(k + u)/17` (seeded)."""
    split = load_digits(scale=False)
    return dequantized(split.train_x, split.test_x, DIGIT_LEVELS, seed)


def _logit(*shape: int) -> list[nn.Module]:
    return [LogitTransform(*shape, alpha=ALPHA).inv]


def _glow(generator: torch.Generator) -> Flow:
    return Glow((1, 8, 8), 2, 3, 48, generator=generator, data_transforms=_logit(1, 8, 8))


#: The demo's models: name -> (constructor from a generator, image-shaped data?).
MODELS: dict[str, tuple[Callable[[torch.Generator], Flow], bool]] = {
    "NICE": (lambda g: NICE(64, 4, (256, 256), data_transforms=_logit(64)), False),
    "RealNVP": (lambda g: RealNVP(64, 6, (128, 128), data_transforms=_logit(64)), False),
    "Glow": (_glow, True),
    "MAF": (lambda g: MAF(64, 5, (128, 128), data_transforms=_logit(64)), False),
}


def fit_flow(
    flow: Flow,
    train: Tensor,
    *,
    steps: int,
    batch: int = 128,
    lr: float = 2e-3,
    generator: torch.Generator,
    progress: tqdm | None = None,
) -> float:
    r"""Maximise the log-likelihood of ``train`` with Adam (cosine-annealed learning rate),
    after one no-grad pass on up to 512 examples (ActNorm's data-dependent initialisation).
    Returns the wall-clock seconds."""
    start = time.perf_counter()
    with torch.no_grad():
        flow().log_prob(train[:512])
    opt = torch.optim.Adam(flow.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        idx = torch.randint(0, len(train), (batch,), generator=generator).to(train.device)
        loss = -flow().log_prob(train[idx]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(flow.parameters(), 50.0)
        opt.step()
        sched.step()
        if progress is not None:
            progress.update(1)
            progress.set_postfix(nll=f"{loss.item():.1f}")
    return time.perf_counter() - start


@dataclass(frozen=True)
class _Budget:
    steps: int
    samples: int


# Within the time budgets (full ≈ 60 s, quick ≈ 15 s on 2 cores): 300 steps of all four models
# took 15.6 s of CPU time on one thread, 40 steps 4.6 s. More steps overfit the 1,437 training
# digits (900 steps: RealNVP's test log-likelihood falls to about -4200 nats), so the step
# counts, not the time, are the limit (benchmarks/flows/RESULTS.md).
_QUICK = _Budget(steps=40, samples=32)
_FULL = _Budget(steps=300, samples=64)


def run(
    report: Report,
    *,
    quick: bool = False,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> list[Score]:
    r"""Fit NICE, RealNVP, Glow and MAF to the dequantised digits and write the test
    log-likelihood table (nats per image on :math:`[0, 1]^{64}` and bits/dim on the 17-level
    scale, see the module docstring) and one samples figure per model into ``report``.
    Returns one :class:`~flowdist.report.Score` per model."""
    from flowdist.plots import image_grid

    device = torch.device(device)
    budget = _QUICK if quick else _FULL
    train, test = (x.to(device) for x in digits_unit_scale(seed))
    rows, scores, figures = [], [], []
    total = budget.steps * len(MODELS)
    with tqdm(total=total, desc="image flows on digits", disable=not progress) as bar:
        for i, (name, (build, image)) in enumerate(MODELS.items()):
            g = torch.Generator().manual_seed(seed * 100 + i)
            with seeded(seed * 100 + i, device):
                flow = build(g).to(device)
                shape = (-1, 1, 8, 8) if image else (-1, 64)
                tr, te = train.reshape(shape), test.reshape(shape)
                seconds = fit_flow(flow, tr, steps=budget.steps, generator=g, progress=bar)
                with torch.no_grad():
                    ll = flow().log_prob(te).double()
                    start = time.perf_counter()
                    x, _ = flow().rsample_and_log_prob((1000,))
                    sample_ms = 1e3 * (time.perf_counter() - start)
            mean, se = ll.mean().item(), ll.std().item() / ll.numel() ** 0.5
            bpd = bits_per_dim(ll, 64, DIGIT_LEVELS).mean().item()
            params = sum(p.numel() for p in flow.parameters())
            rows.append([name, f"{mean:.1f} ± {se:.1f}", f"{bpd:.3f}", params, seconds])
            scores.append(
                Score(
                    model=name,
                    data="digits 8×8, dequantised to [0, 1]",
                    evaluation="exact",
                    test_log_likelihood=mean,
                    sample_ms_per_1000=sample_ms,
                    train_seconds=seconds,
                )
            )
            images = x[: budget.samples].reshape(-1, 8, 8).clamp(0, 1).cpu()
            figures.append((name, image_grid(images, 8, (8, 8), title=f"{name} samples")))
    report.section("NICE, RealNVP, Glow and MAF on the digits")
    report.text(
        "Pixels k ∈ {0..16} dequantised to (k + u)/17 ∈ [0, 1); each flow ends with RealNVP's "
        f"logit pre-processing (α = {ALPHA}) inside the flow, so its Jacobian is counted. Test "
        "log-likelihood in nats per image for the density on [0, 1]^64 (± standard error over "
        "the 360 test digits), and bits/dim on the 17-level scale "
        "(uniform model: log2 17 ≈ 4.09). "
        f"Adam, lr 2e-3 cosine-annealed, {budget.steps} steps of 128 images per model."
    )
    report.table(
        ["model", "test log-lik. (nats/image)", "bits/dim (17 levels)", "parameters", "train (s)"],
        rows,
    )
    for name, fig in figures:
        report.figure(fig, f"digits_{name.lower()}", f"{name}: samples (clamped to [0, 1]).")
    return scores
