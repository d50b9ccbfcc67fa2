"""The ``flowdist`` command.

* ``flowdist demo`` fits every family on embedded data and writes a report (``report.html``
  with embedded figures, ``report.md``, ``figures/*.png``).
* ``flowdist check-transform module:factory`` runs the public property checks
  (:mod:`flowdist.testing`) on a user's own transform and prints a verdict.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import torch
from torch import nn
from torch.distributions import Transform

from flowdist.report import Report, Score

__all__ = ["DEMO_SECTIONS", "check_transform_command", "main", "run_demo"]

#: The demo's sections, in order: modules exposing
#: ``run(report, *, quick, seed, device, progress) -> list[Score]``.
DEMO_SECTIONS: tuple[str, ...] = (
    "flowdist.flows.demo_energies",
    "flowdist.flows.demo_images",
    "flowdist.ebm.demo",
    "flowdist.vae.demo",
)


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


def _load_transform(spec: str) -> Any:
    """``module:attr`` → the transform (``attr`` is a transform or a zero-argument factory)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"TRANSFORM must look like module:factory, got {spec!r}")
    sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"cannot import module {module_name!r}: {err}") from err
    finally:
        sys.path.pop(0)
    if not hasattr(module, attr):
        raise ValueError(f"module {module_name!r} has no attribute {attr!r}")
    obj = getattr(module, attr)
    t = obj
    if callable(obj) and not isinstance(obj, Transform):
        try:
            t = obj()
        except Exception as err:
            raise ValueError(f"calling {spec}() failed: {type(err).__name__}: {err}") from err
    if not isinstance(t, Transform):
        raise ValueError(
            f"{spec} must be (or return) a torch.distributions.Transform, got {type(t).__name__}"
        )
    return t


def check_transform_command(
    spec: str,
    *,
    event_shape: tuple[int, ...] | None = None,
    batch: int = 4,
    dtypes: Sequence[torch.dtype] = (torch.float32, torch.float64),
    seed: int = 0,
    randomize_scale: float = 0.0,
    out: TextIO | None = None,
) -> bool:
    """Run every property check on the transform named by ``spec``; print one line per check
    and a verdict. Returns whether all passed."""
    from flowdist import testing  # needs hypothesis (the test extra)

    out = out or sys.stdout
    transform = _load_transform(spec)
    shape = event_shape or tuple(getattr(transform, "event_shape", ()) or ())
    if not shape:
        raise ValueError(
            f"{spec} has no event_shape attribute: pass --event-shape (e.g. --event-shape 3)"
        )
    checks = {
        "dtype": testing.check_dtype,
        "inverse": testing.check_inverse,
        "log-det vs autograd Jacobian": testing.check_log_det,
        "inverse log-det": testing.check_inverse_log_det,
        "broadcasting": testing.check_broadcasting,
        "serialization": testing.check_serialization,
    }
    failures = 0
    for dtype in dtypes:
        g = torch.Generator().manual_seed(seed)
        t = copy.deepcopy(transform)
        if isinstance(t, nn.Module):
            if randomize_scale:
                testing.randomize(t, generator=g, scale=randomize_scale)
            t = t.to(dtype)
        x = torch.randn(batch, *shape, generator=g, dtype=torch.float64).to(dtype)
        for name, check in checks.items():
            try:
                check(t, x)
            except Exception as err:  # report every failure, whatever its type
                failures += 1
                print(f"FAIL  {name} [{dtype}]: {type(err).__name__}: {err}", file=out)
            else:
                print(f"ok    {name} [{dtype}]", file=out)
    total = len(checks) * len(dtypes)
    verdict = "all checks hold" if not failures else f"{failures} of {total} checks fail"
    print(f"verdict for {spec}: {verdict}", file=out)
    return failures == 0


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

    check = sub.add_parser(
        "check-transform",
        help="run the property checks on your own transform",
        description="Import TRANSFORM (module:attribute, where the attribute is a "
        "torch.distributions.Transform or a function returning one), then check inverse, "
        "log-determinant against the autograd Jacobian, inverse log-determinant, dtypes, "
        "broadcasting and serialization in float32 and float64. Exit status 1 if any fails.",
    )
    check.add_argument("transform", metavar="TRANSFORM", help="module:factory")
    check.add_argument(
        "--event-shape",
        type=lambda s: tuple(int(v) for v in s.split(",")),
        help="event shape, comma-separated (default: the transform's event_shape)",
    )
    check.add_argument("--batch", type=int, default=4, help="inputs per check (default 4)")
    check.add_argument("--seed", type=int, default=0)
    check.add_argument(
        "--randomize",
        type=float,
        default=0.0,
        metavar="SCALE",
        help="add N(0, SCALE^2) noise to the parameters first (default: use them as built)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``flowdist`` console script: user mistakes are reported in one line
    (exit status 2), never with a traceback."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            try:
                torch.device(args.device)
            except RuntimeError as err:
                raise ValueError(f"--device: {err}") from err
            path = run_demo(
                args.out,
                quick=args.quick,
                seed=args.seed,
                device=args.device,
                progress=not args.no_progress,
            )
            print(f"report written to {path}")
        elif args.command == "check-transform":
            passed = check_transform_command(
                args.transform,
                event_shape=args.event_shape,
                batch=args.batch,
                seed=args.seed,
                randomize_scale=args.randomize,
            )
            return 0 if passed else 1
    except (ValueError, FileNotFoundError) as err:
        print(f"flowdist: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
