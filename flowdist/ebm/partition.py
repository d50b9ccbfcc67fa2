r"""The log partition function :math:`\log Z`: exact by enumeration, or by annealed importance
sampling (AIS).

**Enumeration.** For a model whose unnormalized log-density, after summing out whatever can be
summed analytically, depends on :math:`m` binary units, :math:`\log Z = \log \sum_{s \in
\{0,1\}^m} f(s)` is a log-sum-exp over :math:`2^m` states. :func:`enumerate_log_sum_exp` walks
the states in chunks and accumulates in float64.

**AIS** (Neal 2001; Salakhutdinov & Murray 2008). A path of unnormalized densities
:math:`f_0, \dots, f_K` from a tractable base :math:`f_0` (known :math:`Z_0`) to the model
:math:`f_K`, indexed by inverse temperatures :math:`0 = \beta_0 < \dots < \beta_K = 1`. Starting
from :math:`x_1 \sim p_0`, each run accumulates

.. math::
    \log w = \sum_{k=1}^{K} \big[\log f_k(x_k) - \log f_{k-1}(x_k)\big],
    \qquad x_{k+1} \sim T_k(\cdot \mid x_k),

with :math:`T_k` a kernel leaving :math:`p_k` invariant. Then :math:`\mathbb E[w] = Z_K / Z_0`,
and with :math:`M` runs :math:`\hat Z = Z_0 \frac1M \sum_m w_m`. The standard error of
:math:`\hat Z` is :math:`s_w / \sqrt M`; on the log scale (delta method)
:math:`\operatorname{se}(\log \hat Z) \approx s_w / (\sqrt M\, \bar w)`, and the bounds are
:math:`\log(\hat Z \pm 3\, s_w/\sqrt M)` as in Salakhutdinov & Murray (2008).

**Under** ``torchrun`` the :math:`M` runs are split across the :math:`W` ranks
(:func:`flowdist.distributed.bounds`), each rank's runs being rows of the one-process runs
(:func:`flowdist.distributed.sharded_randomness`); the log-weights are all-gathered in rank
order and every rank computes the estimate from all :math:`M` of them, so it equals the
one-process estimate. :func:`ais` (and ``estimate_log_partition``) is then collective: call
it on every rank.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from flowdist.distributed import bounds, context, gather_rows, sharded_randomness
from flowdist.validation import check_count

__all__ = [
    "AnnealingPath",
    "PartitionEstimate",
    "PartitionTooLargeError",
    "ais",
    "binary_states",
    "enumerate_log_sum_exp",
    "salakhutdinov_murray_betas",
]


class PartitionTooLargeError(ValueError):
    """Raised when the exact partition function would need too many states."""


def binary_states(
    num_units: int,
    start: int,
    stop: int,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> Tensor:
    r"""The binary states with integer codes ``start ... stop - 1``: row :math:`s`, column
    :math:`i` is bit :math:`i` of :math:`s`. Shape ``(stop - start, num_units)``."""
    codes = torch.arange(start, stop, device=device, dtype=torch.long)
    bits = torch.arange(num_units, device=device, dtype=torch.long)
    return ((codes[:, None] >> bits) & 1).to(dtype)


def _chunks(num_units: int, chunk_size: int) -> Iterator[tuple[int, int]]:
    total = 1 << num_units
    for start in range(0, total, chunk_size):
        yield start, min(start + chunk_size, total)


def enumerate_log_sum_exp(
    log_f: Callable[[Tensor], Tensor],
    num_units: int,
    *,
    max_units: int,
    what: str,
    remedy: str = "estimate it instead with estimate_log_partition(method='ais', ...)",
    device: torch.device | str | None = None,
    chunk_size: int = 1 << 15,
) -> Tensor:
    r""":math:`\log \sum_{s \in \{0,1\}^m} \exp \log f(s)` in float64, enumerating in chunks.

    ``log_f`` maps float64 states of shape ``(chunk, m)`` to float64 values of shape ``(chunk,)``.
    ``log_f`` may return extra trailing dimensions (a batch), summed over separately. With
    gradients on, each chunk is checkpointed (:func:`torch.utils.checkpoint.checkpoint`): the
    graph held is the chunk outputs', and backward recomputes one chunk at a time. Raises
    :class:`PartitionTooLargeError` naming ``what`` and ``remedy`` when ``m > max_units``.
    """
    if num_units > max_units:
        raise PartitionTooLargeError(
            f"the exact sum needs 2^{num_units} states of {what}, more than the enumeration "
            f"limit of 2^{max_units}; {remedy}"
        )

    def part(start: int, stop: int) -> Tensor:
        return torch.logsumexp(log_f(binary_states(num_units, start, stop, device=device)), dim=0)

    if torch.is_grad_enabled():  # keep no chunk's graph: backward recomputes them one by one
        part = functools.partial(checkpoint, part, use_reentrant=False, preserve_rng_state=False)
    parts = [part(a, b) for a, b in _chunks(num_units, chunk_size)]
    return torch.logsumexp(torch.stack(parts), dim=0)


class AnnealingPath(Protocol):
    r"""A path of unnormalized densities :math:`f_\beta` for AIS, with its transition kernels.

    ``log_f`` must return float64 values, one per chain.
    """

    log_z0: float

    def init(self, num_chains: int, generator: torch.Generator | None) -> Any: ...

    def log_f(self, state: Any, beta: float) -> Tensor: ...

    def transition(self, state: Any, beta: float, generator: torch.Generator | None) -> Any: ...


@dataclass(frozen=True)
class PartitionEstimate:
    r"""An AIS estimate of :math:`\log Z` with its uncertainty.

    ``log_z`` is :math:`\log \hat Z`; ``std_error`` its delta-method standard error;
    ``lower`` and ``upper`` are :math:`\log(\hat Z \mp 3\,\mathrm{se}(\hat Z))` (``lower`` is
    ``-inf`` when :math:`3\,\mathrm{se} \ge \hat Z`); ``log_weights`` the per-run
    :math:`\log w_m + \log Z_0`; ``ess`` the effective sample size of the weights.
    """

    log_z: float
    std_error: float
    lower: float
    upper: float
    log_weights: Tensor
    ess: float
    num_betas: int

    def __float__(self) -> float:
        return self.log_z


def salakhutdinov_murray_betas(
    num_betas: int = 14500, dtype: torch.dtype = torch.float64
) -> Tensor:
    r"""The inverse-temperature schedule of Salakhutdinov & Murray (2008).

    With the default 14,500 intermediate distributions: 500 spaced uniformly in
    :math:`[0, 0.5)`, 4,000 in :math:`[0.5, 0.9)` and 10,000 in :math:`[0.9, 1]`. Other
    ``num_betas`` keep these proportions. Returns :math:`\beta_0 = 0, \dots, \beta_K = 1`
    (``num_betas + 1`` values).
    """
    if not isinstance(num_betas, int) or num_betas < 3:
        raise ValueError(f"num_betas must be an integer >= 3, got {num_betas!r}")
    n1 = max(1, round(num_betas * 500 / 14500))
    n2 = max(1, round(num_betas * 4000 / 14500))
    n3 = num_betas - n1 - n2
    return torch.cat(
        [
            torch.linspace(0.0, 0.5, n1 + 1, dtype=dtype)[:-1],
            torch.linspace(0.5, 0.9, n2 + 1, dtype=dtype)[:-1],
            torch.linspace(0.9, 1.0, n3 + 1, dtype=dtype),
        ]
    )


def _schedule(betas: Tensor | Sequence[float] | int) -> Tensor:
    """The inverse temperatures given by ``betas``: the schedule itself, or a number ``>= 3``
    of intermediate distributions for :func:`salakhutdinov_murray_betas`."""
    if isinstance(betas, int) and not isinstance(betas, bool):
        check_count("betas", betas, least=3)
        return salakhutdinov_murray_betas(betas)
    if isinstance(betas, (bool, str, bytes)) or not isinstance(betas, (Tensor, Sequence)):
        raise TypeError(
            f"betas must be a 1-D tensor or an integer >= 3, got {type(betas).__name__}"
        )
    betas = torch.as_tensor(betas, dtype=torch.float64).cpu()
    if betas.dim() != 1 or betas.numel() < 2:
        raise ValueError(
            f"betas must be a 1-D tensor of >= 2 values, got shape {tuple(betas.shape)}"
        )
    if betas[0] != 0.0 or betas[-1] != 1.0 or not bool((betas.diff() > 0).all()):  # nan too
        raise ValueError("betas must increase strictly from 0.0 to 1.0")
    return betas


def _log_weights(
    path: AnnealingPath, num_runs: int, betas: list[float], generator: torch.Generator | None
) -> Tensor:
    r"""The :math:`\log w` of ``num_runs`` annealing runs along ``betas``, shape
    ``(num_runs,)``."""
    state = path.init(num_runs, generator)
    log_w = torch.zeros((), dtype=torch.float64)
    for k in range(1, len(betas)):
        log_w = log_w + (path.log_f(state, betas[k]) - path.log_f(state, betas[k - 1]))
        if k < len(betas) - 1:
            state = path.transition(state, betas[k], generator)
    return log_w


@torch.no_grad()
def ais(
    path: AnnealingPath,
    *,
    num_chains: int = 100,
    betas: Tensor | int = 14500,
    generator: torch.Generator | None = None,
) -> PartitionEstimate:
    r"""Annealed importance sampling estimate of :math:`\log Z` along ``path``.

    ``betas`` is the schedule :math:`0 = \beta_0 < \dots < \beta_K = 1`, or an integer
    :math:`K` for :func:`salakhutdinov_murray_betas`. Raises :class:`FloatingPointError` when a
    run's importance weight is not finite (a diverged model, or a path whose base does not
    cover the model). Nothing is differentiated: it runs under ``torch.no_grad``.
    """
    if not isinstance(num_chains, int) or num_chains < 2:
        raise ValueError(f"num_chains must be an integer >= 2, got {num_chains!r}")
    ctx = context()
    if num_chains < ctx.world_size:
        raise ValueError(f"num_chains={num_chains} is less than the world size {ctx.world_size}")
    schedule = _schedule(betas)
    start, stop = bounds(num_chains, ctx)
    with sharded_randomness(num_chains, ctx=ctx):
        log_w = _log_weights(path, stop - start, schedule.tolist(), generator)
    log_w = gather_rows(log_w, num_chains, ctx).cpu()
    bad = ~torch.isfinite(log_w)
    if bool(bad.any()):
        raise FloatingPointError(
            f"AIS produced non-finite importance weights in {int(bad.sum())} of {num_chains} "
            "runs: the model's parameters or energies are not finite (diverged training?)"
        )
    log_w = log_w + path.log_z0
    log_mean = torch.logsumexp(log_w, 0) - math.log(num_chains)
    w = torch.exp(log_w - log_mean)  # weights relative to their mean
    rel_se = float(w.std() / math.sqrt(num_chains))  # se(Ẑ) / Ẑ
    lz = float(log_mean)
    ess = float(w.sum() ** 2 / (w**2).sum())
    lower = lz + math.log(1.0 - 3.0 * rel_se) if 3.0 * rel_se < 1.0 else -math.inf
    upper = lz + math.log(1.0 + 3.0 * rel_se)
    return PartitionEstimate(lz, rel_se, lower, upper, log_w, ess, len(schedule) - 1)
