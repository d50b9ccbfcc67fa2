"""Planar flow speed: flowdist against Pyro's ``Planar`` (and a hand-written torch loop).

K = 32 planar steps, d = 2, batch 4096, float32, 2 threads. The reverse-KL training pass is
``x, log q(x)`` drawn from the flow, the loss ``mean(log q(x) + U(x))`` with the energy U1 of
Rezende & Mohamed (2015), and its backward pass. Pyro draws with ``rsample`` and reads
``log_prob`` of the sample from its cache; flowdist makes one fused pass. ``log_prob`` of given
data (which Pyro's planar flow cannot evaluate) is timed too.

    python -m benchmarks.planar_speed.run            # writes benchmarks/planar_speed/RESULTS.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pyro.distributions as pdist
import pyro.distributions.transforms as ptransforms
import torch
import torch.nn.functional as F

from benchmarks.timing import interleave, machine_summary
from flowdist.flows import PlanarFlow
from flowdist.targets import TARGETS

K, DIM, BATCH = 32, 2, 4096


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    torch.manual_seed(0)
    energy = TARGETS["U1"].energy

    flow = PlanarFlow(DIM, K)
    steps = [ptransforms.Planar(DIM) for _ in range(K)]
    base = pdist.Normal(torch.zeros(DIM), torch.ones(DIM)).to_event(1)
    data = flow().sample((BATCH,))

    def flowdist_kl() -> None:
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

    t = interleave(
        {
            "flowdist: rsample_and_log_prob + backward": flowdist_kl,
            "Pyro Planar: rsample + cached log_prob + backward": pyro_kl,
            "hand-written torch loop + backward": hand_kl,
            "flowdist: rsample_and_log_prob (no grad)": flowdist_sample,
            "flowdist: log_prob of data (no grad)": flowdist_log_prob,
            "flowdist: log_prob of data + backward": flowdist_log_prob_backward,
        },
        blocks=args.blocks,
    )
    pyro_name = "Pyro Planar: rsample + cached log_prob + backward"
    ours = "flowdist: rsample_and_log_prob + backward"
    no_grad_ratio = t.ratio(
        "flowdist: log_prob of data (no grad)", "flowdist: rsample_and_log_prob (no grad)"
    )
    rows = [
        f"| {name} | {t.median_ms(name):.2f} | {t.ratio(pyro_name, name):.2f} |" for name in t.times
    ]
    text = "\n".join(
        [
            "# Planar flow speed: flowdist vs Pyro",
            "",
            f"K = {K}, d = {DIM}, batch {BATCH}, float32, 2 threads, energy U1. "
            f"Medians over {t.kept_blocks} quiet blocks of 5 interleaved calls "
            f"({t.dropped_blocks} blocks dropped because other processes used the CPU).",
            "",
            f"Machine: {machine_summary()}.",
            "",
            "| pass | median ms | Pyro time / this time |",
            "|---|---|---|",
            *rows,
            "",
            f"- Reverse-KL training pass: flowdist is **{t.ratio(pyro_name, ours):.2f}x** "
            "faster than Pyro (target: at least 1.8x).",
            "- log_prob of data, relative to the reverse-KL training pass: "
            f"{t.ratio('flowdist: log_prob of data + backward', ours):.2f}x with backward, "
            f"{t.ratio('flowdist: log_prob of data (no grad)', ours):.2f}x without "
            "(target: within 3x). Relative to the no-grad sampling pass: "
            f"{no_grad_ratio:.2f}x.",
            "",
            "Command: `python -m benchmarks.planar_speed.run`",
            "",
        ]
    )
    args.out.write_text(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
