"""The benchmarks' timer: every competitor is called the same number of times, in an order
shuffled afresh each round and fixed by the seed."""

import itertools
import time

from benchmarks.timing import interleave


def _orders(seed: int) -> tuple[list[tuple[str, ...]], dict]:
    calls: list[str] = []
    fns = {name: (lambda name=name: calls.append(name)) for name in "abcd"}
    t = interleave(fns, blocks=3, calls=4, warmup=1, max_other=1e9, seed=seed)
    timed = calls[len(fns) :]  # after one warm-up call each
    return [tuple(timed[i : i + len(fns)]) for i in range(0, len(timed), len(fns))], t.times


def test_rounds_call_everyone_once_in_shuffled_seeded_orders():
    rounds, times = _orders(0)
    assert len(rounds) == 3 * 4
    assert all(sorted(r) == list("abcd") for r in rounds)
    assert len(set(rounds)) > 1  # not one fixed order
    assert {r[0] for r in rounds} != {rounds[0][0]}  # nobody always goes first
    assert all(len(v) == 3 * 4 for v in times.values())
    assert _orders(0)[0] == rounds and _orders(1)[0] != rounds


def test_settle_sleeps_before_every_timed_call_and_is_not_timed():
    stamps: list[tuple[float, float]] = []

    def call() -> None:
        start = time.perf_counter()
        stamps.append((start, time.perf_counter()))

    t = interleave({"a": call, "b": call}, blocks=2, calls=1, warmup=0, max_other=1e9, settle=0.02)
    gaps = [b[0] - a[1] for a, b in itertools.pairwise(stamps)]
    assert len(stamps) == 4 and min(gaps) >= 0.02
    assert max(max(v) for v in t.times.values()) < 0.02  # the sleep is outside the timing
