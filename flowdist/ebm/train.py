r"""Contrastive divergence (CD-k) and persistent contrastive divergence (PCD) training.

For an unnormalized model :math:`\log p_\theta(x) = \log\tilde p_\theta(x) - \log Z(\theta)`,

.. math::
    \nabla_\theta \frac1N\sum_n \log p_\theta(x_n)
      = \big\langle \nabla_\theta \log \tilde p_\theta \big\rangle_\text{data}
      - \big\langle \nabla_\theta \log \tilde p_\theta \big\rangle_{p_\theta}.

The model expectation is replaced by chain states: after ``k`` steps of the model's kernel
started at the mini-batch (CD-k, Hinton 2002) or at the previous update's states
(PCD, Tieleman 2008 — stochastic maximum likelihood). The update is SGD with momentum and
weight decay on the weight matrices,

.. math::
    u \leftarrow \mu\, u + \eta\,(g - \lambda\,\theta), \qquad \theta \leftarrow \theta + u,

with learning rate :math:`\eta` and momentum :math:`\mu` constants or functions of the epoch
(a schedule).

**Under** ``torchrun`` each of the :math:`W` ranks takes its :math:`B/W` rows of every global
mini-batch and its :math:`C/W` of the :math:`C` persistent chains, with the random numbers of
:func:`flowdist.distributed.sharded_randomness` (rank :math:`r`'s chains are rows of the
one-process chains). Every gradient term is a mean over equal shares, so the mean of the ranks'
gradients (all-reduced in float32) is the one-process gradient

.. math::
    g = \frac1W \sum_{r} \Big(\frac{W}{B} \sum_{i \in \mathcal B_r} \phi(x_i)
        - \frac{W}{C} \sum_{j \in \mathcal C_r} \phi(s_j)\Big),

and the parameters stay identical on every rank.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from flowdist.distributed import (
    DistributedContext,
    all_reduce_mean,
    any_rank,
    broadcast,
    context,
    shard,
    sharded_randomness,
)
from flowdist.ebm.base import UnnormalizedDistribution
from flowdist.mcmc.gibbs import PersistentChains
from flowdist.transforms.base import check_dim
from flowdist.validation import check_generator, check_number, generator_device

__all__ = ["TrainingHistory", "train_cd"]

Schedule = float | Callable[[int], float]


@dataclass
class TrainingHistory:
    """What :func:`train_cd` did: seconds per epoch and the callback's value after each epoch."""

    seconds: list[float] = field(default_factory=list)
    monitor: list[float] = field(default_factory=list)

    @property
    def total_seconds(self) -> float:
        return float(sum(self.seconds))


def _at(schedule: Schedule, epoch: int, name: str) -> float:
    value = schedule(epoch) if callable(schedule) else schedule
    try:
        return check_number(name, value, least=0.0)
    except (TypeError, ValueError) as err:
        raise type(err)(f"{err} at epoch {epoch}") from None


def _check_finite(model: UnnormalizedDistribution, state: Any, epoch: int, lr: float) -> None:
    tensors = dict(model.named_parameters())
    tensors["the Markov chain states"] = model.visible(state)
    if bool(torch.stack([torch.isfinite(t).all() for t in tensors.values()]).all()):
        return
    name = next(n for n, t in tensors.items() if not bool(torch.isfinite(t).all()))
    raise FloatingPointError(
        f"training diverged at epoch {epoch}: {name!r} is not finite; "
        f"lower the learning rate (lr={lr})"
    )


def check_data(model: UnnormalizedDistribution, data: Tensor) -> None:
    """Raise unless ``data`` is a non-empty ``(N, event_size)`` tensor of the model's dtype and
    device in its support (checked whatever ``validate_args``: training needs it)."""
    model._check(data, "data", rows=1, support=True)


def _check_world(sizes: dict[str, int], ctx: DistributedContext) -> None:
    for name, value in sizes.items():
        if ctx.world_size > 1 and value % ctx.world_size:
            raise ValueError(
                f"{name}={value} must be a multiple of the world size {ctx.world_size}: every "
                "rank takes an equal share of each mini-batch and of the chains"
            )


def _from_random_rows(
    model: UnnormalizedDistribution, data: Tensor
) -> Callable[[int, torch.Generator | None], Any]:
    """Fresh persistent chains: the model's chain from ``num_chains`` training rows drawn
    uniformly with replacement (:meth:`chain_from_data`). Chains started from independent
    coins can settle in a high-entropy mode far from the data that they never leave, and the
    gradient then raises the data's mode without bound: a DBM on binarized MNIST trained so
    reached an unnormalized log-probability of 1364 nats per test image against 737 with
    these starts (``benchmarks/ebm/RESULTS.md``)."""

    def start(num_chains: int, generator: torch.Generator | None) -> Any:
        # rows from torch.rand, not torch.randint: sharded_randomness serves rand to every rank
        # at the global size (and refuses randint), so torchrun keeps the one-process chains
        u = torch.rand(num_chains, generator=generator, dtype=torch.float64, device=data.device)
        rows = (u * len(data)).long().clamp_(max=len(data) - 1)
        return model.chain_from_data(data.index_select(0, rows), generator)

    return start


def _gradient(
    model: UnnormalizedDistribution,
    batch: Tensor,
    k: int,
    chains: PersistentChains | None,
    num_chains: int,
    generator: torch.Generator | None,
    ctx: DistributedContext,
) -> tuple[list[Tensor], Any]:
    """The contrastive gradient of a global mini-batch: this rank's share of the rows and of
    the ``num_chains`` persistent chains (CD when ``chains`` is ``None``), averaged over ranks."""
    x = shard(batch, ctx)
    rows = (len(batch),) if chains is None else (len(batch), num_chains)
    with sharded_randomness(*rows, ctx=ctx):
        start = None
        if chains is not None:
            start = chains.get(num_chains // ctx.world_size, x, generator)
        grads, state = model.contrastive_gradient(x, k, generator, start)
    if chains is not None:
        chains.state = state
    return all_reduce_mean(grads, ctx=ctx), state


def _sgd_step(
    lr: float,
    momentum: float,
    weight_decay: float,
    param: Tensor,
    velocity: Tensor | None,
    grad: Tensor,
    grad_scale: float,
    decayed: Any,
) -> None:
    r"""In place, :math:`u \leftarrow \mu u + \eta (s g - \lambda \theta_D)`,
    :math:`\theta \leftarrow \theta + u` (without a velocity :math:`\theta \leftarrow \theta
    + \eta (s g - \lambda \theta_D)`), where :math:`s` = ``grad_scale`` and :math:`\theta_D`
    = ``param[decayed]`` are the entries under weight decay (``None``: none)."""
    decay = lr * weight_decay
    decayed = decayed if decay else None
    if velocity is None:
        if decayed is not None:
            param[decayed].mul_(1 - decay)
        param.add_(grad, alpha=lr * grad_scale)
        return
    if momentum:
        velocity.mul_(momentum).add_(grad, alpha=lr * grad_scale)
    elif grad.dtype == velocity.dtype:
        torch.mul(grad, lr * grad_scale, out=velocity)  # one pass instead of two
    else:
        velocity.copy_(grad).mul_(lr * grad_scale)
    if decayed is not None:
        velocity[decayed].sub_(param[decayed], alpha=decay)
    param.add_(velocity)


def train_cd(
    model: UnnormalizedDistribution,
    data: Tensor,
    *,
    epochs: int,
    batch_size: int = 100,
    k: int = 1,
    persistent: bool = False,
    num_chains: int | None = None,
    lr: Schedule = 0.05,
    momentum: Schedule = 0.5,
    weight_decay: float = 0.0,
    generator: torch.Generator | None = None,
    callback: Callable[[int], float] | None = None,
    progress: bool = False,
    max_seconds: float | None = None,
) -> TrainingHistory:
    r"""Train ``model`` by CD-``k`` (``persistent=False``) or PCD-``k`` (``persistent=True``).

    ``num_chains`` persistent chains (default ``batch_size``) are kept across batches and epochs;
    they start from training rows drawn at random.
    Parameters with ``requires_grad=False`` stay as they are. ``callback(epoch)`` runs after
    every epoch; a number it returns is recorded in
    ``history.monitor``. Raises :class:`FloatingPointError` as soon as a parameter stops being
    finite (lower the learning rate). With ``max_seconds`` training stops after the first epoch
    that ends past that many seconds of training (a time budget; ``epochs`` is then a maximum).

    Runs unchanged under ``torchrun`` (see the module docstring), where the world size must
    divide ``len(data)``, ``batch_size`` and (PCD) ``num_chains``; ``callback`` runs on every
    rank.
    """
    check_data(model, data)
    check_generator(generator, data.device)
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("k", k)):
        check_dim(name, value)
    if num_chains is not None:
        check_dim("num_chains", num_chains)
    check_number("weight_decay", weight_decay, least=0.0)
    if max_seconds is not None:
        check_number("max_seconds", max_seconds, least=0.0)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    ctx = context()
    num_chains = num_chains or batch_size
    sizes = {"len(data)": len(data), "batch_size": batch_size}
    _check_world(sizes | ({"num_chains": num_chains} if persistent else {}), ctx)
    broadcast(*model.state_dict().values(), ctx=ctx)
    params = list(model.parameters())
    keeps_velocity = bool(callable(momentum) or momentum)  # a constant 0 needs none
    start = _from_random_rows(model, data) if persistent else None
    fused = None  # the model's own epochs, if it has them (one process, nothing frozen)
    if ctx.world_size == 1 and all(p.requires_grad for p in params):
        fused = model._fused_sgd(k=k, num_chains=num_chains, start=start, momentum=keeps_velocity)
    velocity = [torch.zeros_like(p) if keeps_velocity and fused is None else None for p in params]
    chains = PersistentChains(start) if persistent and fused is None else None
    history = TrainingHistory()
    n = data.shape[0]
    epoch_iter = range(epochs)
    if progress and ctx.is_main:
        from tqdm.auto import tqdm

        epoch_iter = tqdm(
            epoch_iter, desc=f"{type(model).__name__} {'PCD' if persistent else 'CD'}-{k}"
        )
    for epoch in epoch_iter:
        start_time = time.perf_counter()
        eta, mu = _at(lr, epoch, "lr"), _at(momentum, epoch, "momentum")

        step = functools.partial(_sgd_step, eta, mu, weight_decay)
        at = generator_device(generator)  # randperm needs a CUDA generator's device
        order = torch.randperm(n, generator=generator, device=at).to(data.device)
        broadcast(order, ctx=ctx)  # rank 0's order, even if the ranks' generators differ
        with torch.no_grad(), model._trusted_inputs():  # data checked above
            if fused is not None:
                state = fused.epoch(data, order, batch_size, generator, step)
            else:
                for i in range(0, n, batch_size):
                    batch = data.index_select(0, order[i : i + batch_size])
                    grads, state = _gradient(model, batch, k, chains, num_chains, generator, ctx)
                    for p, u, grad in zip(params, velocity, grads, strict=True):
                        if p.requires_grad:  # frozen ones stay, as an optimizer leaves them
                            step(p, u, grad, 1.0, ... if p.dim() >= 2 else None)  # decay W
                    model.after_update()
        _check_finite(model, state, epoch, eta)
        history.seconds.append(time.perf_counter() - start_time)
        if callback is not None:
            value = callback(epoch)
            if value is not None:
                history.monitor.append(float(value))
        if max_seconds is not None and any_rank(history.total_seconds >= max_seconds, ctx):
            break
    return history
