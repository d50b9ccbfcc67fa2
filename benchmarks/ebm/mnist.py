r"""Binarized MNIST reproductions: a 500-hidden RBM trained with CD-1, CD-k or PCD, and a DBM,
under a budget of process CPU time (one thread: what a busy shared machine cannot inflate), scored
by the AIS estimate of the test log-likelihood.

References (nats per test image): Salakhutdinov & Murray (2008) CD1(500) -125.53,
CD3(500) -105.50, CD25(500) -86.34; Salakhutdinov & Hinton (2009) DBM -84.62.

    python -m benchmarks.ebm.mnist ../shared/data/binarized_mnist.npz --model cd1 --minutes 30 \
        --bf16 --out benchmarks/ebm/mnist_results_30min.jsonl

Training stops after the first epoch that ends past the budget (pre-training included for the
DBM); the AIS evaluation is not counted. With ``--decay`` the learning rate falls linearly to
zero over the budget, :math:`\eta_t = \eta_0 (1 - t / T)` at the start of each epoch, with
:math:`t` the CPU seconds spent and :math:`T` the budget (Tieleman 2008 and Salakhutdinov &
Hinton 2009 anneal it to zero; a constant rate lets PCD and the DBM drift).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from flowdist.datasets import load_binarized_mnist
from flowdist.ebm import BernoulliRBM, DeepBoltzmannMachine, train_cd

PAPER = {"cd1": -125.53, "cd3": -105.50, "cd25": -86.34, "pcd": None, "dbm": -84.62}


class BudgetSpent(Exception):
    """Raised by the epoch callback once the CPU budget is used."""


def cpu_budget(seconds: float, start: float, epochs: list[float]):
    """An epoch callback for ``train_cd`` recording CPU seconds and stopping past the budget."""

    def callback(epoch: int) -> None:
        epochs.append(time.process_time() - start)
        if epochs[-1] >= seconds:
            raise BudgetSpent

    return callback


def decaying(lr: float, seconds: float, start: float):
    r"""The schedule :math:`\eta_0 (1 - t/T)`: ``lr`` falling linearly to zero over ``seconds``
    of process CPU time counted from ``start``."""
    return lambda epoch: lr * max(0.0, 1.0 - (time.process_time() - start) / seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data", help="path to binarized_mnist.npz")
    parser.add_argument("--model", choices=sorted(PAPER), required=True)
    parser.add_argument("--minutes", type=float, default=30.0, help="CPU-time training budget")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 matrix products")
    parser.add_argument("--hidden", type=int, default=500)
    parser.add_argument("--betas", type=int, default=14500)
    parser.add_argument("--chains", type=int, default=100)
    parser.add_argument(
        "--lr", type=float, default=None, help="default: CD 0.05, PCD 0.01, DBM 0.005"
    )
    parser.add_argument("--decay", action="store_true", help="lr falling linearly to zero")
    parser.add_argument("--pretrain-epochs", type=int, default=2, help="DBM, per layer")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="append a JSON line here")
    parser.add_argument("--save", default=None, help="write the trained state dict here")
    parser.add_argument("--load", default=None, help="score this state dict instead of training")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_binarized_mnist(args.data)
    g = torch.Generator().manual_seed(args.seed)
    budget = 60.0 * args.minutes
    start, wall_start = time.process_time(), time.perf_counter()
    epochs: list[float] = []
    momentum = lambda epoch: 0.5 if epoch < 5 else 0.9  # noqa: E731
    common = dict(epochs=10_000, momentum=momentum, weight_decay=2e-4, generator=g)
    compute_dtype = torch.bfloat16 if args.bf16 else None
    lr = args.lr or {"dbm": 0.005, "pcd": 0.01}.get(args.model, 0.05)
    schedule = decaying(lr, budget, start) if args.decay else lr
    if args.model == "dbm":
        model = DeepBoltzmannMachine(
            (784, args.hidden, 1000), generator=g, compute_dtype=compute_dtype
        )
    else:
        model = BernoulliRBM(784, args.hidden, generator=g, compute_dtype=compute_dtype)
    try:
        if args.load is not None:
            model.load_state_dict(torch.load(args.load))
        elif args.model == "dbm":
            model.pretrain(data.train_x, epochs=args.pretrain_epochs, lr=0.05, generator=g)
            train_cd(
                model,
                data.train_x,
                persistent=True,
                lr=schedule,
                callback=cpu_budget(budget, start, epochs),
                **common,
            )
        else:
            train_cd(
                model,
                data.train_x,
                k={"cd1": 1, "cd3": 3, "cd25": 25, "pcd": 1}[args.model],
                persistent=args.model == "pcd",
                lr=schedule,
                callback=cpu_budget(budget, start, epochs),
                **common,
            )
    except BudgetSpent:
        pass
    train_cpu, train_wall = time.process_time() - start, time.perf_counter() - wall_start
    if args.save:
        torch.save(model.state_dict(), args.save)
    t = time.perf_counter()
    est = model.estimate_log_partition(
        num_chains=args.chains, betas=args.betas, data=data.train_x, generator=g
    )
    ais_s = time.perf_counter() - t
    row = {
        "model": args.model,
        "hidden": args.hidden,
        "epochs": len(epochs),
        "cpu_seconds_at_epoch_end": [round(e, 1) for e in epochs],
        "train_cpu_seconds": round(train_cpu, 1),
        "train_wall_seconds": round(train_wall, 1),
        "bf16_products": args.bf16,
        "ais_seconds": round(ais_s, 1),
        "log_z": est.log_z,
        "log_z_lower": est.lower,
        "log_z_upper": est.upper,
        "lr": lr,
        "decay": args.decay,
        "pretrain_epochs": args.pretrain_epochs if args.model == "dbm" else None,
        "loaded": args.load,
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
