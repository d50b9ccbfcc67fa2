import math
import warnings

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO, TraceEnum_ELBO
from torch.distributions import kl_divergence

from flowdist.vae.conditional import SemiSupervisedVAE
from flowdist.vae.train import fit


def enum_elbo():
    return TraceEnum_ELBO(max_plate_nesting=1)


def test_unlabelled_guide_enumerates_the_label_and_passes_validation(prototypes):
    m2 = SemiSupervisedVAE(12, 3, 2, hidden=(16,))
    x, y = prototypes(6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isfinite(enum_elbo().loss(m2.model, m2.enumerated_guide, x, num_data=60))
        assert math.isfinite(Trace_ELBO().loss(m2.model, m2.guide, x, y, num_data=60))
        trace = poutine.trace(poutine.enum(m2.enumerated_guide, first_available_dim=-2)).get_trace(
            x
        )
    assert trace.nodes["y"]["value"].shape == (3, 1)  # all labels, in parallel
    assert trace.nodes["z"]["value"].shape == (3, 6, 2)


def test_enumerated_loss_matches_explicit_sum_over_labels(prototypes):
    m2 = SemiSupervisedVAE(12, 3, 2, hidden=(16,), name="sum")
    x, _ = prototypes(4)
    with torch.no_grad():  # a decoder that ignores z: then every term has a closed form
        m2.decoder[0][0].weight[:, :2].zero_()
    pyro.set_rng_seed(0)
    elbo = TraceEnum_ELBO(max_plate_nesting=1, num_particles=2000, vectorize_particles=True)
    enumerated = -elbo.loss(m2.model, m2.enumerated_guide, x)
    with torch.no_grad():
        q = torch.softmax(m2.class_logits(x), -1)  # (4, 3)
        per_label = []
        for c in range(3):
            yc = torch.full((4,), c)
            log_lik = m2.decode(torch.zeros(4, 2), yc).log_prob(x)
            kl = kl_divergence(m2.encode(x, yc), m2.prior())
            per_label.append(log_lik - kl - math.log(3))  # log p(y) = -log 3
        explicit = float((q * (torch.stack(per_label, -1) - q.log())).sum())
    assert enumerated == pytest.approx(explicit, abs=0.3)
    assert abs(explicit) > 10


def test_training_loss_adds_the_weighted_classifier_term(prototypes):
    # the same draws with aux_weight 1 and 3.5: the difference is 2.5 CE(q(y|x), y) N / B
    m2 = SemiSupervisedVAE(12, 3, 2, hidden=(16,), name="aux")
    x, y = prototypes(6)
    y = y.clone()
    y[4:] = -1  # two unlabelled rows: their enumerated term is the same in both losses
    losses = {}
    for a in (1.0, 3.5):
        m2.aux_weight = a
        pyro.set_rng_seed(0)
        losses[a] = m2.training_loss(enum_elbo(), x, y, num_data=60).item()
    ce = torch.nn.functional.cross_entropy(m2.class_logits(x[:4]), y[:4], reduction="sum")
    assert losses[3.5] - losses[1.0] == pytest.approx(2.5 * ce.item() * 60 / 6, rel=1e-5)


def test_m2_learns_to_classify_from_few_labels(prototypes):
    x, y = prototypes(150)
    y_partial = torch.full_like(y, -1)
    y_partial[:6] = y[:6]  # two labels per class
    torch.manual_seed(0)
    m2 = SemiSupervisedVAE(12, 3, 2, hidden=(32,), aux_weight=10.0, name="learn")
    fit(m2, (x, y_partial), epochs=30, batch_size=50, lr=1e-2, loss=enum_elbo())
    assert (m2.classify(x) == y).float().mean() > 0.9


def test_m2_bad_input(prototypes):
    m2 = SemiSupervisedVAE(12, 3, 2, hidden=(16,), name="bad")
    x, y = prototypes(6)
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.2"):
        m2.training_loss(enum_elbo(), x, torch.tensor([0, 1, -2, -1, 0, 1]), num_data=6)
    with pytest.raises(ValueError, match="one label per row"):
        m2.model(x, y[:3])
    with pytest.raises(TypeError, match="TraceEnum_ELBO"):
        m2.training_loss(Trace_ELBO(), x, y)
    with pytest.raises(ValueError, match="support"):
        m2.classify(x * 0.5)
    for num_data in (0, 3):  # fewer data than the batch holds
        with pytest.raises(ValueError, match="num_data"):
            m2.training_loss(enum_elbo(), x, y, num_data=num_data)
