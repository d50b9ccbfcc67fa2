"""Planar flow speed: flowdist against Pyro's ``Planar`` (and a hand-written torch loop).

K = 32 planar steps, d = 2, batch 4096, float32, 2 threads (``--threads``). The reverse-KL
training pass is ``x, log q(x)`` drawn from the flow, the loss ``mean(log q(x) + U(x))`` with
the energy U1 of Rezende & Mohamed (2015), and its backward pass. Pyro draws with ``rsample``
and reads ``log_prob`` of the sample from its cache; flowdist makes one fused pass. ``log_prob``
of given data (which Pyro's planar flow cannot evaluate) is timed too.

The peak memory of one call of each pass is measured after the timings, each pass in a fresh
process (:mod:`benchmarks.memory`); ``--memory-only`` measures it without re-timing.

    python -m benchmarks.planar_speed.run              # writes results.json and RESULTS.md here
    python -m benchmarks.planar_speed.run --memory-only --threads 1  # keeps the times
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path

import pyro.distributions as pdist
import pyro.distributions.transforms as ptransforms
import torch
import torch.nn.functional as F

from benchmarks.memory import memory_record
from benchmarks.timing import command_line, interleave, machine_summary
from flowdist.flows import PlanarFlow
from flowdist.targets import TARGETS

K, DIM, BATCH = 32, 2, 4096
HERE = Path(__file__).resolve().parent

KL = "reverse-KL pass + backward"
SAMPLE = "rsample_and_log_prob (no grad)"
LOG_PROB = "log_prob of data (no grad)"
LOG_PROB_BACKWARD = "log_prob of data + backward"
FLOWDIST, PYRO = "flowdist", "Pyro Planar"
#: Every timed pass as (measure, competitor); only the reverse-KL pass has competitors.
PASSES = (
    (KL, FLOWDIST),
    (KL, PYRO),
    (KL, "hand-written torch loop"),
    (SAMPLE, FLOWDIST),
    (LOG_PROB, FLOWDIST),
    (LOG_PROB_BACKWARD, FLOWDIST),
)


def passes() -> dict[tuple[str, str], Callable[[], None]]:
    """A call of every pass of :data:`PASSES`, on freshly seeded flows."""
    torch.manual_seed(0)
    energy = TARGETS["U1"].energy
    flow = PlanarFlow(DIM, K)
    steps = [ptransforms.Planar(DIM) for _ in range(K)]
    base = pdist.Normal(torch.zeros(DIM), torch.ones(DIM)).to_event(1)
    data = flow().sample((BATCH,))

    def flowdist_kl() -> None:  # Pyro draws with rsample, log_prob comes from its cache
        x, log_q = flow().rsample_and_log_prob((BATCH,))
        (log_q + energy(x)).mean().backward()

    def pyro_kl() -> None:
        d = pdist.TransformedDistribution(base, steps)
        x = d.rsample((BATCH,))
        (d.log_prob(x) + energy(x)).mean().backward()

    def hand_kl() -> None:  # the same maths, written out in plain torch
        z = torch.randn(BATCH, DIM)
        log_q = -0.5 * (z * z).sum(-1) - DIM / 2 * 1.8378770664093453
        (stack,) = flow.transforms
        for u, w, b in zip(stack.u, stack.w, stack.b, strict=True):
            wu = w @ u
            u_hat = u + (F.softplus(wu) - 1 - wu) * w / (w @ w)
            t = torch.tanh(z @ w + b)
            z = z + t[:, None] * u_hat
            log_q = log_q - torch.log1p((1 - t * t) * (w @ u_hat))
        (log_q + energy(z)).mean().backward()

    def flowdist_sample() -> None:
        with torch.no_grad():
            flow().rsample_and_log_prob((BATCH,))

    def flowdist_log_prob() -> None:
        with torch.no_grad():
            flow().log_prob(data.clone())

    def flowdist_log_prob_backward() -> None:
        (-flow().log_prob(data.clone()).mean()).backward()

    calls = (
        flowdist_kl,
        pyro_kl,
        hand_kl,
        flowdist_sample,
        flowdist_log_prob,
        flowdist_log_prob_backward,
    )
    return dict(zip(PASSES, calls, strict=True))


def one_pass(measure: str, competitor: str) -> Callable[[], None]:
    """The call of one pass (a :mod:`benchmarks.memory` factory)."""
    return passes()[measure, competitor]


def timed(blocks: int) -> dict:
    """Median ms of every pass, interleaved, as the ``rows`` of the results file."""
    t = interleave({f"{c}: {m}": fn for (m, c), fn in passes().items()}, blocks=blocks)
    rows: dict[str, dict[str, float]] = {}
    for m, c in PASSES:
        rows.setdefault(m, {})[c] = round(t.median_ms(f"{c}: {m}"), 2)
    return {
        "command": command_line(),
        "machine": machine_summary(),
        "kept_blocks": t.kept_blocks,
        "dropped_blocks": t.dropped_blocks,
        "rows": [{"measure": m, "median_ms": ms} for m, ms in rows.items()],
    }


def markdown(results: dict) -> str:
    """``RESULTS.md`` from the results file: times, ratios to Pyro, memory peaks, verdicts."""
    ms = {row["measure"]: row["median_ms"] for row in results["rows"]}
    pyro, ours = ms[KL][PYRO], ms[KL][FLOWDIST]
    peaks, first = results["memory"]["peak_mib"], results["memory"]["first_call_mib"]
    lines = [
        f"| {c}: {m} | {ms[m][c]:.2f} | {pyro / ms[m][c]:.2f} | {peaks[m][c]:.1f} | "
        f"{first[m][c]:.1f} |"
        for m, c in PASSES
    ]
    return "\n".join(
        [
            "# Planar flow speed: flowdist vs Pyro",
            "",
            f"K = {K}, d = {DIM}, batch {BATCH}, float32, energy U1. "
            f"Medians over {results['kept_blocks']} quiet blocks of 5 interleaved calls "
            f"({results['dropped_blocks']} blocks dropped because other processes used the CPU).",
            "",
            f"Machine: {results['machine']}.",
            "",
            *([results["note"], ""] if "note" in results else []),
            "| pass | median ms | Pyro time / this time | peak MiB | first-call MiB |",
            "|---|---|---|---|---|",
            *lines,
            "",
            f"- Reverse-KL training pass: flowdist is **{pyro / ours:.2f}x** "
            "faster than Pyro (target: at least 1.8x).",
            "- log_prob of data, relative to the reverse-KL training pass: "
            f"{ms[LOG_PROB_BACKWARD][FLOWDIST] / ours:.2f}x with backward, "
            f"{ms[LOG_PROB][FLOWDIST] / ours:.2f}x without "
            "(target: within 3x). Relative to the no-grad sampling pass: "
            f"{ms[LOG_PROB][FLOWDIST] / ms[SAMPLE][FLOWDIST]:.2f}x.",
            "- Peak MiB: resident-set growth during one call of the pass (the second after the "
            "setup; first-call MiB: the first), each pass in a fresh process "
            "(`benchmarks/memory.py`); measured by "
            f"`{results['memory']['command']}` on {results['memory']['machine']}.",
            "",
            f"Command: `{results['command']}`",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--memory-only",
        action="store_true",
        help="keep the times of the results file, measure only the memory peaks",
    )
    parser.add_argument("--results", type=Path, default=HERE / "results.json")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = json.loads(args.results.read_text()) if args.memory_only else timed(args.blocks)
    results["memory"] = memory_record(
        ((m, c, functools.partial(one_pass, m, c)) for m, c in PASSES),
        call="one call of the pass (one batch of 4096)",
    )
    args.results.write_text(json.dumps(results, indent=1) + "\n")
    args.out.write_text(markdown(results))
    sys.stdout.write(markdown(results))


if __name__ == "__main__":
    main()
