r"""Gibbs kernels and a chain runner.

* :func:`site_gibbs_sweep` — one systematic-scan sweep over the units of a pairwise binary
  Markov random field :math:`p(y) \propto \exp(\tfrac12 y^\top J y + h^\top y)`: unit :math:`i`
  is redrawn from :math:`p(y_i = 1 \mid y_{-i}) = \sigma\big(\sum_j J_{ij} y_j + h_i\big)`.
* :func:`alternating_gibbs_sweep` — block Gibbs for layered models whose layers only talk to
  their neighbours (RBMs, deep Boltzmann machines): the odd layers are conditionally
  independent given the even ones and vice versa, so a sweep redraws all odd layers, then all
  even layers.
* :func:`run_chain` — burn-in, then ``num_samples`` draws ``thin`` steps apart, for any kernel.
* :class:`PersistentChains` — a chain state kept between calls (persistent contrastive
  divergence, persistent sampling).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from flowdist.validation import check_count, check_generator

__all__ = [
    "BernoulliDraws",
    "PersistentChains",
    "alternating_gibbs_sweep",
    "bernoulli",
    "run_chain",
    "site_gibbs_sweep",
]

State = Any  # a tensor or a tuple of tensors; the kernel decides


#: Rows at least this wide are drawn from random bits (:func:`bernoulli`); narrower ones, whose
#: draws cost less than the bits' extra operations, from :func:`torch.rand`.
_BITS_MIN_WIDTH = 256
#: For draws of ``bits`` random bits: the integer dtype they are read as, the scale :math:`S`
#: and the offset :math:`-cS` (a 0-dim tensor, so the threshold :math:`t = S p - c S` is one
#: pass) of the float32 threshold (see :func:`bernoulli`): :math:`t(0)` lies below every such
#: integer and :math:`t(1)` above, so :math:`p = 0` and :math:`p = 1` are exact.
_BITS = {
    32: (torch.int32, 2.0**32 + 512.0, torch.tensor(-(2.0**31 + 256.0), device="cpu")),
    16: (torch.int16, 2.0**16, torch.tensor(-(2.0**15 + 0.5), device="cpu")),
}


def _threshold(probs: Tensor, bits: int = 32, out: Tensor | None = None) -> Tensor:
    r"""The float32 threshold :math:`t = S p - c S` that a uniform ``bits``-bit integer
    :math:`s` falls below with probability :math:`p`, up to :math:`2^{-23}` (32 bits) or
    :math:`2^{-17} + 2^{-24}` (16 bits); see :func:`bernoulli`."""
    _, scale, offset = _BITS[bits]
    # a 0-dim CPU offset suits any device
    return torch.add(offset, probs.float(), alpha=scale, out=out)


class BernoulliDraws:
    r""":func:`bernoulli` for probabilities of one ``shape`` and ``dtype``, again and again:
    the uniforms (and thresholds) live in buffers allocated once, and nothing is checked —
    for the inner loop of a sampler. ``draws(probs, generator, out)``, with ``probs`` and
    ``out`` of that shape, gives exactly the draws of
    ``bernoulli(probs, generator, out=out, bits=bits)``."""

    def __init__(
        self, shape: Sequence[int], dtype: torch.dtype, bits: int, device: torch.device
    ) -> None:
        self.bits = bits
        # the width is divided, not the rows, which sharded_randomness finds
        wide = len(shape) >= 2 and shape[-1] >= _BITS_MIN_WIDTH
        if wide and dtype != torch.float64:
            d, per_word = shape[-1], 64 // bits
            self.words = torch.empty(
                (*shape[:-1], -(-d // per_word)), dtype=torch.int64, device=device
            )
            u = self.words.view(_BITS[bits][0])
            self.u = u[..., :d] if d % per_word else u
            self.threshold: Tensor | None = torch.empty(shape, device=device)
        else:
            uniform = torch.float64 if dtype == torch.float64 else torch.float32
            self.u = self.words = torch.empty(shape, dtype=uniform, device=device)
            self.threshold = None

    def __call__(self, probs: Tensor, generator: torch.Generator | None, out: Tensor) -> Tensor:
        if self.threshold is None:
            self.words.uniform_(generator=generator)
            threshold = probs
        else:
            self.words.random_(-(2**63), None, generator=generator)
            threshold = _threshold(probs, self.bits, out=self.threshold)
        # comparing straight into the output dtype skips a boolean temporary and a cast (4-6x)
        return torch.lt(self.u, threshold, out=out)


def bernoulli(
    probs: Tensor,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    *,
    out: Tensor | None = None,
    bits: int = 32,
) -> Tensor:
    r"""Independent draws :math:`\mathbb 1[u < p]` in ``dtype`` (default: ``probs``' dtype), or
    into ``out`` (a tensor, or a view, of ``probs``' shape).

    The same law as :func:`torch.bernoulli`, several times faster on CPU. Rows (the last
    dimension of a tensor of two or more) of at least 256 probabilities that are not float64
    draw from random bits: :math:`u` is a uniform ``bits``-bit integer :math:`s` (a half or a
    quarter of an int64 draw: torch's CPU generator makes those at half the cost per bit of
    float32 uniforms), compared in float32 with the threshold :math:`t = S p - c S`:
    :math:`c = \tfrac12`, :math:`S = 2^{32} + 512` for 32 bits (so :math:`t(1) = 2^{31} + 256`
    exceeds every int32 rounded to float32), :math:`c = \tfrac12 + 2^{-17}`, :math:`S = 2^{16}`
    for 16 (:math:`t(0) = -2^{15} - \tfrac12`, :math:`t(1) = 2^{15} - \tfrac12`), so

    .. math::
        P(\text{draw} = 1) = 2^{-\text{bits}}\,\#\{s : \mathrm{fl}_{32}(s) < t\}
            = p + \varepsilon, \qquad |\varepsilon| < 2^{-23}\ \text{(32 bits)},\quad
            |\varepsilon| \le 2^{-17} + 2^{-24}\ \text{(16 bits)},

    exact at :math:`p = 0` and :math:`p = 1` (``tests/ebm/test_ebm_gibbs.py`` counts it). For
    32 bits, in units of :math:`2^{-32}`, the scale's excess over :math:`2^{32}` shifts :math:`t`
    by at most 256 and the roundings of :math:`S p`, of the sum and of :math:`s` by at most 192
    together (the sum is exact where :math:`S p \ge 2^{31}`); for 16 bits :math:`S p` is exact
    and :math:`t = 2^{16} p - 2^{15} - \tfrac12` is computed within :math:`2^{-9}` (one
    rounding of the sum), so the count is that of
    :math:`\lceil 2^{16} p - \tfrac12 \rceil`, off by at most half a step. 16 bits halve the
    generator's work; they suit probabilities computed in a 16-bit ``compute_dtype``, whose
    rounding (about :math:`2^{-9}` of the logit) is far larger. Other draws compare
    :func:`torch.rand`'s float32 uniforms, multiples of :math:`2^{-24}` (off by up to
    :math:`2^{-24}`), or its 53-bit ones for float64 ``probs``. The choice depends on the row
    width only, never on the number of rows, so :func:`flowdist.distributed.sharded_randomness`
    slices either.

    Probabilities outside :math:`[0, 1]` are not checked (this is the inner loop of every
    sampler): ``nan`` draws 0.
    """
    if not isinstance(probs, Tensor) or not probs.is_floating_point():
        raise TypeError(f"probs must be a floating-point torch.Tensor, got {_describe(probs)}")
    if bits not in _BITS:
        raise ValueError(f"bits must be one of {sorted(_BITS)}, got {bits!r}")
    check_generator(generator, probs.device)
    if out is None:
        out = torch.empty(probs.shape, dtype=dtype or probs.dtype, device=probs.device)
    elif not isinstance(out, Tensor) or out.shape != probs.shape:
        raise ValueError(
            f"out must be a tensor of shape {tuple(probs.shape)}, got {_describe(out)}"
        )
    return BernoulliDraws(probs.shape, probs.dtype, bits, probs.device)(probs, generator, out)


def site_gibbs_sweep(
    y: Tensor, coupling: Tensor, bias: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    r"""One systematic-scan Gibbs sweep over the units of a pairwise binary MRF.

    ``y`` has shape ``(n, d)`` (``n`` independent chains), ``coupling`` is the symmetric
    :math:`d \times d` matrix :math:`J` with zero diagonal and ``bias`` the vector :math:`h`.
    Returns a new tensor; ``y`` is not modified.
    """
    if not isinstance(y, Tensor) or y.dim() != 2 or not y.is_floating_point():
        raise ValueError(f"y must be a floating-point tensor of shape (n, d), got {_describe(y)}")
    d = y.shape[1]
    for name, t, shape in (("coupling", coupling, (d, d)), ("bias", bias, (d,))):
        if not isinstance(t, Tensor) or tuple(t.shape) != shape:
            raise ValueError(
                f"{name} must be a tensor of shape {shape} (y has shape "
                f"{tuple(y.shape)}), got {_describe(t)}"
            )
        if t.dtype != y.dtype or t.device != y.device:
            raise TypeError(
                f"{name} is a {t.dtype} tensor on {t.device}, but y is a {y.dtype} "
                f"tensor on {y.device}; they must match"
            )
    y = y.clone()
    for i in range(y.shape[-1]):
        logits = y @ coupling[:, i] + bias[i]
        y[:, i] = bernoulli(torch.sigmoid(logits), generator)
    return y


def alternating_gibbs_sweep(
    layers: Sequence[Tensor],
    sample_layer: Callable[[int, list[Tensor]], Tensor],
) -> list[Tensor]:
    r"""One block-Gibbs sweep of a layered model: all odd layers, then all even layers.

    ``sample_layer(l, layers)`` draws layer ``l`` from its conditional given its neighbours in
    ``layers``. Within a parity the layers are conditionally independent, so their order does
    not matter.
    """
    if not isinstance(layers, Sequence) or not all(isinstance(t, Tensor) for t in layers):
        raise TypeError(f"layers must be a sequence of tensors, got {_describe(layers)}")
    if not callable(sample_layer):
        raise TypeError(f"sample_layer must be callable, got {_describe(sample_layer)}")
    layers = list(layers)
    for parity in (1, 0):
        for index in range(parity, len(layers), 2):
            layers[index] = sample_layer(index, layers)
    return layers


def run_chain(
    step: Callable[[State], State],
    init: State,
    *,
    num_samples: int,
    burn_in: int,
    thin: int = 1,
    extract: Callable[[State], Tensor] | None = None,
) -> tuple[Tensor, State]:
    r"""Run a Markov chain: ``burn_in`` steps, then ``num_samples`` draws ``thin`` steps apart.

    The first draw is the state after ``burn_in`` steps, so ``burn_in + (num_samples - 1) * thin``
    steps are taken in all. ``extract`` maps a state to the tensor that is recorded (the
    visible units, say). Returns the stacked draws, shape ``(num_samples, *extract(state).shape)``,
    and the final state (to continue the chain).
    """
    check_count("num_samples", num_samples, least=1)
    check_count("burn_in", burn_in)
    check_count("thin", thin, least=1)
    for name, fn in (("step", step), ("extract", extract)):
        if fn is not None and not callable(fn):
            raise TypeError(f"{name} must be callable, got {_describe(fn)}")
    extract = extract if extract is not None else (lambda s: s)
    state = init
    for _ in range(burn_in):
        state = step(state)
    draws = [extract(state)]
    for _ in range(num_samples - 1):
        for _ in range(thin):
            state = step(state)
        draws.append(extract(state))
    return torch.stack(draws), state


class PersistentChains:
    r"""Markov chains whose state survives between calls.

    ``init(num_chains, generator)`` makes a fresh state; :meth:`get` returns the stored state
    when it has ``num_chains`` chains on the requested device and dtype, and a fresh one
    otherwise.
    """

    def __init__(self, init: Callable[[int, torch.Generator | None], State]) -> None:
        if not callable(init):
            raise TypeError(f"init must be callable, got {_describe(init)}")
        self._init = init
        self.state: State | None = None

    @staticmethod
    def _first(state: State) -> Tensor:
        return state if isinstance(state, Tensor) else state[0]

    def get(self, num_chains: int, like: Tensor, generator: torch.Generator | None = None) -> State:
        """The stored state if compatible with ``num_chains`` chains like ``like``, else fresh."""
        check_count("num_chains", num_chains, least=1)
        if self.state is not None:
            first = self._first(self.state)
            if (
                first.shape[0] == num_chains
                and first.device == like.device
                and first.dtype == like.dtype
            ):
                return self.state
        self.state = self._init(num_chains, generator)
        return self.state

    def reset(self) -> None:
        """Forget the stored state."""
        self.state = None


def _describe(value: Any) -> str:
    """A short description of an argument for error messages: a tensor's shape and dtype, or
    the type of anything else."""
    if isinstance(value, Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__
