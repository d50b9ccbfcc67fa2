import pytest
import torch

from flowdist.flows.autoregressive import IAF, MAF
from flowdist.flows.demo_images import digits_unit_scale, fit_flow
from flowdist.transforms.autoregressive import MaskedAutoregressiveTransform
from flowdist.transforms.image import LogitTransform


def test_maf_training_improves_digits_test_log_likelihood():
    torch.manual_seed(0)
    train, test = digits_unit_scale()
    flow = MAF(64, 2, (32,), data_transforms=[LogitTransform(64, alpha=0.05).inv])
    before, after = _fit(flow, train, test, steps=30)
    assert after > before + 20


@pytest.mark.parametrize("cls", [MAF, IAF])
@pytest.mark.parametrize("additive", [False, True])
def test_sampling_and_log_prob_agree(cls, additive):
    flow = cls(5, 3, (16,), additive=additive)
    for p in flow.parameters():
        torch.nn.init.normal_(p, std=0.3)
    d = flow()
    x, log_p = d.rsample_and_log_prob((6,))
    torch.testing.assert_close(d.log_prob(x.clone()), log_p, atol=1e-4, rtol=1e-4)


def test_iaf_registers_its_parameters_and_orders_alternate():
    iaf, maf = IAF(4, 3, (8,)), MAF(4, 3, (8,))
    assert sum(p.numel() for p in iaf.parameters()) == sum(p.numel() for p in maf.parameters())
    orders = [t.made.order.tolist() for t in maf.transforms]
    assert orders == [[1, 2, 3, 4], [4, 3, 2, 1], [1, 2, 3, 4]]


def test_pass_counts_per_layer():
    """MAF density and IAF sampling: one MADE pass per layer."""
    calls = []
    for cls in (MAF, IAF):
        flow = cls(6, 2, (8,))
        for m in flow.modules():
            if isinstance(m, MaskedAutoregressiveTransform):
                m.made.register_forward_hook(lambda *a: calls.append(1))
        calls.clear()
        d = flow()
        if cls is MAF:
            d.log_prob(torch.randn(3, 6))
        else:
            d.rsample_and_log_prob((3,))
        assert len(calls) == 2


def test_conditional_maf():
    flow = MAF(3, 2, (8,), context_features=2)
    for p in flow.parameters():
        torch.nn.init.normal_(p, std=0.3)
    ctx = torch.randn(4, 2)
    x, log_p = flow(ctx).rsample_and_log_prob()
    torch.testing.assert_close(flow(ctx).log_prob(x.clone()), log_p, atol=1e-4, rtol=1e-4)


def _fit(flow, train, test, steps):
    with torch.no_grad():
        before = flow().log_prob(test).mean().item()
    fit_flow(flow, train, steps=steps, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return before, flow().log_prob(test).mean().item()
