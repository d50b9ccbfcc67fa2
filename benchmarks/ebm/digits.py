"""Digits reproductions: the EBM section of ``flowdist demo`` (RBM-16 exact, RBM-64 AIS, DBM
variational bound + AIS, against the independent-Bernoulli baseline), written as a report.

    python -m benchmarks.ebm.digits --out-dir /tmp/ebm_digits [--quick]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

import torch

from flowdist.ebm import demo
from flowdist.report import Report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out-dir", default="ebm_digits_report")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    report = Report(args.out_dir)
    scores = demo.run(
        report, quick=args.quick, seed=args.seed, device=torch.device("cpu"), progress=False
    )
    report.scores(scores)
    report.write("flowdist EBMs on binarized digits")
    for score in scores:
        print(json.dumps(asdict(score)))


if __name__ == "__main__":
    main()
