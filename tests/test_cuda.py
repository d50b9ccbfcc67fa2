"""Every family on a CUDA device gives what it gives on the CPU.

Skipped without CUDA (the CPU suite covers the behaviour itself); run on a GPU machine with
``python -m pytest tests/test_cuda.py``. Models are built on the CPU, copied with ``.to()``
(so parameters and buffers must follow it), and evaluated on both devices in float64.
"""

from __future__ import annotations

import copy

import pyro
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import Adam

from flowdist import (
    IAF,
    MAF,
    NICE,
    VAE,
    BernoulliRBM,
    BoltzmannMachine,
    DeepBoltzmannMachine,
    GaussianRBM,
    Glow,
    MultiscaleRealNVP,
    PlanarFlow,
    RadialFlow,
    RealNVP,
)
from flowdist.ebm import train_cd
from flowdist.vae.evaluate import importance_log_likelihood

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
CUDA = torch.device("cuda")

FLOWS = {
    "planar": (lambda: PlanarFlow(3, 4), (3,)),
    "radial": (lambda: RadialFlow(3, 4), (3,)),
    "nice": (lambda: NICE(6, layers=2, hidden=(16,)), (6,)),
    "realnvp": (lambda: RealNVP(6, layers=2, hidden=(16,)), (6,)),
    "maf": (lambda: MAF(6, layers=2, hidden=(16,)), (6,)),
    "iaf": (lambda: IAF(6, layers=2, hidden=(16,)), (6,)),
    "glow": (lambda: Glow((1, 4, 4), levels=1, steps=2, hidden=8), (1, 4, 4)),
    "multiscale": (lambda: MultiscaleRealNVP((1, 4, 4), levels=1, hidden=8), (1, 4, 4)),
}


@pytest.mark.parametrize("name", list(FLOWS))
def test_flow_on_cuda_matches_the_cpu(name):
    make, shape = FLOWS[name]
    torch.manual_seed(0)
    cpu = make().double()
    gpu = copy.deepcopy(cpu).to(CUDA)
    assert all(p.is_cuda for p in gpu.parameters()) and all(b.is_cuda for b in gpu.buffers())
    x = torch.randn(5, *shape, dtype=torch.float64)
    torch.testing.assert_close(gpu().log_prob(x.to(CUDA)).cpu(), cpu().log_prob(x))
    z = gpu().rsample((4,))
    assert z.device.type == "cuda" and z.shape == (4, *shape)
    z.sum().backward()  # gradients flow on the device
    assert any(p.grad is not None and p.grad.is_cuda for p in gpu.parameters())


def _rbm() -> BernoulliRBM:
    rbm = BernoulliRBM(8, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        rbm.weight.normal_(0, 0.7, generator=torch.Generator().manual_seed(1))
        rbm.visible_bias.normal_(0, 0.5, generator=torch.Generator().manual_seed(2))
    return rbm


def test_rbm_partition_energy_and_ais_on_cuda_match_the_cpu():
    cpu = _rbm()
    gpu = copy.deepcopy(cpu).to(CUDA)
    x = torch.bernoulli(torch.full((7, 8), 0.4, dtype=torch.float64))
    torch.testing.assert_close(gpu.log_partition().cpu(), cpu.log_partition())
    assert gpu.log_partition().is_cuda  # the cached value too
    torch.testing.assert_close(gpu.energy(x.to(CUDA)).cpu(), cpu.energy(x))
    est = gpu.estimate_log_partition(
        num_chains=200, betas=2000, generator=torch.Generator(CUDA).manual_seed(0)
    )
    assert abs(float(est.log_z) - float(cpu.log_partition())) < 0.05
    cpu_generator = torch.Generator().manual_seed(0)
    for call in (
        lambda: gpu.sample((3,), generator=cpu_generator),
        lambda: gpu.estimate_log_partition(betas=10, generator=cpu_generator),
        lambda: train_cd(gpu, x.to(CUDA), epochs=1, generator=cpu_generator),
    ):
        with pytest.raises(
            ValueError, match=r"generator draws on cpu, .* pass torch\.Generator\('cuda'\)"
        ):
            call()


@pytest.mark.parametrize("compute_dtype", [None, torch.bfloat16])
def test_cd_training_on_cuda_raises_the_exact_log_likelihood(compute_dtype):
    # (the samplers' laws on CUDA: the device-parametrised tests in tests/ebm)
    g = torch.Generator(CUDA).manual_seed(0)
    small = BernoulliRBM(8, 4, compute_dtype=compute_dtype, device=CUDA, generator=g)
    proto = torch.tensor([[1.0] * 4 + [0.0] * 4, [0.0] * 4 + [1.0] * 4], device=CUDA)
    flips = (torch.rand(400, 8, generator=g, device=CUDA) < 0.1).float()
    data = (proto.repeat(200, 1) - flips).abs()
    before = small.log_prob(data).mean()
    train_cd(small, data, epochs=30, batch_size=20, lr=0.05, generator=g)
    assert small.log_prob(data).mean() > before + 0.5


def test_dbm_gaussian_rbm_and_boltzmann_machine_on_cuda_match_the_cpu():
    torch.manual_seed(0)
    dbm = DeepBoltzmannMachine((6, 4, 3), dtype=torch.float64, init_std=0.5)
    x = torch.bernoulli(torch.full((5, 6), 0.5, dtype=torch.float64))
    gpu = copy.deepcopy(dbm).to(CUDA)
    torch.testing.assert_close(gpu.log_partition().cpu(), dbm.log_partition())
    torch.testing.assert_close(
        gpu.variational_lower_bound(x.to(CUDA)).cpu(), dbm.variational_lower_bound(x)
    )
    grbm = GaussianRBM(5, 3, dtype=torch.float64, init_std=0.3, learn_sigma=True)
    y = torch.randn(4, 5, dtype=torch.float64)
    gpu_g = copy.deepcopy(grbm).to(CUDA)
    torch.testing.assert_close(gpu_g.log_prob(y.to(CUDA)).cpu(), grbm.log_prob(y))
    bm = BoltzmannMachine(5, dtype=torch.float64)
    gpu_bm = copy.deepcopy(bm).to(CUDA)
    draws = gpu_bm.sample((50,), burn_in=5, generator=torch.Generator(CUDA).manual_seed(0))
    assert draws.is_cuda and draws.shape == (50, 5)
    torch.testing.assert_close(gpu_bm.log_partition().cpu(), bm.log_partition())


def test_ebms_initialise_from_a_cuda_generator():
    # a seed gives the same weights whichever device the model is built on
    for make in (
        lambda **kw: BernoulliRBM(6, 4, **kw),
        lambda **kw: DeepBoltzmannMachine((6, 4, 3), **kw),
        lambda **kw: GaussianRBM(6, 4, **kw),
        lambda **kw: BoltzmannMachine(6, **kw),
    ):
        on_cuda = make(generator=torch.Generator(CUDA).manual_seed(0), device=CUDA)
        on_cpu = make(generator=torch.Generator(CUDA).manual_seed(0))
        for a, b in zip(on_cuda.parameters(), on_cpu.parameters(), strict=True):
            assert a.is_cuda and not b.is_cuda
            torch.testing.assert_close(a.cpu(), b)


def test_vae_trains_and_scores_on_cuda():
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    vae = VAE(8, z_dim=2, hidden=(16,), flow_steps=2).to(CUDA)
    x = torch.bernoulli(torch.full((64, 8), 0.3, device=CUDA))
    svi = SVI(vae.model, vae.guide, Adam({"lr": 1e-2}), Trace_ELBO())
    losses = [svi.step(x) for _ in range(60)]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-10:]) < sum(losses[:10])
    iwae, elbo = importance_log_likelihood(vae.model, vae.guide, x[:8], k=50)
    assert iwae.is_cuda and bool((iwae >= elbo - 1e-4).all())
