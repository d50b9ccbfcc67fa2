"""Binarized MNIST reproductions: a 500-hidden RBM trained with CD-1, CD-k or PCD, and a DBM,
under a wall-clock budget, scored by the AIS estimate of the test log-likelihood.

References (nats per test image): Salakhutdinov & Murray (2008) CD1(500) -125.53,
CD3(500) -105.50, CD25(500) -86.34; Salakhutdinov & Hinton (2009) DBM -84.62.

    python -m benchmarks.ebm.mnist ../shared/data/binarized_mnist.npz --model cd1 --minutes 6 \
        --out benchmarks/ebm/mnist_results.jsonl
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from flowdist.datasets import load_binarized_mnist
from flowdist.ebm import BernoulliRBM, DeepBoltzmannMachine, train_cd

PAPER = {"cd1": -125.53, "cd3": -105.50, "cd25": -86.34, "pcd": None, "dbm": -84.62}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data", help="path to binarized_mnist.npz")
    parser.add_argument("--model", choices=sorted(PAPER), required=True)
    parser.add_argument("--minutes", type=float, default=6.0, help="training budget")
    parser.add_argument("--hidden", type=int, default=500)
    parser.add_argument("--betas", type=int, default=14500)
    parser.add_argument("--chains", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="append a JSON line here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_binarized_mnist(args.data)
    g = torch.Generator().manual_seed(args.seed)
    budget = 60.0 * args.minutes
    start = time.perf_counter()
    momentum = lambda epoch: 0.5 if epoch < 5 else 0.9  # noqa: E731
    if args.model == "dbm":
        model = DeepBoltzmannMachine((784, args.hidden, 1000), generator=g)
        model.pretrain(data.train_x, epochs=2, lr=0.05, generator=g)
        left = budget - (time.perf_counter() - start)
        hist = train_cd(
            model,
            data.train_x,
            epochs=10_000,
            persistent=True,
            lr=0.005,
            momentum=momentum,
            weight_decay=2e-4,
            generator=g,
            max_seconds=left,
        )
    else:
        model = BernoulliRBM(784, args.hidden, generator=g)
        k = {"cd1": 1, "cd3": 3, "cd25": 25, "pcd": 1}[args.model]
        hist = train_cd(
            model,
            data.train_x,
            epochs=10_000,
            k=k,
            persistent=args.model == "pcd",
            lr=0.01 if args.model == "pcd" else 0.05,
            momentum=momentum,
            weight_decay=2e-4,
            generator=g,
            max_seconds=budget,
        )
    train_s = time.perf_counter() - start
    t = time.perf_counter()
    est = model.estimate_log_partition(
        num_chains=args.chains, betas=args.betas, data=data.train_x, generator=g
    )
    ais_s = time.perf_counter() - t
    row = {
        "model": args.model,
        "hidden": args.hidden,
        "epochs": len(hist.seconds),
        "train_seconds": round(train_s, 1),
        "ais_seconds": round(ais_s, 1),
        "log_z": est.log_z,
        "log_z_lower": est.lower,
        "log_z_upper": est.upper,
        "paper": PAPER[args.model],
        "threads": args.threads,
    }
    with torch.no_grad():
        _score(model, data, est, row)
    print(json.dumps(row))
    if args.out:
        with open(args.out, "a") as fh:
            fh.write(json.dumps(row) + "\n")


def _score(model, data, est, row: dict) -> None:
    if isinstance(model, DeepBoltzmannMachine):
        row["test_ll_bound"] = float(model.variational_lower_bound(data.test_x).mean())
    else:
        test = float(model.log_prob(data.test_x).mean())
        train = float(model.log_prob(data.train_x[:10000]).mean())
        row.update(
            test_ll=test,
            train_ll=train,
            test_ll_lower=test - (est.upper - est.log_z),
            test_ll_upper=test + (est.log_z - est.lower),
        )


if __name__ == "__main__":
    main()
