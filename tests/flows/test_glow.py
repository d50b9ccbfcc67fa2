import copy

import pytest
import torch

from flowdist.flows.demo_images import digits_unit_scale, fit_flow
from flowdist.flows.glow import Glow, glow_step
from flowdist.transforms.glow import ActNormTransform
from flowdist.transforms.image import LogitTransform


def test_glow_training_improves_digits_test_log_likelihood():
    torch.manual_seed(0)
    train, test = (x.reshape(-1, 1, 8, 8) for x in digits_unit_scale())
    flow = Glow(
        (1, 8, 8),
        2,
        2,
        32,
        generator=torch.Generator().manual_seed(0),
        data_transforms=[LogitTransform(1, 8, 8, alpha=0.05).inv],
    )
    with torch.no_grad():
        flow().log_prob(train[:512])  # ActNorm's data-dependent initialisation
    before, after = _fit(flow, train, test, steps=40)
    assert after > before + 15


@pytest.mark.parametrize("lu", [True, False])
def test_sampling_and_log_prob_agree_and_deepcopy(lu):
    flow = Glow((2, 4, 4), 2, 1, 8, lu=lu, generator=torch.Generator().manual_seed(0))
    for p in flow.parameters():
        torch.nn.init.normal_(p, std=0.1)
    d = flow()
    x, log_p = d.rsample_and_log_prob((5,))
    assert x.shape == (5, 2, 4, 4)
    torch.testing.assert_close(d.log_prob(x.clone()), log_p, atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(copy.deepcopy(flow)().log_prob(x), d.log_prob(x))


def test_actnorm_meets_the_data_first():
    step = glow_step((4, 2, 2), 8)
    assert isinstance(step[-1], ActNormTransform)
    flow = Glow((1, 4, 4), 1, 1, 8)
    x = torch.randn(32, 1, 4, 4) * 5 + 3
    flow().log_prob(x)
    actnorms = [m for m in flow.modules() if isinstance(m, ActNormTransform)]
    assert all(bool(a.initialized) for a in actnorms)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"image_shape.*divisible"):
        Glow((1, 8, 8), levels=4)
    with pytest.raises(ValueError, match=r"image_shape must be \(C, H, W\)"):
        Glow((8, 8))
    with pytest.raises(ValueError, match="hidden must be a positive integer"):
        Glow((1, 4, 4), 1, 1, 0)
    with pytest.raises(ValueError, match="value must have shape"):
        Glow((1, 4, 4), 1, 1, 8)().log_prob(torch.rand(3, 1, 4, 5))


def _fit(flow, train, test, steps):
    with torch.no_grad():
        before = flow().log_prob(test).mean().item()
    fit_flow(flow, train, steps=steps, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return before, flow().log_prob(test).mean().item()
