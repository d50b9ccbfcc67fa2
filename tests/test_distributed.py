"""Training under torchrun: two CPU processes (gloo) give the one-process result — flows (DDP),
CD/PCD training (persistent chains split across ranks), AIS (runs split and merged) and VAE
training (uneven shards, validation score, checkpoint written by rank 0 and resumed).

The module is also the script that ``torchrun`` launches: ``__main__`` runs :func:`runs` on
every rank and rank 0 saves every rank's results; the tests compare them with :func:`runs` in
one process.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyro
import pytest
import torch
from torch import Tensor

from flowdist import distributed
from flowdist.checkpoint import load_checkpoint
from flowdist.ebm import BernoulliRBM, DeepBoltzmannMachine, GaussianRBM, train_cd
from flowdist.flows import PlanarFlow
from flowdist.flows.train import fit_density
from flowdist.mcmc.gibbs import bernoulli
from flowdist.vae import VAE
from flowdist.vae.train import fit


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _binary(n: int, d: int, seed: int) -> Tensor:
    g = _seeded(seed)
    proto = (torch.rand(3, d, generator=g) < 0.5).float()
    flip = torch.rand(n, d, generator=g) < 0.1
    rows = proto[torch.arange(n) % 3]
    return torch.where(flip, 1 - rows, rows)


def _state(module: torch.nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _flow_data() -> Tensor:
    z = torch.randn(512, 2, generator=_seeded(0))
    return torch.stack([z[:, 0], z[:, 1] + 0.5 * z[:, 0] ** 2], -1)


def flow_run() -> dict[str, Tensor]:
    """Two epochs of maximum likelihood, batches of 64 (32 per rank)."""
    flow = PlanarFlow(2, 4, generator=_seeded(0))
    fit_density(flow, _flow_data(), epochs=2, batch_size=64, lr=1e-2, seed=1)
    return _state(flow)


def ebm_runs() -> dict[str, dict[str, Tensor]]:
    """RBM (PCD-2), DBM (PCD-1, mean-field data term) and Gaussian RBM (CD-1) training."""
    x = _binary(64, 12, 0)
    out = {}
    models = {
        "rbm": (BernoulliRBM(12, 8, init_std=0.1, generator=_seeded(1)), 2),
        # on a CPU: the weight gradient in int8 on stochastically rounded probabilities
        "rbm_bf16": (
            BernoulliRBM(12, 8, init_std=0.1, generator=_seeded(1), compute_dtype=torch.bfloat16),
            1,
        ),
        "dbm": (DeepBoltzmannMachine((12, 6, 4), init_std=0.1, generator=_seeded(2)), 1),
    }
    for name, (model, k) in models.items():
        g = _seeded(2)
        train_cd(model, x, epochs=2, batch_size=16, k=k, persistent=True, num_chains=8, generator=g)
        out[name] = _state(model)
    grbm = GaussianRBM(12, 6, generator=_seeded(3))
    train_cd(grbm, x * 2 - 1, epochs=2, batch_size=16, lr=0.01, generator=_seeded(4))
    out["grbm"] = _state(grbm)
    return out


def ais_runs() -> dict[str, Tensor]:
    """AIS log-weights of an RBM (7 runs: uneven shares 3 + 4) and a DBM (6 runs)."""
    x = _binary(64, 12, 4)
    rbm = BernoulliRBM(12, 8, init_std=0.5, generator=_seeded(5))
    dbm = DeepBoltzmannMachine((12, 6, 4), init_std=0.5, generator=_seeded(6))
    out = {}
    for name, model, chains in (("rbm", rbm, 7), ("dbm", dbm, 6)):
        g = _seeded(7)
        est = model.estimate_log_partition(num_chains=chains, betas=300, data=x, generator=g)
        out[name] = torch.cat([est.log_weights, torch.tensor([est.log_z, est.std_error])])
    return out


def vae_runs(directory: Path) -> dict[str, object]:
    """Two epochs with a checkpoint, then a third resumed from it; 51 examples in batches of 16
    (a last batch of 3) and 21 validation examples, so the ranks' shares are uneven."""
    x = _binary(72, 12, 8)
    torch.manual_seed(9)
    pyro.clear_param_store()
    vae = VAE(12, 2, hidden=(16,), name="dist")
    path = directory / "vae.pt"
    kw = {"valid": x[51:], "batch_size": 16, "lr": 1e-2, "seed": 3, "checkpoint": path}
    fit(vae, x[:51], epochs=2, **kw)
    resumed = fit(vae, x[:51], epochs=3, **kw)
    saved = load_checkpoint(path).state_dict if distributed.context().is_main else None
    return {"state": _state(vae), "history": resumed.history, "saved": saved}


def runs(directory: Path) -> dict[str, object]:
    rank = distributed.context().rank
    bf16 = torch.tensor([1.0, 2.0], dtype=torch.bfloat16) * (rank + 1)
    reduced = distributed.all_reduce_mean([bf16], weight=rank + 1)[0]
    return {
        "flow": flow_run(),
        "ebm": ebm_runs(),
        "ais": ais_runs(),
        "vae": vae_runs(directory),
        "reduced": reduced,
    }


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict[str, object]]:
    """The results of both ranks of a two-process run."""
    directory = tmp_path_factory.mktemp("dist")
    launch = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            __file__,
            str(directory),
            str(directory / "results.pt"),
        ],
        check=False,
        timeout=300,
        capture_output=True,
        text=True,
    )
    assert launch.returncode == 0, launch.stderr[-3000:]
    return torch.load(directory / "results.pt", weights_only=False)


@pytest.fixture(scope="module")
def two_processes(ranks) -> dict[str, object]:
    return ranks[0]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> dict[str, object]:
    return runs(tmp_path_factory.mktemp("one"))


def _assert_states_close(a: dict[str, Tensor], b: dict[str, Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-5, rtol=1e-5, msg=name)


def test_flow_training_on_two_processes_equals_one_process(two_processes, one_process):
    _assert_states_close(two_processes["flow"], one_process["flow"])
    initial = PlanarFlow(2, 4, generator=_seeded(0)).transforms[0].u
    assert not torch.equal(two_processes["flow"]["transforms.0.u"], initial)


def test_training_improves_held_out_likelihood_and_keeps_the_best_epoch():
    data = _flow_data()
    flow = PlanarFlow(2, 8, generator=_seeded(0))
    result = fit_density(flow, data[:384], valid=data[384:], epochs=6, lr=2e-2, patience=2)
    assert result.valid_nll[result.best_epoch] == min(result.valid_nll)
    assert min(result.valid_nll) < result.valid_nll[0] - 0.05


@pytest.mark.parametrize("model", ["rbm", "rbm_bf16", "dbm", "grbm"])
def test_cd_training_on_two_processes_equals_one_process(two_processes, one_process, model):
    _assert_states_close(two_processes["ebm"][model], one_process["ebm"][model])


@pytest.mark.parametrize("model", ["rbm", "dbm"])
def test_ais_runs_split_across_processes_merge_into_the_one_process_estimate(
    two_processes, one_process, model
):
    torch.testing.assert_close(
        two_processes["ais"][model], one_process["ais"][model], atol=1e-5, rtol=1e-5
    )


def test_vae_fit_on_two_processes_equals_one_process(two_processes, one_process):
    two, one = two_processes["vae"], one_process["vae"]
    _assert_states_close(two["state"], one["state"])
    _assert_states_close(two["saved"], two["state"])
    assert len(two["history"]) == 3
    for a, b in zip(two["history"], one["history"], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["valid"] == pytest.approx(b["valid"], rel=1e-5)


def test_parameters_stay_identical_on_every_rank(ranks):
    first, second = ranks
    pairs = [(first["ebm"][model], second["ebm"][model]) for model in first["ebm"]]
    pairs += [(first["flow"], second["flow"]), (first["vae"]["state"], second["vae"]["state"])]
    for a, b in pairs:
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_gradients_are_reduced_in_float32_with_weights(two_processes):
    # rank r passes (r + 1) * [1, 2] in bfloat16 with weight r + 1: (1 + 4) / 3 * [1, 2]
    reduced = two_processes["reduced"]
    assert reduced.dtype == torch.float32
    torch.testing.assert_close(reduced, torch.tensor([5.0, 10.0]) / 3)


def test_shares_are_contiguous_and_differ_by_at_most_one_row():
    ctx = distributed.DistributedContext(1, 2)
    assert distributed.bounds(7, ctx) == (3, 7)
    assert distributed.shard(torch.arange(7), ctx, even=False).tolist() == [3, 4, 5, 6]
    with pytest.raises(ValueError, match="multiple of the world size 2"):
        distributed.shard(torch.zeros(7), ctx)


def test_a_rank_draws_its_rows_of_the_one_process_random_numbers():
    one = _seeded(0)
    full, after = torch.rand(6, 4, generator=one), torch.rand(4, generator=one)
    normal = torch.randn(2, 6, generator=_seeded(1))
    g = _seeded(0)
    with distributed.sharded_randomness(6, ctx=distributed.DistributedContext(1, 2)):
        assert torch.equal(torch.rand(3, 4, generator=g), full[3:])
        assert torch.equal(torch.rand(4, generator=g), after)  # no row dimension: as it is
        z = torch.empty(2, 3).normal_(generator=_seeded(1))
        assert torch.equal(z, normal[:, 3:])
        with pytest.raises(NotImplementedError, match="bernoulli"):
            torch.bernoulli(torch.full((3, 4), 0.5), generator=g)
    # flowdist's Bernoulli draws: uniforms for narrow rows or float64, random bits for wide ones
    for width, dtype in ((5, torch.float32), (301, torch.float32), (301, torch.float64)):
        probs = torch.rand(6, width, generator=_seeded(2), dtype=dtype)
        whole = bernoulli(probs, _seeded(3))
        with distributed.sharded_randomness(6, ctx=distributed.DistributedContext(1, 2)):
            assert torch.equal(bernoulli(probs[3:], _seeded(3)), whole[3:])


def test_sharded_randomness_refuses_totals_whose_shares_collide():
    # rank 0 of 2 takes 2 rows of 4 and 2 rows of 5: a 2-row draw would be ambiguous
    with pytest.raises(ValueError, match="4 and 5 rows give this rank 2 rows each"):
        distributed.sharded_randomness(4, 5, ctx=distributed.DistributedContext(0, 2))
    with distributed.sharded_randomness(6, 6, 4, ctx=distributed.DistributedContext(0, 2)):
        pass  # repeated totals, or different shares, are fine


def test_train_cd_needs_equal_shares(monkeypatch):
    monkeypatch.setattr("flowdist.ebm.train.context", lambda: distributed.DistributedContext(0, 2))
    rbm = BernoulliRBM(12, 4)
    with pytest.raises(ValueError, match="num_chains=5 must be a multiple of the world size 2"):
        train_cd(rbm, _binary(16, 12, 0), epochs=1, batch_size=8, persistent=True, num_chains=5)


if __name__ == "__main__":
    torch.set_num_threads(1)
    ctx = distributed.init()
    gathered = [None] * ctx.world_size
    torch.distributed.all_gather_object(gathered, runs(Path(sys.argv[1])))
    if ctx.is_main:
        torch.save(gathered, sys.argv[2])
    torch.distributed.destroy_process_group()
