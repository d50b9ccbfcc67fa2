"""Robustness sweep over the flow API: malformed input gives a correct result or a
ValueError / TypeError naming the argument — never a NaN, a hang or an internal traceback."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

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

BAD_SIZES = [0, -2, 2.5, "3", None, True]


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


def _malformed() -> st.SearchStrategy[tuple[str, object]]:
    """(kind, input) pairs: wrong shapes, dtypes, non-finite and huge values, empty batches."""
    batch = st.lists(st.integers(0, 3), max_size=2).map(tuple)
    return st.one_of(
        batch.map(lambda b: ("shape", torch.randn(*b, DIM + 1))),
        batch.map(lambda b: ("shape", torch.randn(*b, DIM, 1))),
        st.just(("shape", torch.tensor(1.0))),
        st.sampled_from([torch.float64, torch.int64, torch.bool, torch.float16]).map(
            lambda dt: ("dtype", torch.zeros(2, DIM, dtype=dt))
        ),
        st.sampled_from([float("nan"), float("inf"), -float("inf")]).map(
            lambda v: ("finite", torch.full((2, DIM), v))
        ),
        st.sampled_from([1e4, 1e15, 3e38]).map(lambda v: ("huge", torch.full((2, DIM), v))),
        batch.map(lambda b: ("empty", torch.zeros(0, *b, DIM))),
        st.just(("type", [[0.0] * DIM])),
    )


def _outcome(fn, value, argument: str, expected_shape: tuple[int, ...] | None) -> None:
    try:
        result = fn(value)
    except (ValueError, TypeError) as err:
        assert argument in str(err) or "value" in str(err), str(err)
        return
    results = result if isinstance(result, tuple) else (result,)
    for r in results:
        assert torch.isfinite(r).all(), f"non-finite result for {value!r}"
    if expected_shape is not None:
        assert results[-1].shape == expected_shape


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
@settings(max_examples=40, deadline=None)
@given(case=_malformed())
def test_transform_methods_on_malformed_input(name, case):
    kind, x = case
    t = TRANSFORMS[name]()
    batch = tuple(x.shape[:-1]) if kind in ("huge", "empty") else None
    _outcome(t.call_and_ladj, x, "x", batch)
    _outcome(t.inverse_and_ladj, x, "y", batch)
    _outcome(t, x, "x", None)


@pytest.mark.parametrize("name", sorted(FLOWS))
@settings(max_examples=40, deadline=None)
@given(case=_malformed())
def test_flow_log_prob_on_malformed_input(name, case):
    kind, x = case
    d = FLOWS[name]()()
    batch = tuple(x.shape[:-1]) if kind in ("huge", "empty") else None
    _outcome(d.log_prob, x, "value", batch)


@pytest.mark.parametrize("shape", [(-1,), (2.5,), ("a",)])
def test_bad_sample_shapes(shape):
    with pytest.raises((ValueError, TypeError, RuntimeError)):
        PlanarFlow(2, 2)().rsample_and_log_prob(shape)


def test_empty_sample():
    x, log_q = PlanarFlow(2, 2)().rsample_and_log_prob((0,))
    assert x.shape == (0, 2) and log_q.shape == (0,)
