r"""Running the training loops under ``torchrun`` (``torch.distributed``).

The loops call :func:`context` to learn their rank and world size (1 process when
``torch.distributed`` is not initialised, so nothing changes for a single process) and shard
each *global* batch across ranks: with ``W`` ranks each one takes ``B / W`` of the same
``B`` examples a single process would use, and ``DistributedDataParallel`` averages the
gradients, so a ``W``-process run follows the one-process run to float tolerance.

Launch::

    torchrun --nproc-per-node 2 my_training_script.py            # CPU: gloo
    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-endpoint HOST:29500 my_training_script.py

with :func:`init` called at the top of the script (gloo on CPU, NCCL on GPU).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = ["DistributedContext", "context", "init", "shard", "wrap"]


@dataclass(frozen=True)
class DistributedContext:
    """This process's ``rank`` among ``world_size`` processes."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init(backend: str | None = None) -> DistributedContext:
    """Initialise the default process group from ``torchrun``'s environment variables (gloo on
    CPU, NCCL when CUDA is available), once; without them, a one-process context."""
    if dist.is_available() and not dist.is_initialized() and "WORLD_SIZE" in os.environ:
        if backend is None:
            backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    return context()


def context() -> DistributedContext:
    """The current rank and world size (``0`` of ``1`` without ``torch.distributed``)."""
    if dist.is_available() and dist.is_initialized():
        return DistributedContext(dist.get_rank(), dist.get_world_size())
    return DistributedContext()


def shard(batch: Tensor, ctx: DistributedContext | None = None) -> Tensor:
    """This rank's contiguous share of a global batch (whose size the world size divides)."""
    ctx = ctx or context()
    if ctx.world_size == 1:
        return batch
    if len(batch) % ctx.world_size:
        raise ValueError(
            f"batch: the global batch size {len(batch)} must be a multiple of the world size "
            f"{ctx.world_size}"
        )
    n = len(batch) // ctx.world_size
    return batch[ctx.rank * n : (ctx.rank + 1) * n]


def wrap(module: nn.Module, ctx: DistributedContext | None = None) -> nn.Module:
    """``module`` wrapped in ``DistributedDataParallel`` when more than one process runs."""
    ctx = ctx or context()
    if ctx.world_size == 1 or not any(p.requires_grad for p in module.parameters()):
        return module
    device = next(module.parameters()).device
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)
