r"""NICE (Dinh et al., 2014) or Glow (Kingma & Dhariwal, 2018) on MNIST under a budget of
process CPU time, with the test log-likelihood curve.

Data: pixels :math:`k \in \{0..255\}` dequantised to :math:`y = (k + u)/256 \in [0, 1)^{784}`;
the log-likelihood is the density on :math:`[0, 1]^{784}` in nats per image, and bits/dim on
the 256-level scale, :math:`-(\log p - 784 \log 256) / (784 \log 2)`.

- ``--model nice``, as in the paper: 4 additive couplings (alternating masks) with 5×1000 ReLU
  MLPs, the diagonal scaling layer and the standard logistic prior
  (``NICE(784, 4, (1000,) * 5)``); paper: 1980.50 nats after long training. Adam (lr 1e-3,
  the paper's :math:`\beta_2 = 0.01` replaced by the default), batch 200.
- ``--model glow``: ``Glow((1, 28, 28), levels=2, steps=4, hidden=64)`` (squeeze, 4 steps of
  ActNorm, LU 1×1 convolution and affine coupling per level, half the channels factored out
  between levels) followed by RealNVP's logit (:math:`\alpha = 0.05`, its Jacobian counted);
  a CPU-sized Glow (the paper's has 512-channel coupling networks and trains on GPUs).
  Reference: 1.05 bits/dim, Glow on MNIST as reported by Grathwohl et al. (2019, FFJORD,
  Table 2). Adam lr 1e-3, batch 64.

During training the test log-likelihood is measured every ``--eval-every`` CPU seconds on the first
``--eval-images`` test images (the evaluation time is not counted in the budget); at the end on
all 10,000. The projection fits :math:`\ell(t) = a + b \log t` to the second half of the curve
and extrapolates to ``--project-minutes`` (a crude trend, not a prediction of convergence).

    python benchmarks/flows/mnist.py /work/shared/data/mnist.npz --model nice --minutes 30 \
        --out benchmarks/flows/mnist_nice_30min.json
    python benchmarks/flows/mnist.py /work/shared/data/mnist.npz --model glow --minutes 30 \
        --out benchmarks/flows/mnist_glow_30min.json
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

from flowdist.datasets import load_mnist
from flowdist.flows.core import Flow
from flowdist.flows.coupling import NICE
from flowdist.flows.glow import Glow
from flowdist.flows.train import mean_log_prob
from flowdist.transforms.image import LogitTransform, bits_per_dim, dequantize

LEVELS = 256
IMAGE = (1, 28, 28)


def glow() -> Flow:
    return Glow(IMAGE, 2, 4, 64, data_transforms=[LogitTransform(*IMAGE, alpha=0.05).inv])


#: model -> (builder, event shape, batch size, published result)
MODELS = {
    "nice": (lambda: NICE(784, 4, (1000,) * 5), (784,), 200, {"nats": 1980.50}),
    "glow": (glow, IMAGE, 64, {"bits_per_dim": 1.05}),
}


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
    parser.add_argument("--model", choices=sorted(MODELS), default="nice")
    parser.add_argument(
        "--minutes", type=float, default=30.0, help="training budget, process CPU minutes"
    )
    parser.add_argument("--batch", type=int, default=None, help="default: the model's")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--eval-every", type=float, default=90.0, help="CPU seconds of training")
    parser.add_argument("--eval-images", type=int, default=2000)
    parser.add_argument("--project-minutes", type=float, default=30.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    parser.add_argument("--save", default=None, help="write the trained flow's state_dict here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    build, shape, batch, published = MODELS[args.model]
    args.batch = args.batch or batch
    split = load_mnist(args.data, scale=False)
    g = torch.Generator().manual_seed(args.seed)
    train = dequantize(split.train_x, LEVELS, generator=g).reshape(-1, *shape)
    test = dequantize(split.test_x, LEVELS, generator=g).reshape(-1, *shape)
    flow = build()
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
    with torch.no_grad():
        per_image = torch.cat(
            [flow().log_prob(test[i : i + 1000]).double() for i in range(0, len(test), 1000)]
        )
    final = float(per_image.mean())
    quantiles = torch.quantile(
        per_image, torch.tensor([0.0, 0.001, 0.01, 0.5], dtype=torch.float64)
    )
    bpd = float(bits_per_dim(torch.tensor(final), 784, LEVELS))
    projected = projection(curve, args.project_minutes)
    result = {
        "args": vars(args),
        "steps": steps,
        "epochs": steps * args.batch / len(train),
        "train_seconds": trained,
        "curve_seconds_nats": curve,
        "test_nats_final_all_10000": final,
        "test_bits_per_dim_final_all_10000": bpd,
        "test_nats_min_q001_q01_median": quantiles.tolist(),
        "published": published,
        f"projected_nats_at_{args.project_minutes:g}_min": projected,
    }
    if "nats" in published:
        result["gap_nats"] = published["nats"] - final
    else:
        result["gap_bits_per_dim"] = bpd - published["bits_per_dim"]
    print(json.dumps(result, indent=1))
    if args.save:
        torch.save(flow.state_dict(), args.save)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
