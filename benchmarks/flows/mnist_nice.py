r"""NICE on MNIST (Dinh et al., 2014) under a budget of process CPU time, with the test
log-likelihood curve in the paper's convention.

Model as in the paper: 4 additive couplings (alternating masks) with 5×1000 ReLU MLPs, the
diagonal scaling layer and the standard logistic prior (``NICE(784, 4, (1000,) * 5)``). Data:
pixels :math:`k \in \{0..255\}` dequantised to :math:`y = (k + u)/256 \in [0, 1)^{784}`; the
log-likelihood is the density on :math:`[0, 1]^{784}` in nats per image (paper: 1980.50 after
long training; subtract :math:`784 \log 256 \approx 4347.4` for the discrete scale). Adam
(lr 1e-3, the paper's :math:`\beta_2 = 0.01` replaced by the default), batch 200.

During training the test log-likelihood is measured every ``--eval-every`` CPU seconds on the first
``--eval-images`` test images (the evaluation time is not counted in the budget); at the end on
all 10,000. The projection fits :math:`\ell(t) = a + b \log t` to the second half of the curve
and extrapolates to ``--project-minutes`` (a crude trend, not a prediction of convergence).

    python benchmarks/flows/mnist_nice.py /work/shared/data/mnist.npz --minutes 30 \
        --out benchmarks/flows/mnist_nice_30min.json
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

from flowdist.datasets import load_mnist
from flowdist.flows.coupling import NICE
from flowdist.flows.train import mean_log_prob
from flowdist.transforms.image import dequantize

PAPER_NATS = 1980.50
LEVELS = 256


def projection(curve: list[tuple[float, float]], minutes: float) -> float | None:
    r"""Least-squares :math:`\ell = a + b \log t` on the second half of ``curve`` (pairs of
    training seconds and log-likelihood), evaluated at ``minutes``."""
    tail = [(math.log(t), ll) for t, ll in curve[len(curve) // 2 :] if t > 0]
    if len(tail) < 2:
        return None
    n = len(tail)
    mx = sum(x for x, _ in tail) / n
    my = sum(y for _, y in tail) / n
    sxx = sum((x - mx) ** 2 for x, _ in tail)
    if sxx == 0:
        return None
    b = sum((x - mx) * (y - my) for x, y in tail) / sxx
    return my + b * (math.log(60.0 * minutes) - mx)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data", help="path to mnist.npz")
    parser.add_argument(
        "--minutes", type=float, default=30.0, help="training budget, process CPU minutes"
    )
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--eval-every", type=float, default=90.0, help="CPU seconds of training")
    parser.add_argument("--eval-images", type=int, default=2000)
    parser.add_argument("--project-minutes", type=float, default=30.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    split = load_mnist(args.data, scale=False)
    g = torch.Generator().manual_seed(args.seed)
    train = dequantize(split.train_x, LEVELS, generator=g)
    test = dequantize(split.test_x, LEVELS, generator=g)
    flow = NICE(784, 4, (1000,) * 5)
    opt = torch.optim.Adam(flow.parameters(), lr=args.lr)
    budget, trained, steps = 60.0 * args.minutes, 0.0, 0
    curve: list[tuple[float, float]] = []
    next_eval = args.eval_every
    while trained < budget:
        start = time.process_time()
        idx = torch.randint(0, len(train), (args.batch,), generator=g)
        loss = -flow().log_prob(train[idx]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        trained += time.process_time() - start
        steps += 1
        if trained >= next_eval or trained >= budget:
            ll = mean_log_prob(flow, test[: args.eval_images])
            curve.append((trained, ll))
            print(f"{trained:7.1f} s  step {steps:6d}  test ll {ll:9.2f} nats", flush=True)
            next_eval += args.eval_every
    final = mean_log_prob(flow, test)
    projected = projection(curve, args.project_minutes)
    result = {
        "args": vars(args),
        "steps": steps,
        "epochs": steps * args.batch / len(train),
        "train_seconds": trained,
        "curve_seconds_nats": curve,
        "test_nats_final_all_10000": final,
        "paper_nats": PAPER_NATS,
        "gap_nats": PAPER_NATS - final,
        f"projected_nats_at_{args.project_minutes:g}_min": projected,
    }
    print(json.dumps(result, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
