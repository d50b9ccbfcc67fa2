import pytest
import torch

from flowdist.vae import VAE
from flowdist.vae.evaluate import IWAE_ELBO
from flowdist.vae.train import fit


def test_fit_improves_validation_elbo_and_is_deterministic(prototypes):
    x = prototypes(96)[0]
    results = []
    for _ in range(2):
        torch.manual_seed(0)
        vae = VAE(12, 2, hidden=(16,), name="fit")
        results.append(fit(vae, x[:64], valid=x[64:], epochs=6, batch_size=16, lr=1e-2, seed=3))
    first, second = results
    assert [r["train_loss"] for r in first.history] == [r["train_loss"] for r in second.history]
    assert first.history[-1]["valid"] > first.history[0]["valid"] + 1.0


def test_fit_with_iwae_objective_and_flow_guide(prototypes):
    x = prototypes(96)[0]
    vae = VAE(12, 2, hidden=(16,), flow_steps=2, name="fit_iwae")
    result = fit(vae, x, epochs=4, batch_size=32, lr=1e-2, loss=IWAE_ELBO(4))
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_early_stopping_restores_the_best_parameters(prototypes):
    x = prototypes(96)[0]
    vae = VAE(12, 2, hidden=(16,), name="es")
    scores = iter([1.0, 3.0, 2.0, 2.5, 9.0])
    states = []

    def score(module, *valid):
        states.append({k: v.clone() for k, v in module.state_dict().items()})
        return next(scores)

    result = fit(vae, x, valid=x, epochs=5, batch_size=32, patience=2, score=score)
    assert result.stopped_early and result.best_epoch == 1 and result.best_valid == 3.0
    assert [r["valid"] for r in result.history] == [1.0, 3.0, 2.0, 2.5]
    for k, v in vae.state_dict().items():
        assert torch.equal(v, states[1][k])


def test_checkpoint_resumes(prototypes, tmp_path):
    x = prototypes(96)[0]
    path = tmp_path / "vae.pt"
    torch.manual_seed(0)
    vae = VAE(12, 2, hidden=(16,), name="ck")
    first = fit(vae, x, epochs=2, batch_size=32, checkpoint=path)
    torch.manual_seed(1)
    fresh = VAE(12, 2, hidden=(16,), name="ck")
    fit(fresh, x, epochs=2, batch_size=32, checkpoint=path)  # nothing left: just restores
    for k, v in vae.state_dict().items():
        assert torch.equal(v, fresh.state_dict()[k])
    resumed = fit(fresh, x, epochs=3, batch_size=32, checkpoint=path)
    assert resumed.history[:2] == first.history
    assert [r["epoch"] for r in resumed.history] == [0, 1, 2]
    # stopping after 2 epochs and resuming is the uninterrupted 3-epoch run, bit for bit
    # (the data order, the draws and Adam's moments all carry over)
    torch.manual_seed(0)
    whole = VAE(12, 2, hidden=(16,), name="ck")
    straight = fit(whole, x, epochs=3, batch_size=32)
    assert [r["train_loss"] for r in straight.history] == [r["train_loss"] for r in resumed.history]
    for k, v in whole.state_dict().items():
        assert torch.equal(v, fresh.state_dict()[k]), k


def test_fit_argument_errors(prototypes):
    vae = VAE(12, 2, hidden=(16,), name="err")
    with pytest.raises(ValueError, match="patience"):
        fit(vae, prototypes(96)[0], patience=2)
    with pytest.raises(ValueError, match="epochs"):
        fit(vae, prototypes(96)[0], epochs=0)
