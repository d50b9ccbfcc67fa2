"""Digits reproductions: one family's section of ``flowdist demo`` at its full budget (or
``--quick``), written as a report (tables, score rows and figures) to ``--out``.

    python -m benchmarks.digits flows --out benchmarks/flows/digits
    python -m benchmarks.digits ebm --out /tmp/ebm_digits
    python -m benchmarks.digits vae --out benchmarks/vae/digits
"""

from __future__ import annotations

import argparse
import importlib
import json
from dataclasses import asdict

import torch

from flowdist.report import Report

#: section -> (the demo module whose ``run`` it calls, the report's title)
SECTIONS = {
    "flows": ("flowdist.flows.demo_images", "flowdist: image flows on the digits"),
    "ebm": ("flowdist.ebm.demo", "flowdist EBMs on binarized digits"),
    "vae": ("flowdist.vae.demo", "flowdist: variational autoencoders on the digits"),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("section", choices=sorted(SECTIONS))
    parser.add_argument("--out", required=True, help="report directory")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    module, title = SECTIONS[args.section]
    report = Report(args.out)
    run = importlib.import_module(module).run
    scores = run(
        report, quick=args.quick, seed=args.seed, device=torch.device("cpu"), progress=False
    )
    report.scores(scores)
    report.write(title)
    for score in scores:
        print(json.dumps(asdict(score)))


if __name__ == "__main__":
    main()
