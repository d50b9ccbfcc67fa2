r"""Training loop: stochastic variational inference on minibatches, with a validation score,
early stopping and checkpoints.

Each step minimises an unbiased minibatch estimate of the negative objective (``num_data``
scales the data plate), through the ELBO's ``differentiable_loss`` — Pyro's
``Trace_ELBO``, ``TraceMeanField_ELBO``, ``TraceEnum_ELBO`` or :class:`~flowdist.vae.evaluate.
IWAE_ELBO` — and one ``torch.optim`` optimizer over the module's parameters (the pattern of
Pyro's "custom objectives" guide; ``pyro.infer.SVI`` works as well, see the tests).

**Under** ``torchrun`` rank :math:`r` takes a contiguous share of :math:`n_r` examples of every
global minibatch (:func:`flowdist.distributed.bounds`), with its rows of the one-process
posterior draws (:func:`flowdist.distributed.sharded_randomness`). Its loss is the mean
:math:`\bar\ell_r` over its share, so the global minibatch loss and its gradient are the
weighted means

.. math::
    \bar\ell = \frac{\sum_r n_r \bar\ell_r}{\sum_r n_r}, \qquad
    \nabla \bar\ell = \frac{\sum_r n_r \nabla \bar\ell_r}{\sum_r n_r},

computed by one all-reduce after ``backward`` (the ELBO calls the model and guide directly, not
``forward``, so ``DistributedDataParallel``'s hooks would not run). The validation score is
reduced the same way, and only rank 0 reads and writes the checkpoint.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyro
import torch
from pyro.infer import Trace_ELBO
from torch import Tensor

from flowdist.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from flowdist.distributed import (
    DistributedContext,
    all_reduce_mean,
    broadcast,
    broadcast_object,
    context,
    shard,
    sharded_randomness,
)
from flowdist.transforms.base import check_dim
from flowdist.vae.evaluate import importance_log_likelihood
from flowdist.validation import check_count, check_number, check_patience

__all__ = ["FitResult", "fit", "training_step", "validation_elbo"]


@dataclass
class FitResult:
    """What :func:`fit` did: per-epoch ``history`` rows (``epoch``, ``train_loss`` in nats per
    example, ``valid`` score, ``seconds``), the best epoch and its score."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_valid: float = -math.inf
    seconds: float = 0.0
    stopped_early: bool = False


def _average_gradients(module: Any, step_loss: Tensor, rows: int) -> Tensor:
    r"""Under ``torchrun``, replace every gradient by its mean over ranks weighted by their
    ``rows`` (the gradient of the global minibatch's mean loss); returns the mean loss."""
    ctx = context()
    if ctx.world_size == 1:
        return step_loss
    params = [p for p in module.parameters() if p.requires_grad]
    grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in params]
    *grads, step_loss = all_reduce_mean([*grads, step_loss], weight=rows, ctx=ctx)
    for p, grad in zip(params, grads, strict=True):
        p.grad = grad.to(p.dtype)
    return step_loss


def training_step(
    module: Any, loss: Any, optimizer: torch.optim.Optimizer, batch: Sequence[Tensor], n: int
) -> float:
    """One optimizer step on a minibatch of a data set of ``n`` points; returns the loss in
    nats per example. Under ``torchrun`` ``batch`` is this rank's share of the global
    minibatch (possibly empty), and the step is that of the global minibatch."""
    optimizer.zero_grad(set_to_none=True)
    if len(batch[0]):
        step_loss = module.training_loss(loss, *batch, num_data=n) / n
        step_loss.backward()
    else:  # this rank's share of a last minibatch smaller than the world size
        step_loss = torch.zeros((), device=batch[0].device)
    step_loss = _average_gradients(module, step_loss.detach(), len(batch[0]))
    optimizer.step()
    return float(step_loss)


def validation_elbo(module: Any, *data: Tensor) -> float:
    r"""The mean ELBO per example, :math:`\frac1N \sum_n \log p(x_n, z_n) - \log q(z_n \mid x_n)`,
    one posterior draw each (higher is better)."""
    _, elbo = importance_log_likelihood(module.model, module.guide, *data, k=1, batch_size=1000)
    return float(elbo.mean())


def _validate(
    score: Callable[..., float], module: Any, valid: Sequence[Tensor], ctx: DistributedContext
) -> float:
    """``score`` of the validation set, a mean per example: under ``torchrun`` each rank scores
    its share and the means are averaged, weighted by the shares' sizes."""
    part = [shard(v, ctx, even=False) for v in valid]
    with sharded_randomness(len(valid[0]), ctx=ctx):
        value = float(score(module, *part))
    like = next(module.parameters())
    mean = torch.tensor(value, dtype=torch.float64, device=like.device)
    return float(all_reduce_mean([mean], weight=len(part[0]), ctx=ctx)[0])


def _tensors(name: str, value: Any) -> tuple[Tensor, ...]:
    """``value`` (a tensor or a sequence of them) as a tuple of tensors with the same positive
    number of rows; an error naming ``name`` otherwise."""
    items = (value,) if isinstance(value, Tensor) else value
    if not isinstance(items, (tuple, list)) or not all(
        isinstance(t, Tensor) and t.dim() for t in items
    ):
        raise TypeError(
            f"{name} must be a tensor or a sequence of tensors with rows, "
            f"got {type(value).__name__}"
        )
    rows = [len(t) for t in items]
    if not items or min(rows) != max(rows) or not rows[0]:
        raise ValueError(
            f"{name} must hold tensors with the same number (>= 1) of rows, got {rows}"
        )
    return tuple(items)


def _save(
    checkpoint: str | Path,
    module: Any,
    optimizer: torch.optim.Optimizer,
    result: FitResult,
    best_state: Any,
) -> None:
    """Atomically write the module, the optimizer (its state keyed by strings, as a checkpoint
    requires), the result and the best state to ``checkpoint``."""
    opt = optimizer.state_dict()
    opt = {**opt, "state": {str(k): v for k, v in opt["state"].items()}}
    metadata = {"optimizer": opt, "result": asdict(result), "best_state": best_state}
    save_checkpoint(checkpoint, type(module).__name__, {}, module, metadata)


def _resume(
    checkpoint: str | Path | None,
    module: Any,
    optimizer: torch.optim.Optimizer,
    ctx: DistributedContext,
) -> tuple[FitResult, Any]:
    """The saved result and best state, after loading the module and the optimizer from
    ``checkpoint`` (read by rank 0, sent to every rank); a fresh result without the file.
    A file that cannot be read, or that holds another model, raises a
    :class:`~flowdist.checkpoint.CheckpointError` on every rank."""
    saved: Any = None
    if checkpoint is not None and ctx.is_main and Path(checkpoint).is_file():
        try:
            saved = load_checkpoint(checkpoint, model=type(module).__name__)
        except CheckpointError as err:
            saved = err
    saved = broadcast_object(saved, ctx)
    if isinstance(saved, CheckpointError):
        raise saved
    if saved is None:
        broadcast(*module.state_dict().values(), ctx=ctx)
        return FitResult(), None
    saved.restore(module)
    opt = saved.metadata["optimizer"]
    optimizer.load_state_dict({**opt, "state": {int(k): v for k, v in opt["state"].items()}})
    return FitResult(**saved.metadata["result"]), saved.metadata["best_state"]


def fit(
    module: Any,
    data: Tensor | Sequence[Tensor],
    *,
    valid: Tensor | Sequence[Tensor] | None = None,
    loss: Any = None,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 1e-3,
    patience: int | None = None,
    score: Callable[..., float] = validation_elbo,
    checkpoint: str | Path | None = None,
    seed: int = 0,
    progress: bool = False,
) -> FitResult:
    r"""Train ``module`` (a flowdist VAE) on ``data`` for ``epochs`` passes.

    Args:
        module: has ``training_loss(loss, *batch, num_data=N)`` (flowdist's VAEs do).
        data: the training tensors passed to the model, split along dim 0 (``x`` or ``(x, y)``).
        valid: held-out tensors; after every epoch ``score(module, *valid)`` (default: the
            validation ELBO per example, higher is better) is recorded.
        loss: a Pyro ELBO (default ``Trace_ELBO()``) or :class:`~flowdist.vae.IWAE_ELBO`.
        patience: stop after this many epochs without a better validation score, and restore
            the best parameters (needs ``valid``).
        score: a mean per example (under ``torchrun`` each rank scores its share of ``valid``).
        checkpoint: a file path; the module, optimizer and history are saved there after every
            epoch (atomically, by :func:`flowdist.checkpoint.save_checkpoint`), and training
            resumes from it when it exists; a damaged file, or one of another model, raises
            :class:`~flowdist.checkpoint.CheckpointError`.
        seed: seeds the minibatch order and ``pyro.set_rng_seed``, with ``seed + epoch`` at
            the start of every epoch (so a run resumed from ``checkpoint`` is the whole run).
        progress: show a ``tqdm`` progress bar.

    Runs unchanged under ``torchrun`` (see the module docstring).
    """
    if not isinstance(module, torch.nn.Module) or not hasattr(module, "training_loss"):
        raise TypeError(f"module must be a flowdist VAE, got {type(module).__name__}")
    data = _tensors("data", data)
    valid = None if valid is None else _tensors("valid", valid)
    check_dim("epochs", epochs)
    check_dim("batch_size", batch_size)
    check_number("lr", lr, least=0.0)
    check_count("seed", seed)
    if seed + epochs >= 2**32:
        raise ValueError(
            f"seed + epochs must be below 2**32 (numpy's seeds), got seed={seed}, epochs={epochs}"
        )
    check_patience(patience, valid)
    if loss is not None and not callable(getattr(loss, "differentiable_loss", None)):
        raise TypeError(f"loss must be a Pyro ELBO or IWAE_ELBO, got {type(loss).__name__}")
    ctx = context()
    if valid is not None and len(valid[0]) < ctx.world_size:
        raise ValueError(f"valid: {len(valid[0])} examples, fewer than the {ctx.world_size} ranks")
    loss = Trace_ELBO() if loss is None else loss
    n = data[0].shape[0]
    optimizer = torch.optim.Adam(module.parameters(), lr=lr)
    result, best_state = _resume(checkpoint, module, optimizer, ctx)
    start_epoch = len(result.history)
    epochs_iter: Any = range(start_epoch, epochs)
    if progress and ctx.is_main:
        from tqdm.auto import tqdm

        epochs_iter = tqdm(epochs_iter, desc=type(module).__name__, unit="epoch")
    for epoch in epochs_iter:
        if result.stopped_early:
            break
        t0 = time.perf_counter()
        # an epoch's randomness depends on (seed, epoch) alone: a resumed run is the whole run
        pyro.set_rng_seed(seed + epoch)
        generator = torch.Generator().manual_seed(seed + epoch)
        module.train()
        total = 0.0
        for idx in torch.randperm(n, generator=generator).split(batch_size):
            batch = [d[shard(idx, ctx, even=False).to(d.device)] for d in data]
            with sharded_randomness(len(idx), ctx=ctx):
                total += training_step(module, loss, optimizer, batch, n) * len(idx)
        row = {"epoch": epoch, "train_loss": total / n, "seconds": time.perf_counter() - t0}
        if valid is not None:
            module.eval()
            row["valid"] = _validate(score, module, valid, ctx)
            if row["valid"] > result.best_valid:
                result.best_valid, result.best_epoch = row["valid"], epoch
                best_state = copy.deepcopy(module.state_dict())
            elif patience is not None and epoch - result.best_epoch >= patience:
                result.stopped_early = True
        result.history.append(row)
        result.seconds += row["seconds"]
        if progress and ctx.is_main:
            epochs_iter.set_postfix({k: f"{v:.4g}" for k, v in row.items() if k != "epoch"})
        if checkpoint is not None and ctx.is_main:
            _save(checkpoint, module, optimizer, result, best_state)
    if patience is not None and best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return result
