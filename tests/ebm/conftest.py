"""Make ``ebm_helpers`` (brute-force references shared by the EBM tests) importable under
pytest's importlib import mode, and keep the tests on one thread."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(1)  # the machine is shared: small ops lose most to thread contention
