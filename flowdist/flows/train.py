r"""Maximum-likelihood training of a flow on data.

Minimises the negative log-likelihood :math:`-\frac1B\sum_{i} \log p_\theta(x_i)` over
mini-batches with Adam, evaluates the held-out negative log-likelihood after every epoch and
keeps the best parameters (early stopping with ``patience``). Runs unchanged under
``torchrun``: each global batch is sharded across ranks and the flow is wrapped in
``DistributedDataParallel`` (:mod:`flowdist.distributed`), so the result equals the
one-process run to float tolerance.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from flowdist.distributed import context, shard, wrap
from flowdist.transforms.base import check_dim
from flowdist.validation import check_patience

__all__ = ["FitResult", "fit_density", "mean_log_prob"]


@dataclass
class FitResult:
    """Per-epoch mean negative log-likelihoods (nats per example), the epoch whose parameters
    were kept, and the wall-clock seconds."""

    train_nll: list[float] = field(default_factory=list)
    valid_nll: list[float] = field(default_factory=list)
    best_epoch: int = -1
    seconds: float = 0.0


@torch.no_grad()
def mean_log_prob(flow: nn.Module, data: Tensor, batch_size: int = 1024) -> float:
    r""":math:`\frac1N \sum_i \log p(x_i)` in float64, in batches."""
    total = 0.0
    for i in range(0, len(data), batch_size):
        total += flow().log_prob(data[i : i + batch_size]).double().sum().item()
    return total / len(data)


def fit_density(
    flow: nn.Module,
    train: Tensor,
    *,
    valid: Tensor | None = None,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 1e-3,
    clip: float | None = 50.0,
    patience: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> FitResult:
    r"""Fit ``flow`` (a module whose call returns a distribution) to ``train`` in place.

    Each epoch visits a seeded permutation of ``train`` in batches of ``batch_size`` (the last
    partial batch is dropped). Before training, one no-grad pass over the first 512 examples
    runs data-dependent initialisations (e.g. ActNorm), identically on every rank. With
    ``valid``, the parameters of the epoch with the lowest held-out NLL are restored at the end
    and training stops after ``patience`` epochs without improvement.
    """
    check_dim("epochs", epochs)
    check_dim("batch_size", batch_size)
    check_patience(patience, valid)
    if len(train) < batch_size:
        raise ValueError(f"train: {len(train)} examples, fewer than batch_size={batch_size}")
    ctx = context()
    start = time.perf_counter()
    with torch.no_grad():
        flow().log_prob(train[:512])
    model = wrap(flow, ctx)
    optimizer = torch.optim.Adam(flow.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    result = FitResult()
    best, best_state, stale = math.inf, None, 0
    steps = len(train) // batch_size
    bar = tqdm(total=epochs * steps, disable=not (progress and ctx.is_main), leave=False)
    for epoch in range(epochs):
        order = torch.randperm(len(train), generator=generator).to(train.device)
        total = 0.0
        for i in range(steps):
            x = shard(train[order[i * batch_size : (i + 1) * batch_size]], ctx)
            loss = -model().log_prob(x).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip is not None:
                nn.utils.clip_grad_norm_(flow.parameters(), clip)
            optimizer.step()
            total += loss.item()
            bar.update(1)
        result.train_nll.append(total / steps)
        if valid is not None:
            nll = -mean_log_prob(flow, valid)
            result.valid_nll.append(nll)
            bar.set_postfix(valid_nll=f"{nll:.2f}")
            if nll < best:
                best, best_state, stale = nll, copy.deepcopy(flow.state_dict()), 0
                result.best_epoch = epoch
            else:
                stale += 1
                if patience is not None and stale >= patience:
                    break
    bar.close()
    if best_state is not None:
        flow.load_state_dict(best_state)
    else:
        result.best_epoch = len(result.train_nll) - 1
    result.seconds = time.perf_counter() - start
    return result
