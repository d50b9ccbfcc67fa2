"""Robustness sweep over the flow API: malformed input gives a correct result or a
ValueError / TypeError naming the argument — never a NaN, a hang or an internal traceback."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from robustness_helpers import (
    BAD_SIZES,
    KINDS,
    assert_clean_outcome,
    malformed,
    on_another_device,
)

from flowdist.flows import PlanarFlow, RadialFlow, StandardNormal
from flowdist.transforms import (
    ConditionalTransform,
    PlanarStack,
    PlanarTransform,
    RadialTransform,
)

DIM = 3
TRANSFORMS = {
    "planar": lambda: PlanarTransform(DIM),
    "radial": lambda: RadialTransform(DIM),
    "stack": lambda: PlanarStack(DIM, 3),
}
FLOWS = {"planar": lambda: PlanarFlow(DIM, 3), "radial": lambda: RadialFlow(DIM, 3)}
#: Every kind of malformed input but another device (test_flow_log_prob_on_another_device).
FLOW_KINDS = [k for k in KINDS if k != "device"]
#: Kinds whose correct result, when there is one, has the batch shape of the input.
BATCHED = ("large", "overflow", "empty")


@pytest.mark.parametrize("bad", BAD_SIZES, ids=repr)
@pytest.mark.parametrize(
    ("name", "build"),
    [
        ("dim", lambda v: PlanarTransform(v)),
        ("dim", lambda v: RadialTransform(v)),
        ("K", lambda v: PlanarStack(2, v)),
        ("K", lambda v: PlanarFlow(2, v)),
        ("K", lambda v: RadialFlow(2, v)),
        ("context_dim", lambda v: ConditionalTransform(PlanarTransform, 2, v)),
        ("event_shape", lambda v: StandardNormal(v)),
    ],
)
def test_constructors_reject_bad_sizes(name, build, bad):
    with pytest.raises((ValueError, TypeError), match=name):
        build(bad)


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
@settings(max_examples=40, deadline=None)
@given(case=malformed(DIM))
def test_transform_methods_on_malformed_input(name, case):
    kind, x = case
    t = TRANSFORMS[name]()
    batch = tuple(x.shape[:-1]) if kind in BATCHED else None
    assert_clean_outcome(t.call_and_ladj, x, "x", batch)
    assert_clean_outcome(t.inverse_and_ladj, x, "y", batch)
    assert_clean_outcome(t, x, "x", None)


@pytest.mark.parametrize("name", sorted(FLOWS))
@settings(max_examples=40, deadline=None)
@given(case=malformed(DIM, FLOW_KINDS))
def test_flow_log_prob_on_malformed_input(name, case):
    kind, x = case
    d = FLOWS[name]()()
    batch = tuple(x.shape[:-1]) if kind in BATCHED else None
    assert_clean_outcome(d.log_prob, x, "value", batch)


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_flow_log_prob_on_another_device(name):
    assert_clean_outcome(FLOWS[name]()().log_prob, on_another_device(DIM), "value", None)


@pytest.mark.parametrize("shape", [(-1,), (2.5,), ("a",)])
def test_bad_sample_shapes(shape):
    with pytest.raises((ValueError, TypeError, RuntimeError)):
        PlanarFlow(2, 2)().rsample_and_log_prob(shape)


def test_empty_sample():
    x, log_q = PlanarFlow(2, 2)().rsample_and_log_prob((0,))
    assert x.shape == (0, 2) and log_q.shape == (0,)
