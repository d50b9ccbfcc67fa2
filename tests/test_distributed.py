"""Training under torchrun: two CPU processes (gloo) give the one-process result."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import torch

from flowdist.flows import PlanarFlow
from flowdist.flows.train import fit_density

SCRIPT = textwrap.dedent(
    """
    import sys
    import torch
    from flowdist import distributed
    from flowdist.flows import PlanarFlow
    from flowdist.flows.train import fit_density

    torch.set_num_threads(1)
    ctx = distributed.init()
    data = torch.load(sys.argv[1])
    flow = PlanarFlow(2, 4, generator=torch.Generator().manual_seed(0))
    fit_density(flow, data, epochs=2, batch_size=64, lr=1e-2, seed=1)
    if ctx.is_main:
        torch.save(flow.state_dict(), sys.argv[2])
    torch.distributed.destroy_process_group()
    """
)


def _data() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(512, 2, generator=g)
    return torch.stack([z[:, 0], z[:, 1] + 0.5 * z[:, 0] ** 2], -1)


def test_two_processes_with_gloo_equal_one_process(tmp_path):
    data = _data()
    torch.save(data, tmp_path / "data.pt")
    (tmp_path / "train.py").write_text(SCRIPT)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            str(tmp_path / "train.py"),
            str(tmp_path / "data.pt"),
            str(tmp_path / "state.pt"),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    flow = PlanarFlow(2, 4, generator=torch.Generator().manual_seed(0))
    fit_density(flow, data, epochs=2, batch_size=64, lr=1e-2, seed=1)
    distributed = torch.load(tmp_path / "state.pt")
    for name, value in flow.state_dict().items():
        torch.testing.assert_close(distributed[name], value, atol=1e-5, rtol=1e-5)
    assert not torch.equal(distributed["transforms.0.u"], PlanarFlow(2, 4).transforms[0].u)


def test_training_improves_held_out_likelihood_and_keeps_the_best_epoch():
    data = _data()
    flow = PlanarFlow(2, 8, generator=torch.Generator().manual_seed(0))
    result = fit_density(flow, data[:384], valid=data[384:], epochs=6, lr=2e-2, patience=2)
    assert result.valid_nll[result.best_epoch] == min(result.valid_nll)
    assert min(result.valid_nll) < result.valid_nll[0] - 0.05
