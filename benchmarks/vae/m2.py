"""Semi-supervised M2 (Kingma et al. 2014) on MNIST with a few labels, under a wall-clock
budget: test accuracy of the classifier q(y|x).

Pixels are binarised at 0.5 (flowdist's Bernoulli likelihood rejects grey values; Pyro's
example feeds them to a Bernoulli with validation off). Architecture as in Pyro's SS-VAE
example: z = 50, one hidden layer of 500 (softplus) in every network, aux_weight 46; Adam with
lr 1e-3 for the short budget. Every batch of 128 holds labelled rows in
proportion: the labelled rows are repeated until they make up about 1/5 of the training rows
(labelled points are oversampled, as in Pyro's example, which interleaves labelled batches).

    python -m benchmarks.vae.m2 /work/shared/data/mnist.npz --labels 100 --minutes 30

References (test accuracy): Pyro's example .9319 / .9437 / .9487 / .9582 and Kingma et al.
88.0 % / 95.1 % / 96.4 % / 96.1 % for 100 / 600 / 1000 / 3000 labels.
"""

from __future__ import annotations

import time

import torch
from pyro.infer import TraceEnum_ELBO

from benchmarks.vae.common import budget_parser, emit, seed_everything
from flowdist.datasets import load_mnist
from flowdist.vae import SemiSupervisedVAE
from flowdist.vae.train import fit


def main(argv: list[str] | None = None) -> None:
    parser = budget_parser(__doc__.splitlines()[0], "mnist.npz", minutes=30.0)
    parser.add_argument("--labels", type=int, default=100)
    args = parser.parse_args(argv)
    seed_everything(args.threads)
    data = load_mnist(args.data)
    x = (data.train_x > 0.5).float()
    test_x = (data.test_x > 0.5).float()
    # a class-balanced labelled subset, the rest unlabelled (y = -1)
    g = torch.Generator().manual_seed(0)
    per_class = args.labels // 10
    labelled = torch.cat(
        [torch.nonzero(data.train_y == c).flatten()[:per_class] for c in range(10)]
    )
    y = torch.full_like(data.train_y, -1)
    y[labelled] = data.train_y[labelled]
    copies = max(1, len(x) // 4 // len(labelled))
    x_all = torch.cat([x, x[labelled].repeat(copies, 1)])
    y_all = torch.cat([y, data.train_y[labelled].repeat(copies)])
    order = torch.randperm(len(x_all), generator=g)
    x_all, y_all = x_all[order], y_all[order]
    m2 = SemiSupervisedVAE(784, 10, 50, hidden=(500,))
    loss = TraceEnum_ELBO(max_plate_nesting=1)
    start, epochs, history = time.process_time(), 0, []
    while time.process_time() - start < 60 * args.minutes:
        # one pass over a random fifth of the rows at a time, so the budget is met closely
        part = torch.randperm(len(x_all), generator=g)[: len(x_all) // 5]
        fit(m2, (x_all[part], y_all[part]), epochs=1, batch_size=128, loss=loss, seed=epochs)
        epochs += 1
        acc = float((m2.classify(test_x) == data.test_y).float().mean())
        history.append(round(acc, 4))
        print(f"fifth-epoch {epochs} {time.process_time() - start:.0f} CPU s test acc {acc:.4f}")
    row = {
        "labels": args.labels,
        "fifth_epochs": epochs,
        "train_cpu_minutes": round((time.process_time() - start) / 60, 2),
        "threads": args.threads,
        "test_accuracy": history[-1],
        "history": history,
    }
    emit(row, args.out)


if __name__ == "__main__":
    main()
