"""Speed: one PCD-1 epoch of a 784-500 RBM on the 50,000 binarized MNIST training images
(batch 100) against scikit-learn's ``BernoulliRBM`` (also PCD-1), and the time of AIS with
14,500 intermediate distributions and 100 runs on that model.

Competitors are interleaved (flowdist in float32 and with bfloat16 products, scikit-learn on
float32 data — its fastest — and on float64 data — what it gets from a default NumPy array)
one epoch each per block, with the floor of a bfloat16 epoch (its matrix products alone,
:func:`products_call`) timed in the same blocks; blocks during which other processes used
the CPU are dropped (:func:`benchmarks.timing.interleave`); medians and ratios of medians come
from the same run. Every epoch starts after 0.3 s of sleep, with the previous competitor's
thread pools idle: after a scikit-learn epoch OpenBLAS's threads spin for about 0.1 s, and an
epoch started at once shared the two cores with them (0.05–0.09 s slower).

    python -m benchmarks.ebm.speed ../shared/data/binarized_mnist.npz --threads 2 --blocks 5

Run it on a quiet machine with OpenMP's default wait policy. On an oversubscribed machine the
default policy makes torch's threads spin-wait for a sibling the OS has descheduled (a
two-thread epoch became 10-30x slower here), and ``OMP_WAIT_POLICY=PASSIVE`` (set before torch
starts) avoids that at the price of a wake-up per parallel region: with it a two-thread epoch
was slower than a one-thread one even on a quiet machine.
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
from sklearn.neural_network import BernoulliRBM as SklearnRBM
from threadpoolctl import threadpool_limits

from benchmarks.memory import memory_record
from benchmarks.timing import command_line, interleave, machine_summary
from flowdist.datasets import load_binarized_mnist
from flowdist.ebm import BernoulliRBM, train_cd

EPOCH = "PCD-1 epoch"
FLOOR = "matrix products only"
COMPETITORS = (
    "flowdist float32",
    "flowdist bfloat16 products",
    "sklearn float32",
    "sklearn float64",
)


def epoch_call(path: str, name: str, seed: int = 0) -> Callable[[], object]:
    """One PCD-1 epoch of competitor ``name`` on the training images at ``path`` (data loading
    and conversion happen here, outside the timed call)."""
    x = load_binarized_mnist(path).train_x
    if name.startswith("sklearn"):
        data = (x if name.endswith("float32") else x.double()).numpy()
        return lambda: SklearnRBM(
            n_components=500, batch_size=100, n_iter=1, learning_rate=0.01, random_state=seed
        ).fit(data)
    compute_dtype = torch.bfloat16 if "bfloat16" in name else None

    def epoch() -> None:
        g = torch.Generator().manual_seed(seed)
        rbm = BernoulliRBM(784, 500, generator=g, compute_dtype=compute_dtype)
        train_cd(
            rbm, x, epochs=1, batch_size=100, persistent=True, lr=0.01, momentum=0.0, generator=g
        )

    return epoch


def products_call(path: str, seed: int = 0) -> Callable[[], object]:
    r"""The floor of a bfloat16 PCD-1 epoch: only its three matrix products per mini-batch
    (:math:`h W^\top` for the chains' visible units and :math:`[x; v] W` for both hidden means in
    bfloat16, :math:`[x; -v]^\top Q` for the weight gradient in int8, :math:`Q` the rounded
    probabilities), 500 times, with no sampling, sigmoids, rounding or updates."""
    x = load_binarized_mnist(path).train_x
    g = torch.Generator().manual_seed(seed)
    bf16 = torch.bfloat16
    w = (0.01 * torch.randn(785, 501, generator=g)).to(bf16)
    rows = torch.cat([x[:200], torch.ones(200, 1)], 1)
    h = torch.cat([torch.rand(100, 500, generator=g) < 0.5, torch.ones(100, 1)], 1).to(bf16)
    signed = rows.to(torch.int8)
    cols = torch.randint(0, 128, (200, 501), dtype=torch.int8, generator=g)
    rows = rows.to(bf16)

    def products() -> None:
        for _ in range(len(x) // 100):
            h @ w[:-1].T
            rows @ w[:, :-1]
            torch._int_mm(signed.T, cols)

    return products


def replace_memory(out: Path, threads: int, memory: dict) -> None:
    """Put ``memory`` into the latest row of ``out`` timed with ``threads`` threads."""
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    latest = max(i for i, row in enumerate(rows) if row.get("threads") == threads)
    rows[latest]["memory"] = memory
    out.write_text("".join(json.dumps(row) + "\n" for row in rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data", help="path to binarized_mnist.npz")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--blocks", type=int, default=5, help="quiet blocks to keep")
    parser.add_argument("--max-other", type=float, default=0.25)
    parser.add_argument("--ais-repeats", type=int, default=1)
    parser.add_argument("--out", default=None, help="append a JSON line here")
    parser.add_argument(
        "--memory-only",
        action="store_true",
        help="measure the memory peaks only, into the latest row of --out with these threads",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    memory = functools.partial(
        memory_record,
        ((EPOCH, name, functools.partial(epoch_call, args.data, name)) for name in COMPETITORS),
        call="one PCD-1 epoch",
        threads=args.threads,
    )
    if args.memory_only:
        replace_memory(Path(args.out), args.threads, memory())
        return
    calls = {name: epoch_call(args.data, name) for name in COMPETITORS}
    calls[FLOOR] = products_call(args.data)
    with threadpool_limits(args.threads):
        t = interleave(
            calls, blocks=args.blocks, calls=1, warmup=1, max_other=args.max_other, settle=0.3
        )
        x = load_binarized_mnist(args.data).train_x
        rbm = BernoulliRBM(784, 500, generator=torch.Generator().manual_seed(0))
        train_cd(rbm, x[:10000], epochs=1, lr=0.05, generator=torch.Generator().manual_seed(0))
        ais_times = []
        for rep in range(args.ais_repeats):
            gen = torch.Generator().manual_seed(rep)
            start = time.perf_counter()
            est = rbm.estimate_log_partition(num_chains=100, betas=14500, data=x, generator=gen)
            ais_times.append(time.perf_counter() - start)
    row = {
        "command": command_line(),
        "machine": machine_summary(),
        "threads": args.threads,
        "kept_blocks": t.kept_blocks,
        "dropped_blocks": t.dropped_blocks,
        "median_seconds": {name: t.median_ms(name) / 1e3 for name in COMPETITORS},
        "floor_seconds": t.median_ms(FLOOR) / 1e3,
        "all_seconds": t.times,
        "sklearn_over_flowdist": {
            f"{sk} / {fd}": t.ratio(sk, fd) for sk in COMPETITORS[2:] for fd in COMPETITORS[:2]
        },
        "ais_seconds": ais_times,
        "ais_log_z": est.log_z,
        "ais_std_error": est.std_error,
        "memory": memory(),
    }
    print(json.dumps(row), flush=True)
    if args.out:
        with open(args.out, "a") as fh:
            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
