"""VAE training speed: one epoch of the 784-400-50 VAE on binarised MNIST, batch 128.

Competitors are interleaved call by call (``benchmarks.timing.interleave``; every call trains
``--chunk`` minibatch steps, cycling through one shuffled epoch of the 50,000 training images), and
the epoch time is the median call time times steps-per-epoch / chunk:

* ``torch``: a hand-written plain-PyTorch VAE of the same architecture (softplus hidden layer,
  Bernoulli logits, closed-form Gaussian KL, one ``torch.optim.Adam``);
* ``flowdist fit, TraceMeanField_ELBO`` / ``Trace_ELBO``: the step of :func:`flowdist.vae.fit`
  (:func:`flowdist.vae.train.training_step`) on :class:`flowdist.vae.VAE` (same architecture);
* ``flowdist + pyro SVI``: the same VAE trained with ``pyro.infer.SVI`` and ``pyro.optim.Adam``;
* ``pyro example``: Pyro's ``examples/vae/vae.py`` (Encoder/Decoder with softplus, hidden 400,
  sigmoid output, ``Bernoulli(validate_args=False)``, ``pyro.plate`` without subsampling,
  ``SVI`` + ``Trace_ELBO`` + ``pyro.optim.Adam``), reproduced here.

    python -m benchmarks.vae.speed /work/shared/data/binarized_mnist.npz --epochs 2
    python -m benchmarks.vae.speed /work/shared/data/binarized_mnist.npz --memory-only --threads 1

The run is stored in ``speed.json`` beside this file (``--out``), replacing the stored run with
the same number of threads. Then the peak memory of one timed call of every competitor is
measured, each in a fresh process (:mod:`benchmarks.memory`); ``--memory-only`` measures only
that and keeps the stored runs.
"""

from __future__ import annotations

import argparse
import functools
import json
from collections.abc import Callable, Iterable
from pathlib import Path

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.infer import SVI, Trace_ELBO, TraceMeanField_ELBO
from torch import nn

from benchmarks.memory import memory_record
from benchmarks.timing import command_line, interleave, machine_summary
from flowdist.datasets import load_binarized_mnist
from flowdist.vae import VAE
from flowdist.vae.train import training_step

HIDDEN, Z, BATCH = 400, 50, 128
HERE = Path(__file__).resolve().parent
EPOCH = "one training epoch (50,000 images, batch 128)"
TORCH = "torch (hand-written, analytic KL)"
NAMES = (
    TORCH,
    "flowdist fit, TraceMeanField_ELBO",
    "flowdist fit, Trace_ELBO",
    "flowdist + pyro SVI, Trace_ELBO",
    "pyro example (SVI, Trace_ELBO)",
)


class TorchVAE(nn.Module):
    """The plain-PyTorch reference: negative ELBO with the closed-form KL."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc_loc, self.fc_scale = (
            nn.Linear(784, HIDDEN),
            nn.Linear(HIDDEN, Z),
            nn.Linear(HIDDEN, Z),
        )
        self.fc3, self.fc4 = nn.Linear(Z, HIDDEN), nn.Linear(HIDDEN, 784)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.softplus(self.fc1(x))
        loc, scale = self.fc_loc(h), F.softplus(self.fc_scale(h))
        z = loc + scale * torch.randn_like(loc)
        logits = self.fc4(F.softplus(self.fc3(z)))
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
        kl = 0.5 * (loc**2 + scale**2 - 1 - 2 * scale.log()).sum()
        return rec + kl


class PyroExampleEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc21, self.fc22 = (
            nn.Linear(784, HIDDEN),
            nn.Linear(HIDDEN, Z),
            nn.Linear(HIDDEN, Z),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = F.softplus(self.fc1(x.reshape(-1, 784)))
        return self.fc21(hidden), torch.exp(self.fc22(hidden))


class PyroExampleDecoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc21 = nn.Linear(Z, HIDDEN), nn.Linear(HIDDEN, 784)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc21(F.softplus(self.fc1(z))))


class PyroExampleVAE(nn.Module):
    """Pyro's examples/vae/vae.py model and guide."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder, self.decoder = PyroExampleEncoder(), PyroExampleDecoder()

    def model(self, x: torch.Tensor) -> None:
        pyro.module("decoder", self.decoder)
        with pyro.plate("data", x.shape[0]):
            z_loc = x.new_zeros(torch.Size((x.shape[0], Z)))
            z_scale = x.new_ones(torch.Size((x.shape[0], Z)))
            z = pyro.sample("latent", dist.Normal(z_loc, z_scale).to_event(1))
            loc_img = self.decoder(z)
            pyro.sample(
                "obs",
                dist.Bernoulli(loc_img, validate_args=False).to_event(1),
                obs=x.reshape(-1, 784),
            )

    def guide(self, x: torch.Tensor) -> None:
        pyro.module("encoder", self.encoder)
        with pyro.plate("data", x.shape[0]):
            z_loc, z_scale = self.encoder(x)
            pyro.sample("latent", dist.Normal(z_loc, z_scale).to_event(1))


def competitors(
    x: torch.Tensor, chunk: int, names: Iterable[str] = NAMES
) -> dict[str, Callable[[], None]]:
    """The named competitors (default: all of :data:`NAMES`); each call trains ``chunk``
    minibatch steps, cycling through one shuffled epoch of ``x``."""
    n = x.shape[0]
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0)).split(BATCH)
    batches = [x[i] for i in order]

    def cycling(step: Callable[[torch.Tensor], object]) -> Callable[[], None]:
        position = [0]

        def call() -> None:
            for _ in range(chunk):
                step(batches[position[0] % len(batches)])
                position[0] += 1

        return call

    def torch_step() -> Callable[[torch.Tensor], object]:
        torch_vae = TorchVAE()
        torch_opt = torch.optim.Adam(torch_vae.parameters(), lr=1e-3)

        def step(xb: torch.Tensor) -> None:
            torch_opt.zero_grad(set_to_none=True)
            (torch_vae(xb) / n).backward()
            torch_opt.step()

        return step

    def flowdist_step(loss: object, name: str) -> Callable[[torch.Tensor], object]:
        vae = VAE(784, Z, name=name)
        optimizer = torch.optim.Adam(vae.parameters(), lr=1e-3)
        return lambda xb: training_step(vae, loss, optimizer, [xb], n)

    def svi_step() -> Callable[[torch.Tensor], object]:
        svi_vae = VAE(784, Z, name="vae_svi")
        svi = SVI(svi_vae.model, svi_vae.guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO())
        return lambda xb: svi.step(xb, num_data=n)

    def example_step() -> Callable[[torch.Tensor], object]:
        example = PyroExampleVAE()
        return SVI(example.model, example.guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO()).step

    makers = (
        torch_step,
        lambda: flowdist_step(TraceMeanField_ELBO(), "mf"),
        lambda: flowdist_step(Trace_ELBO(), "mc"),
        svi_step,
        example_step,
    )
    chosen = dict(zip(NAMES, makers, strict=True))
    return {name: cycling(chosen[name]()) for name in names}


def seed_and_load(data: Path) -> torch.Tensor:
    """Seed as for every run; the binarised training images."""
    torch.manual_seed(0)
    pyro.set_rng_seed(0)
    return load_binarized_mnist(data).train_x


def competitor_call(data: Path, chunk: int, name: str) -> Callable[[], None]:
    """One competitor's timed call, set up as for the timings (a :mod:`benchmarks.memory`
    factory)."""
    return competitors(seed_and_load(data), chunk, [name])[name]


def timed(args: argparse.Namespace) -> dict:
    """Interleave the competitors; the run as the results file stores it."""
    x = seed_and_load(args.data)
    steps_per_epoch = -(-x.shape[0] // BATCH)
    calls = max(1, args.epochs * steps_per_epoch // args.chunk)
    timings = interleave(
        competitors(x, args.chunk), blocks=calls, calls=1, warmup=1, max_other=float("inf")
    )
    epoch = {
        name: round(timings.median_ms(name) / 1e3 * steps_per_epoch / args.chunk, 2)
        for name in timings.times
    }
    return {
        "threads": args.threads,
        "command": command_line(),
        "machine": f"{machine_summary()}, {x.shape[0]} images, batch {BATCH}",
        "calls": f"{calls} interleaved calls of {args.chunk} steps per competitor",
        "rows": [{"measure": EPOCH, "median_s": epoch}],
    }


def markdown(run: dict, memory: dict) -> str:
    """One run's table: epoch seconds, ratio to the hand-written loop, peak MiB of a call."""
    (row,) = run["rows"]
    epoch = row["median_s"]
    peaks, first = (memory[key][EPOCH] for key in ("peak_mib", "first_call_mib"))
    header = "| competitor | epoch (s), median-based | ratio to torch | peak MiB | first-call MiB |"
    lines = [run["machine"], run["calls"], header, "|---|---|---|---|---|"]
    lines += [
        f"| {name} | {s:.1f} | {s / epoch[TORCH]:.2f} | {peaks[name]:.1f} | {first[name]:.1f} |"
        for name, s in epoch.items()
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="binarized_mnist.npz")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of work per competitor")
    parser.add_argument("--chunk", type=int, default=23, help="steps per timed call")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "speed.json", help="results file")
    parser.add_argument(
        "--memory-only", action="store_true", help="measure the memory peaks, keep the times"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = json.loads(args.out.read_text()) if args.out.exists() else {"runs": []}
    if not args.memory_only:
        runs = [run for run in results["runs"] if run["threads"] != args.threads]
        results["runs"] = sorted([*runs, timed(args)], key=lambda run: run["threads"])
    results["memory"] = memory_record(
        (
            (EPOCH, name, functools.partial(competitor_call, args.data, args.chunk, name))
            for name in NAMES
        ),
        call=f"one timed call ({args.chunk} training steps)",
    )
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    for run in results["runs"]:
        print(markdown(run, results["memory"]))


if __name__ == "__main__":
    main()
