"""Make the helper modules beside the tests (``robustness_helpers``) importable under pytest's
importlib import mode, and start every test from the same global random state."""

import random
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _seeded_global_rng():
    """A test's unseeded draws do not depend on which tests ran before it: running one test
    alone gives the numbers it gets in the whole suite."""
    torch.manual_seed(0)
    random.seed(0)
