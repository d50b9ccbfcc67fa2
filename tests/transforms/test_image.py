import math

import pytest
import torch

from flowdist.flows.core import Flow, StandardNormal
from flowdist.flows.coupling import StandardLogistic
from flowdist.testing import check_transform
from flowdist.transforms.image import (
    LogitTransform,
    bits_per_dim,
    dequantize,
    discrete_log_likelihood,
)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(4,), (2, 3, 3)])
def test_logit_properties(shape, dtype):
    t = LogitTransform(*shape, alpha=0.05)
    check_transform(t, torch.rand(3, *shape, dtype=dtype))
    check_transform(t.inv, torch.randn(3, *shape, dtype=dtype))


def test_logit_values():
    t = LogitTransform(1, alpha=0.1)
    z, ladj = t.call_and_ladj(torch.tensor([[0.5], [0.0]]))
    torch.testing.assert_close(z, torch.tensor([[0.0], [math.log(0.1 / 0.9)]]))
    torch.testing.assert_close(ladj[0], torch.tensor(math.log(0.8 / 0.25)))
    # the domain is where the logit is finite: [-a/(1-2a), 1 + a/(1-2a)], 0.125 off [0, 1]
    edges = torch.tensor([[-0.125], [1.125]], dtype=torch.float64)
    assert t.domain.check(edges).all() and not t.domain.check(edges * 1.01).any()
    assert t.call_and_ladj(edges, validate=False)[0].abs().isinf().all()


@pytest.mark.parametrize("alpha", [0.0, 0.05, 0.2])
def test_known_answer_accounting_uniform_model(alpha):
    r"""A logistic base through the inverse logit is uniform on the squashed interval, so the
    flow's density on [0, 1]^D is exactly (1 - 2α)^D: log p = D log(1 - 2α), and on the
    256-level scale the model has 8 - log2(1 - 2α) bits/dim."""
    shape = (1, 4, 4)
    flow = Flow([LogitTransform(*shape, alpha=alpha).inv], StandardLogistic(*shape))
    x = dequantize(torch.randint(0, 256, (10, *shape)), generator=torch.Generator())
    log_p = flow().log_prob(x)
    d = 16
    torch.testing.assert_close(log_p, torch.full((10,), d * math.log1p(-2 * alpha)))
    torch.testing.assert_close(
        bits_per_dim(log_p, d), torch.full((10,), 8 - math.log2(1 - 2 * alpha))
    )


def test_known_answer_accounting_gaussian_base():
    r"""Gaussian base: log p(x) = Σ log N(logit p) + D log(1 - 2α) - Σ log(p (1 - p))."""
    alpha, shape = 0.05, (3,)
    flow = Flow([LogitTransform(*shape, alpha=alpha).inv], StandardNormal(*shape))
    x = torch.tensor([[0.1, 0.5, 0.99]], dtype=torch.float32)
    p = alpha + (1 - 2 * alpha) * x
    z = torch.log(p / (1 - p))
    expected = (
        (-0.5 * z**2 - 0.5 * math.log(2 * math.pi)).sum(-1)
        + 3 * math.log(1 - 2 * alpha)
        - torch.log(p * (1 - p)).sum(-1)
    )
    torch.testing.assert_close(flow().log_prob(x), expected)


def test_discrete_uniform_has_log2_levels_bits():
    d = 64
    log_p = torch.zeros(5)  # the uniform density on [0, 1]^d
    torch.testing.assert_close(bits_per_dim(log_p, d, levels=256), torch.full((5,), 8.0))
    torch.testing.assert_close(
        discrete_log_likelihood(log_p, d, levels=17), torch.full((5,), -d * math.log(17))
    )


def test_dequantize_range_and_seed():
    x = torch.arange(256.0)
    y = dequantize(x, generator=torch.Generator().manual_seed(0))
    assert ((y * 256).floor() == x).all() and y.dtype == x.dtype
    y2 = dequantize(x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(y, y2)
    z = dequantize(torch.tensor([0, 16]), levels=17)
    assert z.dtype == torch.get_default_dtype() and (z < torch.tensor([1 / 17, 1])).all()


@pytest.mark.parametrize("bad", [torch.tensor([256.0]), torch.tensor([-1]), torch.tensor([0.5])])
def test_dequantize_rejects_data_outside_the_levels(bad):
    with pytest.raises(ValueError, match="x must hold"):
        dequantize(bad)


def test_bad_arguments():
    with pytest.raises(ValueError, match="levels"):
        dequantize(torch.tensor([1]), levels=1)
    with pytest.raises(ValueError, match="alpha"):
        LogitTransform(3, alpha=0.5)
    with pytest.raises(TypeError, match=r"x must be a torch\.Tensor"):
        dequantize([1, 2])
