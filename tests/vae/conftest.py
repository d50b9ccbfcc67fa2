import pyro
import pytest
import torch


@pytest.fixture(autouse=True)
def _fresh_pyro():
    torch.set_num_threads(1)  # tiny models: one thread avoids oversubscribing the shared cores
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    with pyro.validation_enabled(True):
        yield


def noisy_prototypes(n: int, d: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Three classes (cycling labels), each a copy of its own random binary prototype with 5 %
    of the pixels flipped."""
    g = torch.Generator().manual_seed(seed)
    proto = (torch.rand(3, d, generator=g) < 0.5).float()
    y = torch.arange(n) % 3
    flip = torch.rand(n, d, generator=g) < 0.05
    return torch.where(flip, 1 - proto[y], proto[y]), y


@pytest.fixture
def prototypes():
    return noisy_prototypes
