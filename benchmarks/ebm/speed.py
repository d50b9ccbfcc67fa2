"""Speed: one PCD-1 epoch of a 784-500 RBM on the 50,000 binarized MNIST training images
(batch 100) against scikit-learn's ``BernoulliRBM`` (also PCD-1), and the time of AIS with
14,500 intermediate distributions and 100 runs on that model.

Competitors are interleaved (torch float32, optionally torch with bfloat16 products,
scikit-learn on float32 data — its fastest — and on float64 data — what it gets from a default
NumPy array) and repeated; medians and ratios of medians come from the same process run.

    OMP_WAIT_POLICY=PASSIVE python -m benchmarks.ebm.speed ../shared/data/binarized_mnist.npz \
        --threads 2 --repeats 3

On a shared, oversubscribed machine set ``OMP_WAIT_POLICY=PASSIVE`` (before torch starts): with
the default policy torch's OpenMP threads spin-wait at every parallel region for a sibling that
the OS has descheduled, which made a two-thread epoch 10-30x slower here.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from sklearn.neural_network import BernoulliRBM as SklearnRBM
from threadpoolctl import threadpool_limits

from flowdist.datasets import load_binarized_mnist
from flowdist.ebm import BernoulliRBM, train_cd


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of ``fn()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def torch_epoch(x: torch.Tensor, compute_dtype: torch.dtype | None, seed: int) -> tuple:
    g = torch.Generator().manual_seed(seed)
    rbm = BernoulliRBM(784, 500, generator=g, compute_dtype=compute_dtype)
    return timed(
        lambda: train_cd(
            rbm,
            x,
            epochs=1,
            batch_size=100,
            k=1,
            persistent=True,
            lr=0.01,
            momentum=0.0,
            generator=g,
        )
    )


def sklearn_epoch(x, seed: int) -> tuple:
    rbm = SklearnRBM(
        n_components=500, batch_size=100, n_iter=1, learning_rate=0.01, random_state=seed
    )
    return timed(lambda: rbm.fit(x))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data", help="path to binarized_mnist.npz")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ais-repeats", type=int, default=1)
    parser.add_argument("--bf16", action="store_true", help="also time bfloat16 products")
    parser.add_argument("--out", default=None, help="append a JSON line here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = load_binarized_mnist(args.data).train_x
    competitors = {
        "torch float32": lambda rep: torch_epoch(x, None, rep),
        "sklearn float32": lambda rep: sklearn_epoch(x.numpy(), rep),
        "sklearn float64": lambda rep: sklearn_epoch(x.double().numpy(), rep),
    }
    if args.bf16:
        competitors["torch bf16 products"] = lambda rep: torch_epoch(x, torch.bfloat16, rep)
    times: dict[str, list[float]] = {name: [] for name in competitors}
    cpu: dict[str, list[float]] = {name: [] for name in competitors}
    with threadpool_limits(args.threads):
        for rep in range(args.repeats):
            for name, run in competitors.items():
                wall, used = run(rep)
                times[name].append(wall)
                cpu[name].append(used)
            print(json.dumps({k: (v[-1], cpu[k][-1]) for k, v in times.items()}), flush=True)
        rbm = BernoulliRBM(784, 500, generator=torch.Generator().manual_seed(0))
        train_cd(rbm, x[:10000], epochs=1, lr=0.05, generator=torch.Generator().manual_seed(0))
        ais_times = []
        for rep in range(args.ais_repeats):
            gen = torch.Generator().manual_seed(rep)
            ais_times.append(
                timed(
                    lambda gen=gen: rbm.estimate_log_partition(
                        num_chains=100, betas=14500, data=x, generator=gen
                    )
                )
            )
            est = rbm._estimate[1]
    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    row = {
        "threads": args.threads,
        "repeats": args.repeats,
        "median_seconds": med,
        "all_seconds": times,
        "ratios_to_torch_float32": {k: v / med["torch float32"] for k, v in med.items()},
        "median_cpu_seconds": med_cpu,
        "cpu_ratios_to_torch_float32": {
            k: v / med_cpu["torch float32"] for k, v in med_cpu.items()
        },
        "ais_wall_and_cpu_seconds": ais_times,
        "ais_log_z": est.log_z,
        "ais_std_error": est.std_error,
    }
    print(json.dumps(row), flush=True)
    if args.out:
        with open(args.out, "a") as fh:
            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
