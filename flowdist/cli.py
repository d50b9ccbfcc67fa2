"""The ``flowdist`` command: ``flowdist demo`` fits every family on embedded data and writes a
report (``report.html`` with embedded figures, ``report.md``, ``figures/*.png``)."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from flowdist.report import Report, Score

__all__ = ["DEMO_SECTIONS", "main", "run_demo"]

#: The demo's sections, in order: modules exposing
#: ``run(report, *, quick, seed, device, progress) -> list[Score]``.
DEMO_SECTIONS: tuple[str, ...] = ("flowdist.flows.demo_energies",)


def run_demo(
    out: Path,
    *,
    quick: bool = False,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
    sections: Sequence[str] = DEMO_SECTIONS,
) -> Path:
    """Run the demo sections and write the report; returns the path of ``report.html``."""
    torch.manual_seed(seed)
    report = Report(Path(out))
    report.text(
        f"Seed {seed}, device {device}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads{', quick mode' if quick else ''}."
    )
    scores: list[Score] = []
    start = time.perf_counter()
    for name in sections:
        module = importlib.import_module(name)
        scores += module.run(
            report, quick=quick, seed=seed, device=torch.device(device), progress=progress
        )
    if scores:
        report.scores(scores)
    report.text(f"Total time: {time.perf_counter() - start:.1f} s.")
    return report.write()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowdist",
        description="Generative models as torch.distributions: normalizing flows, "
        "energy-based models and variational autoencoders.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="fit every model family on embedded data and write a report",
        description="Fit planar flows on the 2-D energies of Rezende & Mohamed (2015) and "
        "every model family on the 8x8 digits that ship with scikit-learn, then write "
        "report.html / report.md with figures and a table scoring every model.",
    )
    demo.add_argument("--out", type=Path, default=Path("report"), help="report directory")
    demo.add_argument("--quick", action="store_true", help="smaller budgets (about a minute)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    demo.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``flowdist`` console script."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        try:
            torch.device(args.device)
        except RuntimeError as err:
            print(f"flowdist: error: --device: {err}", file=sys.stderr)
            return 2
        path = run_demo(
            args.out,
            quick=args.quick,
            seed=args.seed,
            device=args.device,
            progress=not args.no_progress,
        )
        print(f"report written to {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
