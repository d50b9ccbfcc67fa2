"""Shared pieces of the robustness sweeps (``tests/test_robustness*.py``).

The rule every public function must follow on malformed input: a correct result, or a
``ValueError`` / ``TypeError`` whose message names the argument — never a NaN (or any
non-finite) result, a hang, or an internal traceback (an error raised from deep inside torch or
Pyro, such as a ``RuntimeError`` about ``mat1`` and ``mat2`` shapes).
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Callable, Iterable
from typing import Any

import pytest
import torch
from hypothesis import strategies as st

__all__ = [
    "BAD_SIZES",
    "KINDS",
    "assert_clean_outcome",
    "malformed",
    "malformed_inputs",
    "on_another_device",
]

#: Values that no size argument (a dimension, a count of layers or steps) may accept.
BAD_SIZES = [0, -2, 2.5, "3", None, True]

#: The kinds of :func:`malformed_inputs`, in order.
KINDS = ("shape", "dtype", "nan", "inf", "large", "overflow", "empty", "type", "device")


def on_another_device(dim: int) -> torch.Tensor:
    """A batch of ``dim``-vectors on another device than the CPU models': ``meta``, the only
    other device on a CPU-only machine (a model must reject it as it would a CUDA tensor)."""
    return torch.zeros(2, dim, device="meta")


def malformed_inputs(dim: int) -> dict[str, st.SearchStrategy[Any]]:
    """Malformed stand-ins for a batch of ``dim``-vectors, one strategy per kind: wrong shapes,
    wrong dtypes, nan, ±inf, large values (1e4, 1e15), values whose squares overflow float32
    (3e38), empty batches, a nested list instead of a tensor, and a tensor on another device
    (:func:`on_another_device`)."""
    batch = st.lists(st.integers(0, 3), max_size=2).map(tuple)
    return {
        "shape": st.one_of(
            batch.map(lambda b: torch.randn(*b, dim + 1)),
            batch.map(lambda b: torch.randn(*b, dim, 1)),
            st.just(torch.tensor(1.0)),
        ),
        "dtype": st.sampled_from([torch.float64, torch.int64, torch.bool, torch.float16]).map(
            lambda dt: torch.zeros(2, dim, dtype=dt)
        ),
        "nan": st.just(torch.full((2, dim), float("nan"))),
        "inf": st.sampled_from([float("inf"), -float("inf")]).map(
            lambda v: torch.full((2, dim), v)
        ),
        "large": st.sampled_from([1e4, 1e15]).map(lambda v: torch.full((2, dim), v)),
        "overflow": st.just(torch.full((2, dim), 3e38)),
        "empty": batch.map(lambda b: torch.zeros(0, *b, dim)),
        "type": st.just([[0.0] * dim]),
        "device": st.builds(on_another_device, st.just(dim)),
    }


def malformed(dim: int, kinds: Iterable[str] = KINDS) -> st.SearchStrategy[tuple[str, Any]]:
    """``(kind, input)`` pairs of the given ``kinds`` of :func:`malformed_inputs`."""
    strategies = malformed_inputs(dim)
    return st.one_of(*(strategies[k].map(lambda v, k=k: (k, v)) for k in kinds))


def _names(message: str, argument: str) -> bool:
    """Whether ``message`` names ``argument`` (or ``value``, torch's name for the argument of
    ``log_prob``) as a whole word."""
    return any(re.search(rf"\b{re.escape(name)}\b", message) for name in (argument, "value"))


def assert_clean_outcome(
    fn: Callable[[Any], Any],
    value: Any,
    argument: str,
    expected_shape: tuple[int, ...] | None,
) -> None:
    """Call ``fn(value)``: it must raise a ``ValueError`` / ``TypeError`` naming ``argument``,
    or return finite tensors (the last of shape ``expected_shape`` when given).

    Any other exception fails the test with a one-line message saying where it was raised
    (rendering tracebacks through torch's large modules would cost a second per failure)."""
    try:
        result = fn(value)
    except Exception as err:
        if isinstance(err, (ValueError, TypeError)) and _names(str(err), argument):
            return
        where = traceback.extract_tb(err.__traceback__)[-1]
        pytest.fail(
            f"{type(err).__name__} for {argument}={value!r}, raised at {where.filename}:"
            f"{where.lineno}: {err}",
            pytrace=False,
        )
    results = result if isinstance(result, tuple) else (result,)
    for r in results:
        assert torch.isfinite(r).all(), f"non-finite result for {value!r}"
    if expected_shape is not None:
        assert results[-1].shape == expected_shape
