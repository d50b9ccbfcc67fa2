"""Speed of flowdist's coupling, autoregressive and Glow layers against Pyro, zuko, nflows
and normflows, in one process, timed by :func:`benchmarks.timing.interleave` (rounds of one call
of each competitor, in a shuffled order, within blocks; blocks during which other processes used
the CPU are dropped). Reports the median ms per call and flowdist's ratio to the fastest competitor.

    python -m benchmarks.flows.speed --out benchmarks/flows/speed.json
    python -m benchmarks.flows.speed --memory-only --threads 1 --out benchmarks/flows/speed.json

After the timings, the peak memory of one call of every competitor is measured, each in a fresh
process (:mod:`benchmarks.memory`), and stored beside the times; ``--memory-only`` measures it
for the rows of an existing results file and keeps their times.

flowdist is measured through the public API a user calls: ``flow().log_prob(x)`` and
``flow().sample((n,))``. Each case times the measures that issue 4 sets a target for. The pass
counts of MAF and IAF sampling are checked by the tests, not timed here.

normflows' ``MaskedAffineAutoregressive`` is left out of the MAF case: its density direction
takes d MADE passes (24.8 s per log_prob + backward in a first run, against ~0.2 s for the
others), so it is not a one-pass MAF.

Argument validation: importing zuko switches torch.distributions' validation off
process-wide, importing Pyro may switch it on; after all imports the script switches it off
for every library (torch.distributions and Pyro) and checks that it is off, so no competitor
pays for argument checks (the memory pass's processes too).
"""

from __future__ import annotations

import argparse
import functools
import json
from collections.abc import Callable, Iterable
from pathlib import Path

import normflows as nf
import pyro
import pyro.distributions as pdist
import pyro.distributions.transforms as PT
import torch
import zuko
from nflows import distributions as nfd
from nflows import flows as nff
from nflows import transforms as nft
from pyro.nn import AutoRegressiveNN, DenseNN
from torch import nn
from torch.distributions import Distribution

from benchmarks.memory import memory_record
from benchmarks.timing import Timings, command_line, interleave, machine_summary
from flowdist.flows.autoregressive import MAF
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


def flowdist_model(flow: nn.Module) -> Model:
    """A flowdist flow through its public API: ``flow().log_prob(x)``, ``flow().sample((n,))``."""
    return Model(lambda x: flow().log_prob(x), lambda n: flow().sample((n,)), flow)


# ----------------------------------------------------------------------------- couplings
def flowdist_coupling(affine: bool) -> Model:
    cls = AffineCouplingTransform if affine else AdditiveCouplingTransform
    flow = Flow(
        [cls(half_mask(D, flip=bool(k % 2)), hidden=HIDDEN) for k in range(8)], StandardNormal(D)
    )
    return flowdist_model(flow)


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
    return flowdist_model(flow)


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
    return flowdist_model(flow)


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
    return flowdist_model(flow)


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


#: Targets of issue 4: case -> measure -> competitors to beat (``None``: the fastest of all).
TARGETS: dict[str, dict[str, list[str] | None]] = {
    "additive coupling x8": {"log_prob+backward": None, "sample": None},
    "affine coupling x8": {"log_prob+backward": None, "sample": None},
    "MAF x5": {"log_prob+backward": None},
    "ActNorm + LU 1x1 conv": {"log_prob+backward": None},
    "Glow step": {"log_prob+backward": ["normflows"]},
}


def grad_step(m: Model, x: torch.Tensor) -> None:
    for p in m.module.parameters():
        p.grad = None
    m.log_prob(x.clone()).mean().backward()  # a fresh tensor: no transform's cache may hit


def sample_step(m: Model, x: torch.Tensor) -> None:
    with torch.no_grad():
        m.sample(len(x))


STEPS = {"log_prob+backward": grad_step, "sample": sample_step}


def validation_off() -> None:
    """Switch argument validation off for every library, after all imports."""
    Distribution.set_default_validate_args(False)
    pyro.enable_validation(False)
    assert not Distribution._validate_args, "argument validation must be off for everyone"


def prepared(case: str, seed: int, names: Iterable[str]) -> tuple[torch.Tensor, dict[str, Model]]:
    """The case's input batch and the named competitors' models, after one ``log_prob`` +
    backward on the batch (ActNorm's data-dependent initialisation)."""
    shape, batch, makers = CASES[case]
    torch.manual_seed(seed)
    x = torch.randn(batch, *shape)
    models = {}
    for name in names:
        try:
            models[name] = makers[name]()
        except NotImplementedError as err:
            print(f"{case}: {name} skipped ({err})")
    for m in models.values():
        m.log_prob(x).sum().backward()
    return x, models


def competitor_call(case: str, kind: str, name: str, seed: int) -> Callable[[], None]:
    """One competitor's timed call, set up as for the timings (a :mod:`benchmarks.memory`
    factory); the initialisation's gradients are dropped, so they are not in the baseline."""
    validation_off()
    x, models = prepared(case, seed, [name])
    for p in models[name].module.parameters():
        p.grad = None
    return functools.partial(STEPS[kind], models[name], x)


def row(case: str, kind: str, t: Timings) -> dict:
    """Medians, the fastest competitor and flowdist's ratio to it, and whether the target of
    issue 4 (ratio at most 1) is met."""
    medians = {name: t.median_ms(name) for name in t.times}
    against = TARGETS[case][kind]
    others = [
        n for n in medians if not n.startswith("flowdist") and (against is None or n in against)
    ]
    fastest = min(others, key=medians.__getitem__)
    ratio = t.ratio("flowdist", fastest)
    return {
        "measure": f"{case}, {kind}",
        "case": case,
        "kind": kind,
        "median_ms": medians,
        "fastest": fastest,
        "ratio": ratio,
        "met": ratio <= 1.0,
        "kept_blocks": t.kept_blocks,
        "dropped_blocks": t.dropped_blocks,
    }


def markdown(rows: list[dict], memory: dict | None = None) -> str:
    """The results table: median ms per call of each competitor, ratio, target, and with
    ``memory`` (the results file's memory block) the peak MiB of one call of each."""
    header = ["case", "measure", "flowdist", "competitors (median ms)", "ratio to fastest"]
    header += ["target", "blocks kept/dropped"]
    header += ["peak MiB of a call (of the first call)"] if memory else []
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        ms = r["median_ms"]
        cells = [r["case"], r["kind"], f"{ms['flowdist']:.1f}"]
        cells.append(", ".join(f"{n} {v:.1f}" for n, v in ms.items() if n != "flowdist"))
        cells += [f"{r['ratio']:.2f} (vs {r['fastest']})", "met" if r["met"] else "**not met**"]
        cells.append(f"{r['kept_blocks']}/{r['dropped_blocks']}")
        if memory:
            peaks, first = memory["peak_mib"][r["measure"]], memory["first_call_mib"][r["measure"]]
            cells.append(", ".join(f"{n} {v:.1f} ({first[n]:.1f})" for n, v in peaks.items()))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bench(args: argparse.Namespace) -> list[dict]:
    rows = []
    for case in args.cases:
        x, models = prepared(case, args.seed, CASES[case][2])
        for kind in [k for k in TARGETS[case] if k in args.kinds]:
            step = STEPS[kind]
            fns = {n: functools.partial(step, m, x) for n, m in models.items()}
            t = interleave(
                fns,
                blocks=args.blocks,
                calls=args.calls,
                warmup=1,
                max_other=args.max_other,
                max_blocks=args.max_blocks,
            )
            rows.append(row(case, kind, t))
            print(markdown(rows[-1:]).splitlines()[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--blocks", type=int, default=5, help="quiet blocks to keep")
    parser.add_argument("--calls", type=int, default=2, help="calls per competitor per block")
    parser.add_argument("--max-blocks", type=int, default=None)
    parser.add_argument(
        "--max-other", type=float, default=0.25, help="drop a block if others used more CPU"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="the results file (JSON)")
    parser.add_argument(
        "--memory-only",
        action="store_true",
        help="measure the memory peaks of the rows of --out, keeping their times",
    )
    parser.add_argument("--cases", nargs="*", default=list(CASES), help="subset of the cases")
    parser.add_argument("--kinds", nargs="*", default=list(STEPS), choices=list(STEPS))
    args = parser.parse_args()
    if args.memory_only and args.out is None:
        parser.error("--memory-only updates the results file named by --out")
    torch.set_num_threads(args.threads)
    validation_off()
    if args.memory_only:
        results = json.loads(args.out.read_text())
        if "rows" not in results:
            parser.error(f"--memory-only needs a results file of one run; {args.out} has several")
    else:
        results = {
            "command": command_line(),
            "args": vars(args) | {"out": str(args.out)},
            "machine": machine_summary(),
            "rows": bench(args),
        }
    results["memory"] = memory_record(
        (
            (
                r["measure"],
                name,
                functools.partial(competitor_call, r["case"], r["kind"], name, args.seed),
            )
            for r in results["rows"]
            for name in r["median_ms"]
        ),
        call="one call: log_prob + backward of the batch, or one sample of the batch size",
    )
    print(results["machine"])
    print(markdown(results["rows"], results["memory"]))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
