import pytest
import torch
from hypothesis import given, settings

from flowdist.testing import batch_shapes, check_transform, randomize, seeds
from flowdist.transforms.autoregressive import MADE, MaskedAutoregressiveTransform
from flowdist.transforms.coupling import ContextualTransform

ORDERS = {"identity": None, "shuffled": [3, 1, 4, 2, 5]}


def _maf(additive, order, dtype, seed, **kwargs):
    t = MaskedAutoregressiveTransform(5, (16, 16), additive=additive, order=order, **kwargs)
    return randomize(t.to(dtype), generator=torch.Generator().manual_seed(seed), scale=0.3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("additive", [False, True], ids=["affine", "additive"])
@pytest.mark.parametrize("order", ORDERS.values(), ids=ORDERS.keys())
@settings(max_examples=2, deadline=None)
@given(seed=seeds(), batch=batch_shapes(max_dims=2, max_side=3))
def test_maf_and_iaf_properties(additive, order, dtype, seed, batch):
    t = _maf(additive, order, dtype, seed)
    x = torch.randn(*batch, 5, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    check_transform(t, x)
    check_transform(t.inv, x)


@pytest.mark.parametrize("order", ORDERS.values(), ids=ORDERS.keys())
def test_made_is_autoregressive(order):
    made = randomize(MADE(5, 2, (12, 12), order=order), generator=torch.Generator().manual_seed(0))
    x = torch.randn(5)
    jac = torch.autograd.functional.jacobian(made, x).reshape(2, 5, 5)  # (param, out, in)
    o = torch.tensor(order or [1, 2, 3, 4, 5])
    allowed = o[:, None] > o[None, :]
    assert (jac[:, ~allowed] == 0).all()
    assert (jac[:, allowed] != 0).any()


def test_made_context_reaches_every_output():
    made = randomize(MADE(3, 1, (16,), context_features=2), generator=torch.Generator())
    jac = torch.autograd.functional.jacobian(made, torch.randn(5))
    assert (jac[:, 3:] != 0).all()  # context columns
    assert (jac[0, :3] == 0).all()  # the first output sees no input


def test_pass_counts():
    """Density: one MADE pass per layer; sampling: d passes; IAF sampling: one pass."""
    t = _maf(False, None, torch.float32, 0)
    calls = []
    t.made.register_forward_hook(lambda *args: calls.append(1))
    x = torch.randn(4, 5)
    t.with_cache(0)
    t.inv(x)
    assert len(calls) == 1
    calls.clear()
    t(x)
    assert len(calls) == 5
    calls.clear()
    t.inv.call_and_ladj(x)
    assert len(calls) == 1


def test_conditional_maf():
    c = ContextualTransform(MaskedAutoregressiveTransform(4, (8,), context_features=2), 2)
    randomize(c, generator=torch.Generator().manual_seed(0), scale=0.5)
    ctx, x = torch.randn(3, 2), torch.randn(3, 4)
    check_transform(c(ctx), x)
    assert not torch.allclose(c(ctx)(x), c(ctx + 1)(x))


def test_bad_arguments():
    with pytest.raises(ValueError, match="order"):
        MADE(3, order=[1, 1, 2])
    with pytest.raises(ValueError, match="features"):
        MaskedAutoregressiveTransform(0)
    with pytest.raises(ValueError, match="x must have shape"):
        MaskedAutoregressiveTransform(3)(torch.randn(2, 4))
