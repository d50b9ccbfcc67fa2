import math
import warnings

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO
from pyro.util import check_model_guide_match

from flowdist.vae.conditional import ConditionalVAE, concat
from flowdist.vae.evaluate import importance_log_likelihood
from flowdist.vae.train import fit


def test_concat_broadcasts_batch_dimensions():
    a, b = torch.ones(5, 3), torch.zeros(4, 1, 2)
    assert concat(a, b).shape == (4, 5, 5)


def test_conditional_model_guide_match_and_shapes(prototypes):
    cvae = ConditionalVAE(12, 3, 2, hidden=(16,), flow_steps=2)
    x, y = prototypes(6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        guide = poutine.trace(cvae.guide).get_trace(x, y, num_data=60)
        model = poutine.trace(poutine.replay(cvae.model, guide)).get_trace(x, y, num_data=60)
        check_model_guide_match(model, guide, max_plate_nesting=1)
        assert math.isfinite(Trace_ELBO().loss(cvae.model, cvae.guide, x, y, num_data=60))
    assert model.nodes["x"]["fn"].batch_shape == (6,)
    iw, _ = importance_log_likelihood(cvae.model, cvae.guide, x, y, k=8)
    assert iw.shape == (6,)
    # a label passed by keyword is split into the same batches as x
    estimates = []
    for args, kwargs in (((x, y), {}), ((x,), {"y": y})):
        pyro.set_rng_seed(0)
        estimates.append(
            importance_log_likelihood(cvae.model, cvae.guide, *args, k=8, batch_size=4, **kwargs)
        )
    torch.testing.assert_close(estimates[0], estimates[1], rtol=0, atol=0)


def test_conditional_generation_follows_the_label(prototypes):
    x, y = prototypes(90)
    torch.manual_seed(0)
    cvae = ConditionalVAE(12, 3, 2, hidden=(32,), name="gen")
    fit(cvae, (x, y), epochs=40, batch_size=30, lr=1e-2)
    proto = torch.stack([x[y == c].mean(0) for c in range(3)])
    labels = torch.tensor([0, 1, 2] * 20)
    generated = cvae.generate(labels, generator=torch.Generator().manual_seed(0))
    dist_to_proto = torch.cdist(generated, proto)  # (60, 3)
    assert (dist_to_proto.argmin(1) == labels).float().mean() > 0.9


def test_conditional_bad_input(prototypes):
    cvae = ConditionalVAE(12, 3, 2, hidden=(16,), name="bad")
    x, y = prototypes(6)
    with pytest.raises(ValueError, match=r"y: labels must lie in 0\.\.2, got values in \[0, 3\]"):
        cvae.model(x, torch.tensor([0, 1, 2, 3, 0, 1]))
    with pytest.raises(ValueError, match=r"y must have shape \(6,\), one label per row of x"):
        cvae.guide(x, y[:5])
    with pytest.raises(TypeError, match=r"torch\.long"):
        cvae.model(x, y.float())
    with pytest.raises(ValueError, match="support"):
        cvae.model(x + 0.5, y)
    with pytest.raises(ValueError, match="labels must lie"):
        cvae.generate(torch.tensor([-1]))
