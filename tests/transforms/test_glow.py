import copy
import pickle

import pytest
import torch
from hypothesis import assume, given, settings

from flowdist.testing import check_transform, randomize, seeds
from flowdist.transforms.coupling import AffineCouplingTransform, channel_mask
from flowdist.transforms.glow import (
    ActNormTransform,
    Invertible1x1ConvTransform,
    MultiscaleTransform,
    SqueezeTransform,
)

DTYPES = [torch.float32, torch.float64]
SHAPES = [(5,), (3, 4, 4)]


def _data(shape, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 3 * torch.randn(6, *shape, generator=g, dtype=dtype) + 1


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@settings(max_examples=2, deadline=None)
@given(seed=seeds())
def test_actnorm_properties(shape, dtype, seed):
    t = ActNormTransform(*shape).to(dtype)
    x = _data(shape, dtype, seed)
    t.inv(x)  # data-dependent initialisation, then random parameters
    randomize(t, generator=torch.Generator().manual_seed(seed), scale=0.5)
    check_transform(t, x)


@pytest.mark.parametrize("inverse", [True, False])
@pytest.mark.parametrize("shape", SHAPES)
def test_actnorm_initialisation_standardises_the_first_batch(shape, inverse):
    t = ActNormTransform(*shape).to(torch.float64)
    x = _data(shape, torch.float64)
    out = t.inv(x) if inverse else t(x)
    dims = [0, *range(2, out.dim())]
    torch.testing.assert_close(out.mean(dims), torch.zeros(shape[0], dtype=torch.float64))
    torch.testing.assert_close(
        out.var(dims, correction=0), torch.ones(shape[0], dtype=torch.float64), rtol=1e-5, atol=0
    )
    assert bool(t.initialized)
    before = t.log_scale.detach().clone()
    t.inv(2 * x + 5)  # later batches do not re-initialise
    assert torch.equal(t.log_scale, before)


@pytest.mark.parametrize("inverse", [True, False])
def test_actnorm_waits_for_a_non_empty_batch_to_initialise(inverse):
    t = ActNormTransform(3, 4, 4).to(torch.float64)
    empty = torch.empty(0, 3, 4, 4, dtype=torch.float64)
    (t.inv if inverse else t)(empty)
    assert not bool(t.initialized)
    assert torch.equal(t.log_scale, torch.zeros_like(t.log_scale))
    x = _data((3, 4, 4), torch.float64)
    out = t.inv(x) if inverse else t(x)  # the first data standardised, as without the empty call
    torch.testing.assert_close(out.mean((0, 2, 3)), torch.zeros(3, dtype=torch.float64))


def test_actnorm_initialisation_survives_state_dict_pickle_and_deepcopy():
    t = ActNormTransform(3, 4, 4)
    x = _data((3, 4, 4), torch.float32)
    t.inv(x)
    assert "initialized" in t.state_dict()
    for other in (copy.deepcopy(t), pickle.loads(pickle.dumps(t))):
        assert bool(other.initialized)
        torch.testing.assert_close(other.inv(2 * x), t.inv(2 * x))
    fresh = ActNormTransform(3, 4, 4)
    fresh.load_state_dict(t.state_dict())
    torch.testing.assert_close(fresh.inv(2 * x), t.inv(2 * x))  # no re-initialisation
    assert not bool(ActNormTransform(3, 4, 4).initialized)
    # loading an uninitialised state re-arms the initialisation
    t.load_state_dict(ActNormTransform(3, 4, 4).state_dict())
    assert not bool(t.initialized)
    t.inv(x)
    assert bool(t.initialized)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("lu", [True, False], ids=["lu", "plain"])
@settings(max_examples=2, deadline=None)
@given(seed=seeds())
def test_1x1_conv_properties(shape, lu, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    t = Invertible1x1ConvTransform(*shape, lu=lu, generator=g).to(dtype)
    randomize(t, generator=g, scale=0.3)
    # the round trip loses about cond(W) * eps: keep to matrices a float32 inverse can take
    assume(float(torch.linalg.cond(t.matrix().detach().double())) < 100)
    check_transform(t, _data(shape, dtype, seed))


def test_1x1_conv_exact_values():
    t = Invertible1x1ConvTransform(2, 3, 3, lu=False).to(torch.float64)
    with torch.no_grad():
        t.weight.copy_(torch.tensor([[2.0, 1.0], [0.0, 3.0]]))
    x = torch.randn(4, 2, 3, 3, dtype=torch.float64)
    y, ladj = t.call_and_ladj(x)
    torch.testing.assert_close(y[:, 0], 2 * x[:, 0] + x[:, 1])
    torch.testing.assert_close(y[:, 1], 3 * x[:, 1])
    torch.testing.assert_close(
        ladj, torch.full((4,), 9 * torch.log(torch.tensor(6.0)).item(), dtype=torch.float64)
    )


def test_1x1_conv_lu_log_det_is_hw_sum_log_s():
    g = torch.Generator().manual_seed(0)
    t = randomize(Invertible1x1ConvTransform(4, 2, 3, generator=g), generator=g, scale=0.3)
    _, ladj = t.call_and_ladj(torch.randn(2, 4, 2, 3))
    torch.testing.assert_close(ladj, (6 * t.log_diag.sum()).expand(2))
    torch.testing.assert_close(
        ladj[0], 6 * torch.linalg.slogdet(t.matrix()).logabsdet, rtol=1e-5, atol=1e-5
    )
    torch.testing.assert_close(t.matrix() @ t.inverse_matrix(), torch.eye(4), atol=1e-5, rtol=0)


def test_1x1_conv_initial_weight_is_a_seeded_rotation():
    a = Invertible1x1ConvTransform(5, generator=torch.Generator().manual_seed(3))
    b = Invertible1x1ConvTransform(5, lu=False, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a.matrix(), b.matrix(), atol=1e-6, rtol=0)
    torch.testing.assert_close(a.matrix() @ a.matrix().T, torch.eye(5), atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_squeeze(dtype):
    t = SqueezeTransform(2, 4, 6)
    x = torch.arange(2 * 4 * 6, dtype=dtype).reshape(1, 2, 4, 6)
    y = t(x)
    assert y.shape == (1, 8, 2, 3)
    # channel c*4 + i*2 + j of pixel (h, w) is input (c, 2h + i, 2w + j)
    assert y[0, 4 * 1 + 2 * 1 + 0, 1, 2] == x[0, 1, 3, 4]
    assert t.forward_shape((5, 2, 4, 6)) == (5, 8, 2, 3)
    assert t.inverse_shape((5, 8, 2, 3)) == (5, 2, 4, 6)
    assert t.event_shape == (2, 4, 6) and t.inv.event_shape == (8, 2, 3)  # the inverse's input
    check_transform(t, torch.randn(3, 2, 4, 6, dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_multiscale(dtype):
    inner = (8, 2, 2)
    g = torch.Generator().manual_seed(0)
    steps = [
        ActNormTransform(*inner),
        Invertible1x1ConvTransform(*inner, generator=g),
        AffineCouplingTransform(channel_mask(inner), hidden=(8,)),
    ]
    t = MultiscaleTransform((4, 4, 4), steps, kept=2).to(dtype)
    x = torch.randn(3, 4, 4, 4, dtype=dtype, generator=g.manual_seed(1))
    t.inv(x)
    randomize(t, generator=g, scale=0.1)
    check_transform(t, x)
    assert torch.equal(t(x)[:, 2:], x[:, 2:])  # factored-out channels pass through


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match=r"event_shape.*divisible"):
        SqueezeTransform(1, 7, 8)
    with pytest.raises(ValueError, match="event_shape must be"):
        SqueezeTransform(8, 8)
    with pytest.raises(ValueError, match="x must have shape"):
        SqueezeTransform(1, 8, 8)(torch.randn(2, 1, 8, 6))
    with pytest.raises(ValueError, match="y must have shape"):
        SqueezeTransform(1, 8, 8).inv(torch.randn(2, 1, 8, 8))
    with pytest.raises(ValueError, match="event_shape"):
        ActNormTransform(3, 4)
    with pytest.raises(ValueError, match="kept"):
        MultiscaleTransform((2, 4, 4), [], kept=3)
    with pytest.raises(ValueError, match="preserve"):
        MultiscaleTransform((2, 4, 4), [SqueezeTransform(8, 2, 2)])
    with pytest.raises(TypeError, match="dtype"):
        ActNormTransform(3)(torch.randn(2, 3, dtype=torch.float64))


@pytest.mark.parametrize("lu", [True, False], ids=["lu", "plain"])
def test_1x1_conv_matrices_are_cached_only_without_a_graph(lu):
    t = Invertible1x1ConvTransform(3, 2, 2, lu=lu, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        first = t.inverse_matrix()
        assert t.inverse_matrix() is first  # reused while the parameters are unchanged
        torch.testing.assert_close(first @ t.matrix(), torch.eye(3))
    fresh = t.inverse_matrix()  # with a graph to build: recomputed, differentiable
    assert fresh is not first and fresh.grad_fn is not None
    fresh.sum().backward()
    torch.optim.SGD(t.parameters(), lr=0.1).step()
    with torch.no_grad():
        stepped = t.inverse_matrix()
        assert stepped is not first
        torch.testing.assert_close(stepped @ t.matrix(), torch.eye(3))
        next(t.parameters()).add_(0.1)  # an in-place update, no optimizer
        updated = t.inverse_matrix()
        assert updated is not stepped
        torch.testing.assert_close(updated @ t.matrix(), torch.eye(3))
