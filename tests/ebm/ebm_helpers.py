"""Shared fixtures for the EBM tests: random small models and brute-force references."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import Tensor

from flowdist.ebm import BernoulliRBM, BoltzmannMachine, DeepBoltzmannMachine
from flowdist.ebm.partition import binary_states


def randomize(model: torch.nn.Module, scale: float, seed: int) -> torch.nn.Module:
    """Overwrite every parameter with N(0, scale^2) draws (a model far from uniform)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return model


def all_states(n: int, dtype: torch.dtype = torch.float64) -> Tensor:
    return binary_states(n, 0, 1 << n, dtype=dtype)


def brute_joint_log_f(model: BernoulliRBM | DeepBoltzmannMachine) -> tuple[Tensor, Tensor]:
    """Every joint configuration of a layered machine and its -E, by plain loops over states."""
    sizes = model.layer_sizes
    rows, values = [], []
    for combo in itertools.product(*(all_states(n, model.weights[0].dtype) for n in sizes)):
        rows.append(torch.cat(combo))
        values.append(-model.joint_energy([c[None] for c in combo])[0])
    return torch.stack(rows), torch.stack(values).double()


def small_bm(
    d: int = 5, scale: float = 0.8, seed: int = 0, dtype=torch.float64
) -> BoltzmannMachine:
    bm = BoltzmannMachine(d, dtype=dtype)
    randomize(bm, scale, seed)
    with torch.no_grad():  # make the stored weight symmetric, as documented
        bm.weight.copy_(bm.coupling)
    return bm


#: The devices a sampler test runs on: the CPU, and CUDA where there is one.
DEVICES = [
    "cpu",
    pytest.param(
        "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
    ),
]
