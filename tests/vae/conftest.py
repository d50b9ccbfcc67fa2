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
