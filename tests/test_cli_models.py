"""``flowdist train / evaluate / sample / models``: a train → checkpoint → evaluate → sample round
trip for every model of the zoo, evaluations equal to the library's own numbers on the reloaded
model, determinism, the data formats, and one-line errors (exit status 2) for user mistakes."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

from flowdist import zoo
from flowdist.checkpoint import save_checkpoint
from flowdist.cli import _parser, main
from flowdist.datasets import load_digits
from flowdist.flows import PlanarFlow
from flowdist.flows.demo_images import digits_unit_scale
from flowdist.transforms.image import bits_per_dim
from flowdist.vae import importance_log_likelihood

#: Tiny budgets: (model, --set pairs, how the evaluation is obtained).
CASES = {
    "nice": ("nice", ["hidden=16", "layers=2"], "exact"),
    "realnvp": ("realnvp", ["hidden=16", "layers=2"], "exact"),
    "maf": ("maf", ["hidden=16", "layers=2"], "exact"),
    "glow": ("glow", ["hidden=8", "steps=1"], "exact"),
    "rbm": ("rbm", ["hidden=8", "burn_in=20"], "exact"),
    "rbm-ais": ("rbm", ["hidden=30", "ais_chains=20", "ais_betas=50", "burn_in=5"], "AIS estimate"),
    "grbm": ("grbm", ["hidden=8", "burn_in=20"], "exact"),
    "dbm": ("dbm", ["hidden=8,4", "burn_in=20"], "lower bound"),
    "bm": ("bm", ["ais_chains=20", "ais_betas=50", "burn_in=5"], "AIS estimate"),
    "vae": ("vae", ["hidden=16", "z_dim=2", "k=5"], "importance-weighted estimate"),
    "cvae": ("cvae", ["hidden=16", "z_dim=2", "k=5"], "importance-weighted estimate"),
    "m2": ("m2", ["hidden=16", "z_dim=2", "k=5", "labels=20"], "importance-weighted estimate"),
}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(capsys, *argv: str) -> str:
    """``flowdist ARGV`` in-process; returns stdout (and asserts success)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def train(capsys, model: str, settings: list[str], out: Path, *extra: str) -> str:
    return run(
        capsys, "train", model, "--epochs", 1, "--set", *settings, "--out", out,
        "--no-progress", *extra,
    )  # fmt: skip


def binarized() -> tuple[torch.Tensor, torch.Tensor]:
    split = load_digits(binarize=True)
    return split.train_x, split.test_x


@torch.no_grad()
def library_log_likelihood(case: str, fitted: zoo.Fitted) -> torch.Tensor:
    """The test log-likelihoods per example, computed with the library directly on the
    reloaded module and on data made without the zoo (the demo's preprocessing)."""
    module, s = fitted.module, fitted.settings
    digits = load_digits(binarize=True)
    if fitted.model.name in ("nice", "realnvp", "maf", "glow"):
        test = digits_unit_scale(0)[1]  # (k + u)/17 with the seed-0 generator, train first
        shape = (1, 8, 8) if fitted.model.name == "glow" else (64,)
        return module().log_prob(test.reshape(-1, *shape))
    if fitted.model.name == "grbm":
        return module.log_prob(digits_unit_scale(0)[1])
    if fitted.model.name in ("rbm", "bm", "dbm"):
        if case in ("rbm-ais", "bm"):
            g = torch.Generator().manual_seed(0)
            betas, chains = s["ais_betas"], s["ais_chains"]
            module.estimate_log_partition(
                num_chains=chains, betas=betas, data=digits.train_x, generator=g
            )
        if fitted.model.name == "dbm":
            return module.variational_lower_bound(digits.test_x, s["mean_field_iters"])
        return module.log_prob(digits.test_x)
    data = {"vae": (digits.test_x,), "m2": (digits.test_x,)}.get(
        fitted.model.name, (digits.test_x, digits.test_y)
    )
    torch.manual_seed(0)
    iw, _ = importance_log_likelihood(module.model, module.guide, *data, k=s["k"])
    return iw


@pytest.mark.parametrize("case", CASES)
def test_train_evaluate_sample_round_trip(case, workdir, capsys):
    model, settings, method = CASES[case]
    out = train(capsys, model, settings, workdir / f"{case}.pt")
    assert f"checkpoint: {workdir / f'{case}.pt'}" in out

    report = json.loads(run(capsys, "evaluate", f"{case}.pt", "--json"))
    assert report["model"] == model and report["method"] == method
    assert report["examples"] == 360
    expected = library_log_likelihood(case, zoo.load(f"{case}.pt")).double()
    assert report["log_likelihood"] == expected.mean().item()  # the same computation
    if model in ("nice", "realnvp", "maf", "glow"):
        assert report["bits_per_dim"] == bits_per_dim(expected, 64, 17).mean().item()

    text = run(capsys, "evaluate", f"{case}.pt")
    assert f"test log-likelihood: {report['log_likelihood']:.3f} nats per example" in text
    assert f"method: {method}" in text

    run(capsys, "sample", f"{case}.pt", "-n", 8, "--out", "grid.png")
    assert (workdir / "grid.png").stat().st_size > 0
    run(capsys, "sample", f"{case}.pt", "-n", 8, "--out", "x.npz")
    x = np.load(workdir / "x.npz")["x"]
    assert x.shape == (8, 8, 8) and np.isfinite(x).all()
    if model in ("rbm", "dbm", "bm", "vae", "cvae", "m2"):
        assert set(np.unique(x)) <= {0.0, 1.0}
    elif model != "grbm":
        assert x.min() >= 0 and x.max() <= 1


@pytest.mark.parametrize("model", ["realnvp", "rbm", "vae"])
def test_training_is_deterministic_for_a_seed(model, workdir, capsys):
    settings = CASES[model][1]
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        train(capsys, model, settings, workdir / f"{name}.pt", "--seed", seed)
    a, b, c = (zoo.load(f"{name}.pt").module.state_dict() for name in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_checkpoint_carries_model_settings_and_data(workdir, capsys):
    train(capsys, "dbm", ["hidden=8,4", "lr=0.01"], workdir / "dbm.pt")
    fitted = zoo.load("dbm.pt")
    assert fitted.model.name == "dbm"
    changed = {"hidden": (8, 4), "lr": 0.01, "epochs": 1}
    assert fitted.settings == {**zoo.MODELS["dbm"].defaults, **changed}
    assert fitted.spec == zoo.DataSpec("digits", (8, 8), 17, 10)
    assert fitted.metadata["preprocessing"] == "binarised at > 8"


def test_npz_formats(workdir):
    rng = np.random.default_rng(0)
    np.savez("xy.npz", x=rng.integers(0, 4, (50, 3, 2)), y=rng.integers(0, 3, 50), levels=5)
    data = zoo.load_data("xy.npz")
    assert (len(data.train_x), len(data.test_x)) == (40, 10)
    assert data.levels == 5 and data.spec == zoo.DataSpec(str(workdir / "xy.npz"), (3, 2), 5, 3)

    images = rng.integers(0, 256, (6, 4, 4), dtype=np.uint8)
    labels = np.arange(6, dtype=np.uint8)
    np.savez("mnist.npz", train_images=images, train_labels=labels,
             test_images=images[:2], test_labels=labels[:2])  # fmt: skip
    mnist = zoo.load_data("mnist.npz")
    assert mnist.spec == zoo.DataSpec(str(workdir / "mnist.npz"), (4, 4), 256, 6)
    assert torch.equal(mnist.train_x, torch.as_tensor(images, dtype=torch.float32))

    bits = np.packbits(rng.integers(0, 2, (6, 16), dtype=np.uint8), axis=1)
    np.savez("bin.npz", train_x=bits, valid_x=bits, test_x=bits, n_pixels=16)
    assert zoo.load_data("bin.npz").spec == zoo.DataSpec(str(workdir / "bin.npz"), (4, 4), 2, None)
    np.savez("bin90.npz", train_x=bits, valid_x=bits, test_x=bits, n_pixels=10)  # not square
    assert zoo.load_data("bin90.npz").spec == zoo.DataSpec(
        str(workdir / "bin90.npz"), (10,), 2, None
    )

    np.savez("real.npz", train_x=rng.normal(size=(30, 5)), test_x=rng.normal(size=(8, 5)))
    assert zoo.load_data("real.npz").levels is None


def test_evaluate_reads_the_training_data_from_anywhere(workdir, capsys, monkeypatch):
    rng = np.random.default_rng(0)
    np.savez("real.npz", train_x=rng.normal(size=(40, 5)), test_x=rng.normal(size=(10, 5)))
    train(capsys, "grbm", ["hidden=4"], workdir / "grbm.pt", "--data", "real.npz")
    (workdir / "elsewhere").mkdir()
    monkeypatch.chdir(workdir / "elsewhere")
    assert "10 test examples of shape (5,), real values" in run(capsys, "evaluate", "../grbm.pt")


def test_models_and_help_list_every_model(capsys):
    listing = run(capsys, "models")
    assert all(f"  {name} " in listing for name in zoo.MODELS)
    assert "hidden = 32,16" in run(capsys, "models", "dbm")
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    assert all(f"  {name} " in help_text for name in zoo.MODELS) and "--set KEY=VALUE" in help_text
    for model in zoo.MODELS.values():  # every setting is explained
        assert set(model.defaults) <= set(zoo.SETTINGS_HELP), model.name


def test_every_command_in_the_docs_parses():
    page = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", page, flags=re.DOTALL)
    commands = [
        shlex.split(line, comments=True)
        for block in blocks
        for line in block.splitlines()
        if line.startswith("flowdist ")
    ]
    assert len(commands) >= 15
    for argv in commands:
        _parser().parse_args(argv[1:])  # argparse exits on an unknown option
    assert all(f"| `{name}` |" in page for name in zoo.MODELS)


@pytest.fixture
def mistakes(workdir, capsys):
    """Files for the user-mistake cases: a trained checkpoint and data of other kinds."""
    rng = np.random.default_rng(0)
    np.savez("real.npz", train_x=rng.normal(size=(40, 5)), test_x=rng.normal(size=(10, 5)))
    np.savez("levels.npz", train_x=rng.integers(0, 4, (40, 6)), test_x=rng.integers(0, 4, (9, 6)))
    np.savez("vector.npz", train_x=rng.normal(size=40), test_x=rng.normal(size=10))
    np.savez("other.npz", weights=np.zeros(3))
    np.savez("short_y.npz", x=rng.integers(0, 2, (20, 4)), y=np.zeros(10, dtype=int))
    np.savez("two_levels.npz", x=rng.integers(0, 2, (20, 4)), levels=[2, 2])
    bits = np.packbits(rng.integers(0, 2, (6, 16), dtype=np.uint8), axis=1)
    np.savez("floatbits.npz", train_x=bits * 1.0, valid_x=bits, test_x=bits, n_pixels=16)
    np.savez("npix.npz", train_x=bits, valid_x=bits, test_x=bits, n_pixels=1000)
    np.savez("floatlabels.npz", train_images=np.zeros((4, 2, 2), np.uint8),
             train_labels=np.full(4, 1.5), test_images=np.zeros((2, 2, 2), np.uint8),
             test_labels=np.ones(2, int))  # fmt: skip
    np.save("plain.npy", np.zeros(3))
    Path("adir").mkdir()
    Path("afile").write_text("")
    train(capsys, "rbm", ["hidden=4", "burn_in=2"], workdir / "rbm.pt")
    train(capsys, "grbm", ["hidden=4", "burn_in=2"], workdir / "grbm.pt", "--data", "real.npz")
    save_checkpoint("planar.pt", "planar", {"dim": 2, "K": 4}, PlanarFlow(2, 4))
    torch.save(PlanarFlow(2, 4).state_dict(), "state_dict.pt")
    Path("garbage.pt").write_bytes(b"\x00not a checkpoint" * 10)
    torch.save({"format": "flowdist-checkpoint", "flow": PlanarFlow(2, 4)}, "module.pt")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "nosuchmodel"], "unknown model 'nosuchmodel'; the models are nice, realnvp"),
        (["train", "rbm", "--data", "missing.npz"], "data: no such file 'missing.npz'"),
        (["evaluate", "missing.pt"], "checkpoint: no such file 'missing.pt'"),
        (["sample", "missing.pt"], "checkpoint: no such file 'missing.pt'"),
        (["train", "rbm", "--data", "vector.npz"], "must hold non-empty train and test arrays"),
        (["train", "rbm", "--data", "other.npz"], "holds the arrays ['weights']; expected"),
        (["train", "glow", "--data", "levels.npz"], "glow needs image-shaped examples"),
        (["train", "rbm", "--data", "real.npz"], "rbm models binary pixels"),
        (["train", "vae", "--data", "real.npz"], "vae models binary pixels"),
        (["train", "maf", "--data", "real.npz"], "maf models dequantised pixels"),
        (["train", "cvae", "--data", "levels.npz"], "cvae needs labels"),
        (["evaluate", "rbm.pt", "--data", "levels.npz"], "rbm was trained on examples of shape"),
        (["train", "rbm", "--set", "foo=1"], "rbm has no setting 'foo'"),
        (["train", "rbm", "--set", "hidden=many"], "setting hidden=many: expected int"),
        (["train", "rbm", "--set", "hidden"], "--set takes KEY=VALUE"),
        (["evaluate", "planar.pt"], "holds a 'planar' model, not one of nice, realnvp"),
        (["sample", "state_dict.pt"], "is not a flowdist checkpoint"),
        (["evaluate", "garbage.pt"], "is truncated or corrupted"),
        (["evaluate", "module.pt"], "stores Python objects other than tensors"),
        (["sample", "grbm.pt", "--out", "g.png"], "a PNG grid needs one-channel images"),
        (["sample", "rbm.pt", "--out", "g.txt"], "write a .png or an .npz file"),
        (["train", "rbm", "--device", "nonsense"], "--device"),
        (["evaluate", "rbm.pt", "--device", "mps"], "--device mps: not available"),
        (["train", "rbm", "--data", "short_y.npz"], "y of shape (N,), got (20, 4) and (10,)"),
        (["train", "rbm", "--data", "two_levels.npz"], "must be one integer"),
        (["train", "rbm", "--data", "floatbits.npz"], "train_x must be a 2-d uint8 array"),
        (["train", "rbm", "--data", "npix.npz"], "n_pixels = 1000, but train_x packs 16 bits"),
        (["train", "cvae", "--data", "floatlabels.npz"], "train_labels must be a 1-d integer"),
        (["train", "rbm", "--data", "plain.npy"], "plain.npy' as an .npz archive"),
        (["train", "rbm", "--data", "real.npz", "--out", "real.npz"], "is the data file"),
        (["train", "rbm", "--out", "adir"], "--out adir is a directory"),
        (["sample", "rbm.pt", "--out", "afile/x.png"], "afile"),  # an OSError, one line
    ],
)
def test_user_mistakes_are_one_line_errors(mistakes, capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    assert err.startswith("flowdist: error: ") and err.count("\n") == 1, err
