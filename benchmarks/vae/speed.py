"""VAE training speed: one epoch of the 784-400-50 VAE on binarised MNIST, batch 128.

Competitors, interleaved in every round (each call is one full epoch over the 50,000 training
images), medians over rounds, 2 threads:

* ``torch``: a hand-written plain-PyTorch VAE of the same architecture (softplus hidden layer,
  Bernoulli logits, closed-form Gaussian KL, one ``torch.optim.Adam``);
* ``flowdist fit, TraceMeanField_ELBO`` / ``Trace_ELBO``: :func:`flowdist.vae.fit` on
  :class:`flowdist.vae.VAE` (the same architecture);
* ``flowdist + pyro SVI``: the same VAE trained with ``pyro.infer.SVI`` and ``pyro.optim.Adam``;
* ``pyro example``: Pyro's ``examples/vae/vae.py`` (Encoder/Decoder with softplus, hidden 400,
  sigmoid output, ``Bernoulli(validate_args=False)``, ``pyro.plate`` without subsampling,
  ``SVI`` + ``Trace_ELBO`` + ``pyro.optim.Adam``), reproduced here.

    python -m benchmarks.vae.speed /work/shared/data/binarized_mnist.npz --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.infer import SVI, Trace_ELBO, TraceMeanField_ELBO
from torch import nn

from benchmarks.timing import machine_summary
from flowdist.datasets import load_binarized_mnist
from flowdist.vae import VAE
from flowdist.vae.train import fit

HIDDEN, Z, BATCH = 400, 50, 128


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


def competitors(x: torch.Tensor) -> dict[str, Callable[[], None]]:
    n = x.shape[0]
    generator = torch.Generator().manual_seed(0)

    def batches() -> list[torch.Tensor]:
        return [x[i] for i in torch.randperm(n, generator=generator).split(BATCH)]

    torch_vae = TorchVAE()
    torch_opt = torch.optim.Adam(torch_vae.parameters(), lr=1e-3)

    def plain_torch() -> None:
        for xb in batches():
            torch_opt.zero_grad(set_to_none=True)
            (torch_vae(xb) / n).backward()
            torch_opt.step()

    fit_mf, fit_mc = VAE(784, Z, name="vae_mf"), VAE(784, Z, name="vae_mc")
    svi_vae = VAE(784, Z, name="vae_svi")
    svi = SVI(svi_vae.model, svi_vae.guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO())
    example = PyroExampleVAE()
    example_svi = SVI(example.model, example.guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO())

    def flowdist_svi() -> None:
        for xb in batches():
            svi.step(xb, num_data=n)

    def pyro_example() -> None:
        for xb in batches():
            example_svi.step(xb)

    return {
        "torch (hand-written, analytic KL)": plain_torch,
        "flowdist fit, TraceMeanField_ELBO": lambda: fit(
            fit_mf, x, epochs=1, batch_size=BATCH, loss=TraceMeanField_ELBO()
        ),
        "flowdist fit, Trace_ELBO": lambda: fit(fit_mc, x, epochs=1, batch_size=BATCH),
        "flowdist + pyro SVI, Trace_ELBO": flowdist_svi,
        "pyro example (SVI, Trace_ELBO)": pyro_example,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="binarized_mnist.npz")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="use the first N images")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    torch.manual_seed(0)
    pyro.set_rng_seed(0)
    x = load_binarized_mnist(args.data).train_x[: args.limit]
    fns = competitors(x)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(args.rounds):
        order = list(fns) if r % 2 == 0 else list(reversed(fns))  # alternate the order
        for name in order:
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
            print(f"round {r} {name}: {times[name][-1]:.2f} s", flush=True)
    ref = statistics.median(times["torch (hand-written, analytic KL)"])
    print(f"\n{machine_summary()}, {x.shape[0]} images, batch {BATCH}, {args.rounds} rounds")
    print("| competitor | epoch (s), median | all rounds (s) | ratio to torch |")
    print("|---|---|---|---|")
    for name, values in times.items():
        med = statistics.median(values)
        rounds = ", ".join(f"{v:.2f}" for v in values)
        print(f"| {name} | {med:.2f} | {rounds} | {med / ref:.2f} |")


if __name__ == "__main__":
    main()
