"""The direct ELBO (:meth:`VAE.elbo_loss`, what :func:`flowdist.vae.fit` uses for one-particle
``Trace_ELBO`` / ``TraceMeanField_ELBO``) equals Pyro's estimate on the model/guide pair: same
random draws, same value, same gradients."""

import pytest
import torch
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO

from flowdist.vae import VAE, ConditionalVAE


def _models():
    torch.manual_seed(0)
    return {
        "diagonal": VAE(12, 3, hidden=(16,)),
        "planar guide": VAE(12, 3, hidden=(16,), flow_steps=2),
        "iaf guide": VAE(12, 3, hidden=(16,), flow_steps=2, flow="iaf"),
        "conditional": ConditionalVAE(12, 4, 3, hidden=(16,)),
        "gaussian likelihood": VAE(12, 3, hidden=(16,), likelihood="gaussian"),
    }


@pytest.mark.parametrize("name", list(_models()))
@pytest.mark.parametrize("elbo", [Trace_ELBO, TraceMeanField_ELBO])
def test_elbo_loss_equals_pyros_estimate_and_gradients(name, elbo):
    vae = _models()[name].double()
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(7, 12, generator=g, dtype=torch.float64) < 0.3).double()
    data = (x, torch.randint(4, (7,), generator=g)) if name == "conditional" else (x,)
    values, grads = [], []
    for direct in (True, False):
        torch.manual_seed(2)
        vae.zero_grad()
        if direct:
            loss = vae.training_loss(elbo(), *data, num_data=70)
        else:
            loss = elbo().differentiable_loss(vae.model, vae.guide, *data, num_data=70)
        loss.backward()
        values.append(loss.detach())
        grads.append([p.grad.clone() for p in vae.parameters()])
    assert torch.allclose(values[0], values[1], rtol=1e-10)
    for a, b in zip(*grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-8, atol=1e-10)


def test_other_losses_and_bad_input_go_through_the_same_checks():
    vae = _models()["diagonal"]
    x = (torch.rand(5, 12) < 0.5).float()
    torch.manual_seed(0)
    two = vae.training_loss(Trace_ELBO(num_particles=2), x)  # through Pyro
    torch.manual_seed(0)
    assert torch.equal(
        two, Trace_ELBO(num_particles=2).differentiable_loss(vae.model, vae.guide, x)
    )
    with pytest.raises(ValueError, match="num_data"):
        vae.training_loss(Trace_ELBO(), x, num_data=3)
    with pytest.raises(ValueError, match="x"):
        vae.training_loss(Trace_ELBO(), x * 0.5)  # not binary
    cvae = _models()["conditional"]
    with pytest.raises(ValueError, match="labels must lie in"):
        cvae.training_loss(Trace_ELBO(), x, torch.tensor([0, 1, 2, 3, 4]))
