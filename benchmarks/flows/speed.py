"""Speed of flowdist's coupling, autoregressive and Glow layers against Pyro, zuko, nflows
and normflows, in one process: competitors interleaved in a shuffled order each round, the
median over rounds reported, and the ratio to the fastest competitor.

    python benchmarks/flows/speed.py --rounds 7 --out benchmarks/flows/speed.json

normflows' ``MaskedAffineAutoregressive`` is left out of the MAF case: its density direction
takes d MADE passes (24.8 s per log_prob + backward in a first run, against ~0.2 s for the
others), so it is not a one-pass MAF.

Importing zuko switches off torch.distributions argument validation process-wide; the script
switches it off explicitly for everyone.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable

import normflows as nf
import pyro.distributions as pdist
import pyro.distributions.transforms as PT
import torch
import zuko
from nflows import distributions as nfd
from nflows import flows as nff
from nflows import transforms as nft
from pyro.nn import AutoRegressiveNN, DenseNN
from torch import nn

from flowdist.flows.autoregressive import IAF, MAF
from flowdist.flows.core import Flow, StandardNormal
from flowdist.flows.glow import glow_step
from flowdist.transforms.coupling import (
    AdditiveCouplingTransform,
    AffineCouplingTransform,
    half_mask,
)
from flowdist.transforms.glow import ActNormTransform, Invertible1x1ConvTransform

D, HIDDEN, BATCH = 64, (256, 256), 1024
IMAGE, IMAGE_BATCH, GLOW_HIDDEN = (12, 16, 16), 64, 128


class _ContextMLP(nn.Sequential):
    """nflows calls its coupling networks as ``net(x, context)``."""

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(x)


def mlp(i: int, o: int) -> nn.Module:
    return _ContextMLP(
        nn.Linear(i, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, o)
    )


class Model:
    """A competitor: ``log_prob(x)`` and ``sample(n)`` closures and its parameters."""

    def __init__(self, log_prob: Callable, sample: Callable | None, module: nn.Module) -> None:
        self.log_prob, self.sample, self.module = log_prob, sample, module


# ----------------------------------------------------------------------------- couplings
def flowdist_coupling(affine: bool) -> Model:
    cls = AffineCouplingTransform if affine else AdditiveCouplingTransform
    flow = Flow(
        [cls(half_mask(D, flip=bool(k % 2)), hidden=HIDDEN) for k in range(8)], StandardNormal(D)
    )
    return Model(lambda x: flow().log_prob(x), lambda n: flow().rsample_and_log_prob((n,))[0], flow)


def zuko_coupling(affine: bool) -> Model:
    cls = zuko.flows.RealNVP if affine else zuko.flows.NICE
    flow = cls(D, transforms=8, hidden_features=HIDDEN)
    return Model(lambda x: flow().log_prob(x), lambda n: flow().rsample((n,)), flow)


def nflows_coupling(affine: bool) -> Model:
    cls = nft.AffineCouplingTransform if affine else nft.AdditiveCouplingTransform
    mask = torch.cat([torch.ones(D // 2), -torch.ones(D // 2)])
    layers = [cls(mask if k % 2 else -mask, mlp) for k in range(8)]
    flow = nff.Flow(nft.CompositeTransform(layers), nfd.StandardNormal([D]))
    return Model(flow.log_prob, flow.sample, flow)


def normflows_coupling(affine: bool) -> Model:
    layers = []
    for _ in range(8):
        out = D if affine else D // 2
        layers += [
            nf.flows.AffineCouplingBlock(nf.nets.MLP([D // 2, 256, 256, out]), scale=affine),
            nf.flows.Permute(D, mode="swap"),
        ]
    flow = nf.NormalizingFlow(nf.distributions.DiagGaussian(D, trainable=False), layers)
    return Model(flow.log_prob, lambda n: flow.sample(n)[0], flow)


def pyro_coupling(affine: bool) -> Model:
    if not affine:
        raise NotImplementedError("Pyro has no additive coupling")
    layers, mods = [], nn.ModuleList()
    for _ in range(8):
        t = PT.AffineCoupling(D // 2, DenseNN(D // 2, list(HIDDEN), [D // 2, D // 2]))
        mods.append(t)
        layers += [t, PT.Permute(torch.arange(D - 1, -1, -1))]
    base = pdist.Normal(torch.zeros(D), torch.ones(D)).to_event(1)
    dist = pdist.TransformedDistribution(base, layers)
    return Model(dist.log_prob, lambda n: dist.rsample((n,)), mods)


# ----------------------------------------------------------------------------- MAF
def flowdist_maf() -> Model:
    flow = MAF(D, 5, HIDDEN)
    return Model(lambda x: flow().log_prob(x), lambda n: flow().rsample_and_log_prob((n,))[0], flow)


def flowdist_iaf_sampling() -> Model:
    flow = IAF(D, 5, HIDDEN)
    return Model(
        lambda x: flow().rsample_and_log_prob((len(x),))[1],
        lambda n: flow().rsample_and_log_prob((n,))[0],
        flow,
    )


def zuko_maf() -> Model:
    flow = zuko.flows.MAF(D, transforms=5, hidden_features=HIDDEN)
    return Model(lambda x: flow().log_prob(x), lambda n: flow().rsample((n,)), flow)


def nflows_maf() -> Model:
    layers = []
    for _ in range(5):
        layers += [
            nft.MaskedAffineAutoregressiveTransform(
                D, 256, num_blocks=2, use_residual_blocks=False
            ),
            nft.ReversePermutation(D),
        ]
    flow = nff.Flow(nft.CompositeTransform(layers), nfd.StandardNormal([D]))
    return Model(flow.log_prob, flow.sample, flow)


def pyro_maf() -> Model:
    layers, mods = [], nn.ModuleList()
    for _ in range(5):
        t = PT.AffineAutoregressive(AutoRegressiveNN(D, list(HIDDEN)))
        mods.append(t)
        layers += [t.inv, PT.Permute(torch.arange(D - 1, -1, -1))]  # .inv: one-pass density
    base = pdist.Normal(torch.zeros(D), torch.ones(D)).to_event(1)
    dist = pdist.TransformedDistribution(base, layers)
    return Model(dist.log_prob, lambda n: dist.rsample((n,)), mods)


# ----------------------------------------------------------------------------- Glow
def flowdist_actnorm_conv() -> Model:
    flow = Flow(
        [Invertible1x1ConvTransform(*IMAGE), ActNormTransform(*IMAGE)], StandardNormal(*IMAGE)
    )
    return Model(lambda x: flow().log_prob(x), lambda n: flow().rsample_and_log_prob((n,))[0], flow)


def normflows_actnorm_conv() -> Model:
    layers = [nf.flows.Invertible1x1Conv(IMAGE[0], use_lu=True), nf.flows.ActNorm((IMAGE[0], 1, 1))]
    flow = nf.NormalizingFlow(nf.distributions.DiagGaussian(IMAGE, trainable=False), layers)
    return Model(flow.log_prob, lambda n: flow.sample(n)[0], flow)


def nflows_actnorm_conv() -> Model:
    layers = [nft.ActNorm(IMAGE[0]), nft.OneByOneConvolution(IMAGE[0])]
    flow = nff.Flow(nft.CompositeTransform(layers), nfd.StandardNormal(list(IMAGE)))
    return Model(flow.log_prob, flow.sample, flow)


def flowdist_glow_step() -> Model:
    flow = Flow(glow_step(IMAGE, GLOW_HIDDEN), StandardNormal(*IMAGE))
    return Model(lambda x: flow().log_prob(x), lambda n: flow().rsample_and_log_prob((n,))[0], flow)


def normflows_glow_step() -> Model:
    flow = nf.NormalizingFlow(
        nf.distributions.DiagGaussian(IMAGE, trainable=False),
        [nf.flows.GlowBlock(IMAGE[0], GLOW_HIDDEN, split_mode="channel")],
    )
    return Model(flow.log_prob, lambda n: flow.sample(n)[0], flow)


CASES: dict[str, tuple[tuple[int, ...], int, dict[str, Callable[[], Model]]]] = {
    "additive coupling x8": (
        (D,),
        BATCH,
        {
            "flowdist": lambda: flowdist_coupling(False),
            "zuko": lambda: zuko_coupling(False),
            "nflows": lambda: nflows_coupling(False),
            "normflows": lambda: normflows_coupling(False),
        },
    ),
    "affine coupling x8": (
        (D,),
        BATCH,
        {
            "flowdist": lambda: flowdist_coupling(True),
            "zuko": lambda: zuko_coupling(True),
            "nflows": lambda: nflows_coupling(True),
            "normflows": lambda: normflows_coupling(True),
            "pyro": lambda: pyro_coupling(True),
        },
    ),
    "MAF x5": (
        (D,),
        BATCH,
        {
            "flowdist": flowdist_maf,
            "flowdist IAF (rsample_and_log_prob)": flowdist_iaf_sampling,
            "zuko": zuko_maf,
            "nflows": nflows_maf,
            "pyro": pyro_maf,
        },
    ),
    "ActNorm + LU 1x1 conv": (
        IMAGE,
        IMAGE_BATCH,
        {
            "flowdist": flowdist_actnorm_conv,
            "normflows": normflows_actnorm_conv,
            "nflows": nflows_actnorm_conv,
        },
    ),
    "Glow step": (
        IMAGE,
        IMAGE_BATCH,
        {"flowdist": flowdist_glow_step, "normflows": normflows_glow_step},
    ),
}


def grad_step(m: Model, x: torch.Tensor) -> None:
    for p in m.module.parameters():
        p.grad = None
    m.log_prob(x.clone()).mean().backward()  # a fresh tensor: no transform's cache may hit


def sample_step(m: Model, x: torch.Tensor) -> None:
    with torch.no_grad():
        m.sample(len(x))


def time_call(
    step: Callable[[Model, torch.Tensor], None], m: Model, x: torch.Tensor, reps: int
) -> float:
    start = time.perf_counter()
    for _ in range(reps):
        step(m, x)
    return (time.perf_counter() - start) / reps * 1e3


def bench(rounds: int, reps: int, seed: int, skip_sampling: set[str], cases: list[str]) -> dict:
    rng = random.Random(seed)
    results = {}
    for case in cases:
        shape, batch, makers = CASES[case]
        torch.manual_seed(seed)
        x = torch.randn(batch, *shape)
        models = {}
        for name, make in makers.items():
            try:
                models[name] = make()
            except NotImplementedError as err:
                print(f"{case}: {name} skipped ({err})")
        for m in models.values():  # warm up (and ActNorm's data-dependent initialisation)
            m.log_prob(x).sum().backward()
        kinds = {"log_prob+backward": grad_step}
        if case not in skip_sampling:
            kinds["sample"] = sample_step
        case_res = {}
        for kind, step in kinds.items():
            times: dict[str, list[float]] = {n: [] for n in models}
            for _ in range(rounds):
                order = list(models)
                rng.shuffle(order)
                for name in order:
                    times[name].append(time_call(step, models[name], x, reps))
            case_res[kind] = {n: statistics.median(t) for n, t in times.items()}
            print(case, kind, {n: round(v, 2) for n, v in case_res[kind].items()}, flush=True)
        results[case] = case_res
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    parser.add_argument("--cases", nargs="*", default=list(CASES), help="subset of the cases")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.distributions.Distribution.set_default_validate_args(False)
    results = bench(args.rounds, args.reps, args.seed, {"Glow step"}, args.cases)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
