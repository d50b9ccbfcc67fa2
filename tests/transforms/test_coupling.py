import copy
import functools
import pickle

import pytest
import torch
from hypothesis import given, settings
from torch import nn

from flowdist.testing import batch_shapes, check_transform, randomize, seeds
from flowdist.transforms.coupling import (
    AdditiveCouplingTransform,
    AffineCouplingTransform,
    ContextualTransform,
    ScaleTransform,
    affine_map,
    alternating_mask,
    channel_mask,
    checkerboard_mask,
    half_mask,
)

DTYPES = [torch.float32, torch.float64]
COUPLINGS = [AdditiveCouplingTransform, AffineCouplingTransform]
GLOW_COUPLING = functools.partial(AffineCouplingTransform, scale="sigmoid")
ALL_COUPLINGS = [*COUPLINGS, GLOW_COUPLING]
VECTOR_MASKS = {
    "half": half_mask(5),
    "half-flip": half_mask(5, flip=True),
    "alternating": alternating_mask(5, 1),
    "scattered": torch.tensor([True, False, False, True, False]),
}
IMAGE_MASKS = {
    "checkerboard": checkerboard_mask((2, 4, 4)),
    "checkerboard-odd": checkerboard_mask((2, 4, 4), parity=1),
    "channel": channel_mask((3, 4, 4)),
    "channel-flip": channel_mask((3, 4, 4), flip=True),
}


def _random(t: nn.Module, seed: int, scale: float) -> nn.Module:
    return randomize(t, generator=torch.Generator().manual_seed(seed), scale=scale)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls", ALL_COUPLINGS)
@pytest.mark.parametrize("mask", VECTOR_MASKS.values(), ids=VECTOR_MASKS.keys())
@settings(max_examples=2, deadline=None)
@given(seed=seeds(), batch=batch_shapes(max_dims=2, max_side=3))
def test_vector_coupling_properties(cls, mask, dtype, seed, batch):
    t = _random(cls(mask, hidden=(8,)).to(dtype), seed, 0.5)
    x = torch.randn(*batch, 5, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    check_transform(t, x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls", ALL_COUPLINGS)
@pytest.mark.parametrize("mask", IMAGE_MASKS.values(), ids=IMAGE_MASKS.keys())
@settings(max_examples=1, deadline=None)
@given(seed=seeds())
def test_image_coupling_properties(cls, mask, dtype, seed):
    t = _random(cls(mask, hidden=(4,)).to(dtype), seed, 0.2)
    g = torch.Generator().manual_seed(seed)
    check_transform(t, torch.randn(2, *mask.shape, generator=g, dtype=dtype))


@pytest.mark.parametrize("cls", COUPLINGS)
@pytest.mark.parametrize("mask", [half_mask(4), checkerboard_mask((2, 2, 2))])
def test_conditioning_part_passes_through_and_starts_at_identity(cls, mask):
    x = torch.randn(3, *mask.shape)
    t = cls(mask, hidden=(8,))
    torch.testing.assert_close(t(x), x)  # zero-initialised last layer
    _random(t, 0, 0.5)
    y = t(x)
    torch.testing.assert_close(y[:, mask], x[:, mask], rtol=0, atol=0)
    assert not torch.allclose(y[:, ~mask], x[:, ~mask])


def test_affine_coupling_exact_values_with_a_custom_conditioner():
    class Fixed(nn.Module):  # t = 2 x_A, s~ = x_A (for the one transformed entry)
        def forward(self, h):
            return torch.cat([2 * h, h], -1)

    t = AffineCouplingTransform(torch.tensor([True, False]), Fixed(), bound=1.0)
    x = torch.tensor([[0.5, 3.0]])
    s = torch.tanh(torch.tensor(0.5))
    y, ladj = t.call_and_ladj(x)
    torch.testing.assert_close(y, torch.tensor([[0.5, 3.0 * s.exp().item() + 1.0]]))
    torch.testing.assert_close(ladj, s.reshape(1))


def test_glow_scale_exact_values_and_inverse_never_expands():
    class Fixed(nn.Module):  # t = 2 x_A, s~ = x_A (for the one transformed entry)
        def forward(self, h):
            return torch.cat([2 * h, h], -1)

    t = AffineCouplingTransform(torch.tensor([True, False]), Fixed(), scale="sigmoid")
    x = torch.tensor([[0.5, 3.0], [-40.0, 3.0], [40.0, 3.0]], dtype=torch.float64)
    sig = torch.sigmoid(x[:, 0] + 2)  # the density direction's factor e^{-s}
    y, ladj = t.call_and_ladj(x)
    torch.testing.assert_close(y[:, 1], x[:, 1] / sig + 2 * x[:, 0])
    torch.testing.assert_close(ladj, -sig.log())
    assert (ladj >= 0).all()  # the inverse contracts, whatever the conditioner says
    with pytest.raises(ValueError, match="scale must be one of"):
        AffineCouplingTransform(half_mask(4), scale="exp")


def test_affine_log_scale_is_bounded():
    class Huge(nn.Module):
        def forward(self, h):
            return torch.full((*h.shape[:-1], 4), 1e4)

    t = AffineCouplingTransform(half_mask(4), Huge(), bound=2.0)
    y, ladj = t.call_and_ladj(torch.ones(1, 4))
    assert torch.isfinite(y).all()
    torch.testing.assert_close(ladj, torch.tensor([4.0]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_affine_map_log_scale_is_b_tanh_in_both_directions(dtype):
    """The log-scale is computed as 2b sigmoid(2u/b) - b (torch's sigmoid is several times
    faster than its tanh on CPUs); it equals b tanh(u/b) to a few ulps of b, from tiny to
    saturated u, with the inverse's exactly the negation."""
    raw = torch.cat([torch.zeros(1), torch.logspace(-8, 4, 60), -torch.logspace(-8, 4, 60)])
    raw = raw.to(dtype)[:, None]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(len(raw), 1, dtype=dtype, generator=g)
    params = torch.cat([torch.randn(raw.shape, dtype=dtype, generator=g), raw], -1)
    bound = 3.0
    expected = bound * torch.tanh(raw / bound)
    y, s = affine_map(x, params, False, bound, -1)
    back, minus_s = affine_map(y, params, True, bound, -1)
    eps = torch.finfo(dtype).eps
    assert (s - expected).abs().max() <= 4 * bound * eps
    assert torch.equal(minus_s, -s)
    assert (back - x).abs().max() <= 1e3 * eps
    assert s.abs().max() <= bound


def test_additive_coupling_has_unit_jacobian():
    t = _random(AdditiveCouplingTransform(alternating_mask(6), hidden=(8,)), 1, 1.0)
    _, ladj = t.call_and_ladj(torch.randn(4, 6))
    assert torch.equal(ladj, torch.zeros(4))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5,), (2, 3, 3)])
def test_scale_transform(shape, dtype):
    t = _random(ScaleTransform(*shape).to(dtype), 2, 1.0)
    x = torch.randn(4, *shape, dtype=dtype)
    check_transform(t, x)
    torch.testing.assert_close(t(x), x * t.log_scale.exp())


@pytest.mark.parametrize("shape", [(4,), (2, 4, 4)])
def test_conditional_coupling(shape):
    mask = half_mask(4) if len(shape) == 1 else channel_mask(shape)
    c = ContextualTransform(AffineCouplingTransform(mask, context_features=3, hidden=(8,)), 3)
    _random(c, 3, 0.5)
    ctx = torch.randn(5, 3)
    x = torch.randn(5, *shape)
    t = c(ctx)
    check_transform(t, x)
    assert not torch.allclose(t(x), c(torch.randn(5, 3))(x))
    # a single context broadcasts over a batch of inputs
    assert c(ctx[0])(x).shape == x.shape
    # the bound transform is picklable and shares the parameters
    assert pickle.loads(pickle.dumps(t))(x).shape == x.shape
    assert t.conditioner is c.transform.conditioner
    with pytest.raises(ValueError, match="context"):
        c(torch.randn(5, 2))


def test_cache_is_not_reused_after_a_parameter_change():
    t = _random(AffineCouplingTransform(half_mask(4), hidden=(8,)), 0, 0.5)
    x = torch.randn(3, 4)
    y = t(x)
    with torch.no_grad():
        t.conditioner[-1].bias.add_(1.0)
    assert not torch.allclose(t.log_abs_det_jacobian(x, y), t.call_and_ladj(x.clone())[1] * 0)
    torch.testing.assert_close(t.log_abs_det_jacobian(x, y), t.call_and_ladj(x.clone())[1])
    assert copy.deepcopy(t)(x).shape == x.shape


@pytest.mark.parametrize(
    ("mask", "match"),
    [
        (torch.ones(4, dtype=torch.bool), "partition"),
        (torch.zeros(4), "partition"),
        (torch.tensor([0.5, 1.0]), "mask must be boolean"),
        (torch.ones(2, 2, dtype=torch.bool), "mask must have the event shape"),
    ],
)
def test_bad_masks(mask, match):
    with pytest.raises(ValueError, match=match):
        AffineCouplingTransform(mask)


@pytest.mark.parametrize("mask", VECTOR_MASKS.values(), ids=VECTOR_MASKS.keys())
def test_split_indices_stay_out_of_the_state_dict_and_follow_to(mask):
    t = AffineCouplingTransform(mask, hidden=(4,))
    params = {f"conditioner.{k}" for k in t.conditioner.state_dict()}
    assert set(t.state_dict()) == {"mask"} | params  # checkpoints keep their keys
    t = _random(t, 0, 0.5).to(torch.float64)
    x = torch.randn(3, 5, dtype=torch.float64)
    y, _ = t.call_and_ladj(x)
    torch.testing.assert_close(y[:, mask], x[:, mask])
    torch.testing.assert_close(t.inverse_and_ladj(y.clone())[0], x)


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="x must have shape"):
        AffineCouplingTransform(half_mask(4))(torch.randn(3, 5))
    with pytest.raises(TypeError, match=r"mask must be a torch\.Tensor"):
        AffineCouplingTransform([True, False])
    with pytest.raises(ValueError, match="event_shape"):
        checkerboard_mask((4, 4))
    with pytest.raises(ValueError, match="bound"):
        AffineCouplingTransform(half_mask(4), bound=0.0)


@pytest.mark.parametrize("cls", COUPLINGS)
@pytest.mark.parametrize(
    "mask",
    [*VECTOR_MASKS.values(), channel_mask((3, 4, 4)), checkerboard_mask((2, 4, 4))],
    ids=[*VECTOR_MASKS.keys(), "channel", "checkerboard"],
)
def test_values_without_a_graph_equal_those_with_one(cls, mask):
    # without a graph the parts are written straight into the output: the same numbers
    t = _random(cls(mask, hidden=(8,)).with_cache(0), 5, 0.5)
    x = torch.randn(6, *mask.shape)
    with torch.no_grad():
        y0, ladj0 = t.call_and_ladj(x)
        x0, iladj0 = t.inverse_and_ladj(y0)
    y1, ladj1 = t.call_and_ladj(x)
    x1, iladj1 = t.inverse_and_ladj(y1)
    for a, b in [(y0, y1), (ladj0, ladj1), (x0, x1), (iladj0, iladj1)]:
        assert torch.equal(a, b.detach())
    torch.testing.assert_close(x0, x, atol=1e-5, rtol=1e-5)
    # a context with a larger batch than the input, without a graph
    c = ContextualTransform(cls(half_mask(4), context_features=2, hidden=(8,)), 2)
    _random(c, 6, 0.5)
    ctx, v = torch.randn(3, 2), torch.randn(4)
    with torch.no_grad():
        assert torch.equal(c(ctx)(v), c(ctx)(v.expand(3, 4)))
