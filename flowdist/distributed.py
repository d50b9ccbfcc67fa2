r"""Running the training loops under ``torchrun`` (``torch.distributed``).

The loops call :func:`context` to learn their rank and world size (1 process when
``torch.distributed`` is not initialised, so nothing changes for a single process) and shard
each *global* batch across ranks: with ``W`` ranks each one takes ``B / W`` of the same
``B`` examples a single process would use, and the gradients are averaged across ranks
(``DistributedDataParallel`` for flows, :func:`all_reduce_mean` for the contrastive-divergence
and VAE loops), so a ``W``-process run follows the one-process run to float tolerance.

**Random numbers.** Inside :func:`sharded_randomness` every rank draws the *full-size* random
tensor a single process would draw and keeps its own rows: with :math:`T` rows in all, rank
:math:`r` keeps rows :math:`\lfloor rT/W \rfloor` to :math:`\lfloor (r+1)T/W \rfloor - 1`
(:func:`bounds`). The union of the ranks' Markov chains, AIS runs or posterior draws is then
exactly the one-process set, and the generators stay in the same state on every rank. The
cost is drawing :math:`W` times the random numbers a rank needs (its matrix products shrink by
:math:`W`) plus a Python dispatch per torch operation inside the block: +17 % per PCD-1 update
of a 784 × 500 RBM on 2 ranks (measured, one CPU thread; see ``docs/distributed.md``).

Launch::

    torchrun --nproc-per-node 2 my_training_script.py            # CPU: gloo
    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-endpoint HOST:29500 my_training_script.py

with :func:`init` called at the top of the script (gloo on CPU, NCCL on GPU).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

__all__ = [
    "DistributedContext",
    "all_reduce_mean",
    "any_rank",
    "bounds",
    "broadcast",
    "broadcast_object",
    "context",
    "gather_rows",
    "init",
    "shard",
    "sharded_randomness",
    "wrap",
]


@dataclass(frozen=True)
class DistributedContext:
    """This process's ``rank`` among ``world_size`` processes."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init(backend: str | None = None) -> DistributedContext:
    """Initialise the default process group from ``torchrun``'s environment variables, once;
    without them, a one-process context. By default gloo for CPU tensors and, when CUDA is
    available, NCCL for CUDA tensors (each rank on the GPU of its local rank): models trained on
    the CPU of a GPU machine reduce through gloo."""
    if dist.is_available() and not dist.is_initialized() and "WORLD_SIZE" in os.environ:
        if backend is None:
            backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        if "nccl" in backend and local_rank < torch.cuda.device_count():
            torch.cuda.set_device(local_rank)
    return context()


def context() -> DistributedContext:
    """The current rank and world size (``0`` of ``1`` without ``torch.distributed``)."""
    if dist.is_available() and dist.is_initialized():
        return DistributedContext(dist.get_rank(), dist.get_world_size())
    return DistributedContext()


def bounds(total: int, ctx: DistributedContext | None = None) -> tuple[int, int]:
    r"""This rank's contiguous share ``[start, stop)`` of ``total`` rows:
    :math:`[\lfloor rT/W \rfloor, \lfloor (r+1)T/W \rfloor)`; shares differ by at most one."""
    ctx = ctx or context()
    return ctx.rank * total // ctx.world_size, (ctx.rank + 1) * total // ctx.world_size


def shard(batch: Tensor, ctx: DistributedContext | None = None, *, even: bool = True) -> Tensor:
    """This rank's contiguous share of a global batch (see :func:`bounds`); with ``even`` the
    world size must divide the batch size."""
    ctx = ctx or context()
    if even and len(batch) % ctx.world_size:
        raise ValueError(
            f"batch: the global batch size {len(batch)} must be a multiple of the world size "
            f"{ctx.world_size}"
        )
    if ctx.world_size == 1:
        return batch
    start, stop = bounds(len(batch), ctx)
    return batch[start:stop]


def wrap(module: nn.Module, ctx: DistributedContext | None = None) -> nn.Module:
    """``module`` wrapped in ``DistributedDataParallel`` when more than one process runs."""
    ctx = ctx or context()
    if ctx.world_size == 1 or not any(p.requires_grad for p in module.parameters()):
        return module
    device = next(module.parameters()).device
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def _device() -> torch.device:
    """Where the backend's collectives run: the current GPU for NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_mean(
    tensors: Sequence[Tensor], weight: float = 1.0, ctx: DistributedContext | None = None
) -> list[Tensor]:
    r"""The weighted means :math:`\sum_r w_r t_r / \sum_r w_r` across ranks, where rank
    :math:`r` passes its tensors :math:`t_r` and ``weight`` :math:`w_r` (e.g. its number of
    examples).

    One all-reduce of a flat buffer in float32 (float64 if a tensor is float64), so bfloat16
    gradients are summed at float32 precision; the means come back in that dtype. With one
    process the tensors come back unchanged.
    """
    ctx = ctx or context()
    if ctx.world_size == 1:
        return list(tensors)
    dtype = functools.reduce(torch.promote_types, (t.dtype for t in tensors), torch.float32)
    parts = [t.reshape(-1).to(dtype) for t in tensors]
    flat = torch.cat([*parts, torch.ones(1, dtype=dtype, device=parts[0].device)]) * weight
    dist.all_reduce(flat)
    means = (flat[:-1] / flat[-1]).split([t.numel() for t in tensors])
    return [m.view(t.shape) for m, t in zip(means, tensors, strict=True)]


def any_rank(flag: bool, ctx: DistributedContext | None = None) -> bool:
    """Whether ``flag`` holds on some rank (so that every rank takes the same branch)."""
    ctx = ctx or context()
    if ctx.world_size == 1:
        return flag
    value = torch.tensor([float(flag)], device=_device())
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def broadcast_object(obj: Any, ctx: DistributedContext | None = None) -> Any:
    """Rank 0's ``obj`` (any picklable object) on every rank."""
    ctx = ctx or context()
    if ctx.world_size == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@torch.no_grad()
def broadcast(*tensors: Tensor, ctx: DistributedContext | None = None) -> None:
    """Copy rank 0's values of ``tensors`` to every rank, in place (e.g. a module's
    ``state_dict().values()``: identical starting points)."""
    ctx = ctx or context()
    if ctx.world_size > 1:
        for t in tensors:
            dist.broadcast(t.data, src=0)


def gather_rows(local: Tensor, total: int, ctx: DistributedContext | None = None) -> Tensor:
    """The ranks' shares (:func:`bounds` of ``total`` rows) concatenated in rank order, on
    every rank: the inverse of :func:`shard`. (Shares are padded to the largest for the
    all-gather, which gloo needs of equal sizes.)"""
    ctx = ctx or context()
    if ctx.world_size == 1:
        return local
    width = -(-total // ctx.world_size)
    padded = local.new_zeros((width, *local.shape[1:]))
    padded[: len(local)] = local
    parts = [torch.empty_like(padded) for _ in range(ctx.world_size)]
    dist.all_gather(parts, padded)
    sizes = [bounds(total, DistributedContext(r, ctx.world_size)) for r in range(ctx.world_size)]
    return torch.cat(
        [part[: stop - start] for part, (start, stop) in zip(parts, sizes, strict=True)]
    )


#: Random draws that :func:`sharded_randomness` makes at full size and slices.
_FACTORIES = frozenset({torch.rand, torch.randn})
_FILLS = frozenset({torch.Tensor.uniform_, torch.Tensor.normal_, torch.Tensor.random_})
#: Random draws whose full-size version it cannot form (their parameters are per-row tensors).
_REFUSED = frozenset(
    {
        torch.bernoulli,
        torch.normal,
        torch.poisson,
        torch.multinomial,
        torch.randint,
        torch.randperm,
        torch.rand_like,
        torch.randn_like,
        torch.Tensor.bernoulli_,
        torch.Tensor.exponential_,
    }
)


def _size(args: tuple, kwargs: dict[str, Any]) -> tuple[tuple[int, ...], dict[str, Any]]:
    """The size of a ``torch.rand``-style call (``size=``, one sequence or integers) and the
    other keyword arguments."""
    kwargs = dict(kwargs)
    if "size" in kwargs:
        return tuple(kwargs.pop("size")), kwargs
    if len(args) == 1 and isinstance(args[0], Sequence):
        return tuple(args[0]), kwargs
    return tuple(args), kwargs


class _ShardedRandomness(TorchFunctionMode):
    r"""Makes each per-row random draw at its global size and keeps this rank's rows.

    ``spans`` maps a local row count to its ``(global count, first row)``; the row dimension of
    a draw is its first dimension whose size is a local row count. Draws without one are made
    as they are (identical on every rank).
    """

    def __init__(self, spans: dict[int, tuple[int, int]]) -> None:
        super().__init__()
        self.spans = spans

    def _row_dim(self, shape: Sequence[int]) -> int | None:
        return next((d for d, size in enumerate(shape) if size in self.spans), None)

    def _draw(self, shape: Sequence[int], dim: int, draw: Callable[[tuple], Tensor]) -> Tensor:
        total, start = self.spans[shape[dim]]
        full = draw((*shape[:dim], total, *shape[dim + 1 :]))
        return full.narrow(dim, start, shape[dim])

    def _factory(self, func: Callable, args: tuple, kwargs: dict[str, Any]) -> Tensor:
        shape, rest = _size(args, kwargs)
        dim = self._row_dim(shape)
        if dim is None:
            return func(*args, **kwargs)
        return self._draw(shape, dim, lambda s: func(s, **rest)).contiguous()

    def _fill(self, func: Callable, args: tuple, kwargs: dict[str, Any]) -> Tensor:
        out = args[0]
        dim = self._row_dim(out.shape)
        if dim is None:
            return func(*args, **kwargs)
        full = self._draw(out.shape, dim, lambda s: func(out.new_empty(s), *args[1:], **kwargs))
        return out.copy_(full)

    def __torch_function__(
        self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        kwargs = kwargs or {}
        if func in _FACTORIES:
            return self._factory(func, args, kwargs)
        if func in _FILLS:
            return self._fill(func, args, kwargs)
        if func in _REFUSED:
            raise NotImplementedError(
                f"{getattr(func, '__name__', func)} under torch.distributed: a rank's random "
                "draws must be its rows of the one-process draws, which is done for "
                "torch.rand, torch.randn, Tensor.uniform_, Tensor.normal_ and Tensor.random_; "
                "draw through them (flowdist.mcmc.gibbs.bernoulli does)"
            )
        return func(*args, **kwargs)


def sharded_randomness(
    *totals: int, ctx: DistributedContext | None = None
) -> contextlib.AbstractContextManager:
    r"""A context in which random draws with a dimension of this rank's share of one of the
    global row counts ``totals`` (:func:`bounds`) are made at the global size and sliced.

    So rank :math:`r`'s chains, runs or posterior draws are rows :func:`bounds` of the
    one-process ones, and every generator (``generator=`` or torch's default) advances on every
    rank as in a single process. Applies to ``torch.rand``, ``torch.randn``,
    ``Tensor.uniform_``, ``Tensor.normal_`` and ``Tensor.random_`` (what flowdist's samplers and
    ``torch.distributions`` reparameterised draws use); other random operations raise
    :class:`NotImplementedError` with more than one process. A no-op for one process.
    """
    ctx = ctx or context()
    if ctx.world_size == 1:
        return contextlib.nullcontext()
    spans: dict[int, tuple[int, int]] = {}
    for total in totals:
        start, stop = bounds(total, ctx)
        if spans.get(stop - start, (total, start)) != (total, start):
            # a draw of that many rows could not tell which global draw it is a share of
            raise ValueError(
                f"totals: {spans[stop - start][0]} and {total} rows give this rank "
                f"{stop - start} rows each; use totals whose shares differ, or one at a time"
            )
        spans[stop - start] = (total, start)
    return _ShardedRandomness(spans)
