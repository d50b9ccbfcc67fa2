"""RealNVP's multi-scale architecture on images: exact bijection and log-det (property kit),
the checkerboard/channel/factor-out structure, and training on digits."""

import pytest
import torch

from flowdist.flows import MultiscaleRealNVP
from flowdist.flows.demo_images import digits_unit_scale, fit_flow
from flowdist.testing import check_transform, randomize
from flowdist.transforms import AffineCouplingTransform
from flowdist.transforms.glow import MultiscaleTransform
from flowdist.transforms.image import LogitTransform


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_scale_passes_the_property_kit(dtype):
    flow = MultiscaleRealNVP((2, 4, 4), levels=2, hidden=8).to(dtype)
    # weights large enough to move every coupling off the identity, small enough that ten
    # stacked exp(s) factors keep the values in range for a float32 round trip
    randomize(flow, generator=torch.Generator().manual_seed(0), scale=0.1)
    x = torch.randn(3, 2, 4, 4, dtype=dtype, generator=torch.Generator().manual_seed(1))
    for t in flow.transforms:
        check_transform(t, x)


def test_structure_checkerboard_then_channel_couplings_and_factor_out():
    flow = MultiscaleRealNVP((1, 8, 8), levels=3, hidden=8)
    top = flow.transforms[0]
    assert isinstance(top, MultiscaleTransform) and top.kept == 1
    assert len(top.outer) == 3  # checkerboard couplings at full resolution
    assert all(m.spatial for m in top.outer)  # checkerboard: the mask varies over space
    deeper, *channel = top.transforms
    assert len(channel) == 3 and all(isinstance(c, AffineCouplingTransform) for c in channel)
    assert not any(c.spatial for c in channel)  # channel-wise masks
    assert deeper.kept == 2 and deeper.event_shape == (4, 4, 4)  # half of 4 channels kept
    last = deeper.transforms[0]
    assert last.kept == 4 and len(last.outer) == 4 and not last.transforms
    # the factored-out channels are untouched by the deeper scales
    z = torch.randn(2, 4, 4, 4)
    assert torch.equal(deeper(z)[:, 2:], z[:, 2:])


def test_training_improves_digits_test_log_likelihood():
    torch.manual_seed(0)
    train, test = (x.reshape(-1, 1, 8, 8) for x in digits_unit_scale())
    flow = MultiscaleRealNVP(
        (1, 8, 8), levels=2, hidden=16, data_transforms=[LogitTransform(1, 8, 8, alpha=0.05).inv]
    )
    with torch.no_grad():
        before = flow().log_prob(test).mean().item()
    fit_flow(flow, train, steps=30, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        after = flow().log_prob(test).mean().item()
    assert after > before + 15, (before, after)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"image_shape.*divisible"):
        MultiscaleRealNVP((1, 6, 6), levels=3)
    with pytest.raises(ValueError, match=r"image_shape must be \(C, H, W\)"):
        MultiscaleRealNVP((8, 8))
    with pytest.raises(ValueError, match=r"too small for levels=2: the last level is 1x1"):
        MultiscaleRealNVP((3, 2, 2), levels=2)
