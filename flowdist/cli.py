"""The ``flowdist`` command.

* ``flowdist demo`` fits every family on embedded data and writes a report (``report.html``
  with embedded figures, ``report.md``, ``figures/*.png``).
* ``flowdist train MODEL --data digits|PATH`` trains a named model of :mod:`flowdist.zoo` and
  saves a checkpoint with its configuration; ``flowdist evaluate CHECKPOINT`` prints its test
  log-likelihood and how it was obtained; ``flowdist sample CHECKPOINT`` draws samples (a PNG
  grid or an ``.npz``); ``flowdist models [MODEL]`` lists the models and their settings.
* ``flowdist check-transform module:factory`` runs the public property checks
  (:mod:`flowdist.testing`) on a user's own transform and prints a verdict.

User mistakes (a missing file, an unknown model or setting, data of the wrong shape) end with a
one-line message and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import importlib
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
from torch import nn
from torch.distributions import Transform

from flowdist import zoo
from flowdist.report import Report, Score
from flowdist.validation import check_count, check_number

__all__ = [
    "DEMO_SECTIONS",
    "check_transform_command",
    "evaluate_command",
    "main",
    "models_command",
    "run_demo",
    "sample_command",
    "train_command",
]

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
    check_count("--batch", batch, least=1)
    for n in event_shape or ():
        check_count("--event-shape", n, least=1)
    check_number("--randomize", randomize_scale, least=0.0)
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


def _device(text: str) -> torch.device:
    """``--device`` as a torch device that this machine has."""
    try:
        device = torch.device(text)
    except RuntimeError as err:
        raise ValueError(f"--device: {err}") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {text}: CUDA is not available on this machine")
    try:
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as err:  # torch asserts for some backends (xpu)
        raise ValueError(
            f"--device {text}: not available on this machine or in this torch build"
        ) from err
    return device


def _settings(pairs: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` pairs of ``--set`` as a dict (values are parsed by the model)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set takes KEY=VALUE (e.g. --set hidden=64), got {pair!r}")
        out[key.strip()] = value
    return out


def train_command(
    model: str,
    data: str,
    out: Path,
    *,
    settings: dict[str, Any],
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
    stdout: TextIO | None = None,
) -> Path:
    """Train ``model`` on ``data`` (``"digits"`` or an ``.npz`` path) and save the checkpoint
    ``out``; prints what it does. Returns the checkpoint's path."""
    stdout = stdout or sys.stdout
    zoo.get(model).settings(settings)  # an unknown model or setting fails before the data load
    if Path(out).is_dir():
        raise ValueError(f"--out {out} is a directory; name the checkpoint file")
    if data != "digits" and Path(out).resolve() == Path(data).resolve():
        raise ValueError(f"--out {out} is the data file: the checkpoint would overwrite it")
    where = _device(device)
    dataset = zoo.load_data(data)
    print(f"data: {dataset.describe()}", file=stdout)
    fitted = zoo.train(
        model, dataset, settings=settings, seed=seed, device=where, progress=progress
    )
    chosen = " ".join(f"{k}={_show(v)}" for k, v in fitted.settings.items())
    print(f"model: {model}, {fitted.model.summary}", file=stdout)
    print(f"settings: {chosen}", file=stdout)
    print(f"preprocessing: {fitted.metadata['preprocessing']}", file=stdout)
    path = zoo.save(fitted, out)
    print(
        f"trained in {fitted.metadata['seconds']:.1f} s (seed {seed}); checkpoint: {path}",
        file=stdout,
    )
    print(f"next: flowdist evaluate {path}   or   flowdist sample {path}", file=stdout)
    return path


def _show(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def evaluate_command(
    checkpoint: Path,
    data: str | None = None,
    *,
    seed: int = 0,
    device: str = "cpu",
    as_json: bool = False,
    stdout: TextIO | None = None,
) -> zoo.Evaluation:
    """Print the test log-likelihood of the model in ``checkpoint`` on ``data`` (default: the
    data it was trained on) and how it was obtained; JSON with ``as_json``."""
    stdout = stdout or sys.stdout
    fitted = zoo.load(checkpoint, device=_device(device))
    dataset = zoo.load_data(data or fitted.spec.source)
    result = zoo.evaluate(fitted, dataset, seed=seed)
    if as_json:
        print(json.dumps(dataclasses.asdict(result)), file=stdout)
        return result
    print(f"model: {fitted.model.name} from {checkpoint}: {fitted.model.summary}", file=stdout)
    print(f"data: test split of {dataset.describe()}", file=stdout)
    print(
        f"test log-likelihood: {result.log_likelihood:.3f} nats per example "
        f"(± {result.std_error:.3f} standard error over {result.examples} examples)",
        file=stdout,
    )
    if result.bits_per_dim is not None:
        levels = result.details["levels"]
        print(
            f"bits/dim: {result.bits_per_dim:.4f} on the {levels:g}-level pixel scale "
            f"(a uniform model scores log2 {levels:g} = {math.log2(levels):.4f})",
            file=stdout,
        )
    print(f"method: {result.method}\nhow: {result.how}", file=stdout)
    return result


def sample_command(
    checkpoint: Path,
    n: int,
    out: Path | None = None,
    *,
    seed: int = 0,
    device: str = "cpu",
    stdout: TextIO | None = None,
) -> Path:
    """Draw ``n`` samples of the model in ``checkpoint`` and write them to ``out``: a ``.png``
    grid for image-shaped data, an ``.npz`` (array ``x``) for any. Returns the path."""
    stdout = stdout or sys.stdout
    fitted = zoo.load(checkpoint, device=_device(device))
    image = fitted.spec.image
    grid = image is not None and image[0] == 1
    out = Path(out or ("samples.png" if grid else "samples.npz"))
    if out.suffix not in (".png", ".npz"):
        raise ValueError(f"--out: write a .png or an .npz file, got {str(out)!r}")
    if out.suffix == ".png" and not grid:
        raise ValueError(
            f"--out {out}: a PNG grid needs one-channel images, and the examples have shape "
            f"{fitted.spec.shape}; write an .npz instead"
        )
    x = zoo.sample(fitted, n, seed=seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npz":
        np.savez(out, x=x.numpy())
    else:
        from flowdist.plots import image_grid

        assert image is not None
        columns = fitted.spec.classes if fitted.model.labels else math.ceil(math.sqrt(n))
        pixels = {"vmin": 0.0, "vmax": 1.0} if fitted.spec.levels else {}
        title = f"{fitted.model.name}: {n} samples (seed {seed})"
        figure = image_grid(x, columns, image[1:], title=title, cmap="gray_r", scale=0.5, **pixels)
        figure.savefig(out, dpi=110, bbox_inches="tight")
    print(f"{n} samples of {fitted.model.name} written to {out}", file=stdout)
    return out


def _models_list() -> str:
    """The models, one line each, grouped by family."""
    families: dict[str, list[str]] = {}
    for model in zoo.MODELS.values():
        families.setdefault(model.family, []).append(f"  {model.name:8s}{model.summary}")
    return "\n".join(f"{family}\n" + "\n".join(rows) for family, rows in families.items())


def models_command(name: str | None = None, stdout: TextIO | None = None) -> None:
    """List the models, or one model's settings with their defaults and meanings."""
    stdout = stdout or sys.stdout
    if name is None:
        print(_models_list(), file=stdout)
        print("\n`flowdist models MODEL` lists a model's settings.", file=stdout)
        return
    model = zoo.get(name)
    print(f"{model.name}: {model.summary}\n{model.family}", file=stdout)
    print("settings (change with: flowdist train MODEL --set KEY=VALUE):", file=stdout)
    width = max(len(f"{k} = {_show(v)}") for k, v in model.defaults.items())
    for key, value in model.defaults.items():
        setting = f"{key} = {_show(value)}"
        print(f"  {setting:{width}s}  {zoo.SETTINGS_HELP[key]}", file=stdout)


_DATA_HELP = """data (--data):
  digits  scikit-learn's 1797 8x8 handwritten digits, pixel levels 0-16, with labels;
          split 80/20 (random_state 0)
  PATH    an .npz archive holding train_x and test_x, arrays of shape (N, ...), or x
          alone (split 80/20); optionally integer labels train_y and test_y (or y) and
          levels, the number of pixel levels (default: the largest value + 1 when every
          value is a non-negative integer; otherwise the data are real-valued).
          mnist.npz and binarized_mnist.npz (see flowdist.datasets) load as they are.
  Flows model the pixel levels dequantised to [0, 1); rbm, dbm, bm, vae, cvae and m2
  binarise them at the middle level (digits: > 8); grbm takes dequantised pixels or
  real values."""


def _add_model_commands(sub: Any) -> None:
    """The ``train``, ``evaluate``, ``sample`` and ``models`` subcommands."""
    raw = argparse.RawDescriptionHelpFormatter
    train = sub.add_parser(
        "train",
        help="train a named model and save a checkpoint",
        formatter_class=raw,
        description="Train MODEL on a data set and save a checkpoint holding the model's "
        "name, its settings and a description of its data, so that `flowdist evaluate` and "
        "`flowdist sample` rebuild it from the file alone. Deterministic for a fixed seed "
        "(on the CPU).",
        epilog=f"models (`flowdist models MODEL` lists one's settings):\n{_models_list()}"
        f"\n\n{_DATA_HELP}\n\nexamples:\n"
        "  flowdist train realnvp --epochs 10 --out realnvp.pt\n"
        "  flowdist train rbm --set hidden=64 --set lr=0.02\n"
        "  flowdist train cvae --data my_data.npz --device cuda",
    )
    train.add_argument("model", metavar="MODEL", help="a model name (listed below)")
    train.add_argument(
        "--data", default="digits", metavar="digits|PATH", help="the data set (default: digits)"
    )
    train.add_argument(
        "--epochs", type=int, metavar="N", help="passes over the training data (a setting)"
    )
    train.add_argument(
        "--set",
        action="extend",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="change a setting, e.g. --set hidden=64 lr=0.01 (tuples: hidden=128,128)",
    )
    train.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    train.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    train.add_argument(
        "--out", type=Path, metavar="CHECKPOINT", help="checkpoint file (default: MODEL.pt)"
    )
    train.add_argument("--no-progress", action="store_true", help="hide progress bars")

    evaluate = sub.add_parser(
        "evaluate",
        help="print a checkpoint's test log-likelihood and how it was obtained",
        formatter_class=raw,
        description="Print the mean log-likelihood of the test split in nats per example "
        "(and bits per dimension for flows), its standard error over the examples, and how "
        "it was obtained: exact (flows; energy-based models whose log Z can be enumerated), "
        "an AIS estimate of log Z with its error (larger energy-based models; the DBM's "
        "variational lower bound), or an importance-weighted estimate with k samples (VAEs).",
        epilog=f"{_DATA_HELP}\n\nexample:\n  flowdist evaluate realnvp.pt --data digits",
    )
    evaluate.add_argument("checkpoint", metavar="CHECKPOINT", type=Path)
    evaluate.add_argument(
        "--data",
        metavar="digits|PATH",
        help="the data set, shaped like the training data (default: the one it was trained on)",
    )
    evaluate.add_argument(
        "--seed", type=int, default=0, help="seed of the dequantisation, AIS or sampling"
    )
    evaluate.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object instead")

    sample = sub.add_parser(
        "sample",
        help="draw samples from a checkpoint (PNG grid or .npz)",
        description="Draw N samples from the model in CHECKPOINT: a PNG grid for "
        "one-channel images (conditional models: one column per label), or an .npz whose "
        "array x has shape (N, ...) like the training examples (values in [0, 1] for "
        "dequantised pixels, 0/1 for binarised ones; sample i of a conditional model has "
        "label i mod the number of classes).",
    )
    sample.add_argument("checkpoint", metavar="CHECKPOINT", type=Path)
    sample.add_argument("-n", type=int, default=64, help="number of samples (default 64)")
    sample.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="a .png or .npz file (default: samples.png for images, else samples.npz)",
    )
    sample.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sample.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")

    models = sub.add_parser(
        "models",
        help="list the models, or one model's settings",
        description="List the models that `flowdist train` knows, or with MODEL its "
        "settings and their defaults (change them with --set KEY=VALUE).",
    )
    models.add_argument("model", metavar="MODEL", nargs="?")


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

    _add_model_commands(sub)

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
            _device(args.device)
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
        elif args.command == "train":
            epochs = {} if args.epochs is None else {"epochs": args.epochs}
            train_command(
                args.model,
                args.data,
                args.out or Path(f"{args.model}.pt"),
                settings={**_settings(args.set), **epochs},
                seed=args.seed,
                device=args.device,
                progress=not args.no_progress,
            )
        elif args.command == "evaluate":
            evaluate_command(
                args.checkpoint, args.data, seed=args.seed, device=args.device, as_json=args.json
            )
        elif args.command == "sample":
            sample_command(args.checkpoint, args.n, args.out, seed=args.seed, device=args.device)
        elif args.command == "models":
            models_command(args.model)
    except (ValueError, OSError, FloatingPointError, ImportError) as err:  # OSError: paths
        message = " ".join(str(err).split())  # one line, whatever the library wrote
        print(f"flowdist: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
