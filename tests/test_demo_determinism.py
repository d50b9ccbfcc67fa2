"""``flowdist demo`` is deterministic for a fixed seed: the same report — every number and every
figure, byte for byte — twice, and another report for another seed.

Only timings (training seconds, sampling milliseconds, total time) cannot be fixed by a seed;
the tests replace the clock by a counter, so that the reports must agree everywhere else. Every
section runs, in sequence, in quick mode (about 17 s a report here).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from flowdist.cli import DEMO_SECTIONS, run_demo


@pytest.fixture
def counting_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """``time.perf_counter`` counts its calls: every timing becomes a function of the code
    path alone."""
    ticks = itertools.count()
    monkeypatch.setattr(time, "perf_counter", lambda: float(next(ticks)))


def _report(out: Path, seed: int, sections: Sequence[str]) -> dict[str, bytes]:
    """Run the demo in quick mode; every file of the report by its path."""
    run_demo(out, quick=True, seed=seed, progress=False, sections=sections)
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _assert_same(first: dict[str, bytes], second: dict[str, bytes]) -> None:
    assert first.keys() == second.keys()
    differing = [name for name in first if first[name] != second[name]]
    assert not differing, f"the same seed wrote different {differing}"


def test_demo_is_deterministic_for_a_seed(tmp_path, counting_clock):
    first = _report(tmp_path / "first", 0, DEMO_SECTIONS)
    assert {"report.md", "report.html", "figures/vae_samples.png"} <= first.keys()
    _assert_same(first, _report(tmp_path / "again", 0, DEMO_SECTIONS))
    other = _report(tmp_path / "other", 1, ("flowdist.vae.demo",))  # the VAEs, another seed
    figures = [name for name in other if name.startswith("figures/")]
    assert figures and all(other[name] != first[name] for name in figures)
