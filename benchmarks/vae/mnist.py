"""Binarised-MNIST reproductions under a CPU-time budget: the 784-400-50 VAE with a diagonal
Gaussian guide or a guide with K amortised planar steps, test NLL by importance sampling.

    python -m benchmarks.vae.mnist /work/shared/data/binarized_mnist.npz --flow-steps 0 \
        --minutes 30 --k 5000 --test-limit 1000

References: Burda et al. (2016), 1-layer VAE, k=5000: 86.76 nats (trained for 3280 epochs);
Rezende & Mohamed (2015) Table 2: diagonal <= 89.9, NF K=10 <= 87.5, K=80 <= 85.1 nats.
"""

from __future__ import annotations

import time

import torch
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO

from benchmarks.vae.common import budget_parser, emit, seed_everything
from flowdist.datasets import load_binarized_mnist
from flowdist.vae import VAE
from flowdist.vae.evaluate import importance_log_likelihood
from flowdist.vae.train import fit


def main(argv: list[str] | None = None) -> None:
    parser = budget_parser(__doc__.splitlines()[0], "binarized_mnist.npz", minutes=30.0)
    parser.add_argument("--flow-steps", type=int, default=0)
    parser.add_argument("--k", type=int, default=5000, help="importance samples")
    parser.add_argument("--test-limit", type=int, default=1000, help="first N test images")
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args(argv)
    seed_everything(args.threads)
    data = load_binarized_mnist(args.data)
    vae = VAE(784, 50, flow_steps=args.flow_steps, name=f"mnist{args.flow_steps}")
    # initialise the output bias at the logits of the mean image (Burda et al.)
    with torch.no_grad():
        mean = data.train_x.mean(0).clamp(1e-3, 1 - 1e-3)
        vae.decoder[0][-1].bias.copy_(torch.logit(mean))
    loss = TraceMeanField_ELBO() if args.flow_steps == 0 else Trace_ELBO()
    start, epochs = time.process_time(), 0
    while time.process_time() - start < 60 * args.minutes:
        fit(vae, data.train_x, epochs=1, batch_size=128, lr=args.lr, loss=loss, seed=epochs)
        epochs += 1
        print(f"epoch {epochs} {time.process_time() - start:.0f} CPU s", flush=True)
    train_seconds = time.process_time() - start
    test = data.test_x[: args.test_limit]
    t0 = time.perf_counter()
    iw, elbo = importance_log_likelihood(vae.model, vae.guide, test, k=args.k, batch_size=50)
    row = {
        "flow_steps": args.flow_steps,
        "epochs": epochs,
        "train_cpu_minutes": round(train_seconds / 60, 2),
        "threads": args.threads,
        "test_images": len(test),
        "k": args.k,
        "test_nll_iwae": round(-float(iw.mean()), 2),
        "test_nll_elbo": round(-float(elbo.mean()), 2),
        "eval_seconds": round(time.perf_counter() - t0, 1),
    }
    emit(row, args.out)


if __name__ == "__main__":
    main()
