"""Digits reproduction: NICE, RealNVP, Glow and MAF trained on the dequantised 8×8 digits
(the demo section :mod:`flowdist.flows.demo_images` at its full budget), writing the report
(test log-likelihood table and one samples figure per model) to ``--out``.

    python benchmarks/flows/digits.py --out benchmarks/flows/digits
"""

from __future__ import annotations

import argparse

import torch

from flowdist.flows.demo_images import run
from flowdist.report import Report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report = Report(args.out)
    scores = run(report, quick=args.quick, seed=args.seed, device="cpu", progress=False)
    report.scores(scores)
    report.write("flowdist: image flows on the digits")
    for s in scores:
        print(s)


if __name__ == "__main__":
    main()
