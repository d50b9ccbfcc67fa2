"""The benchmarks page (``docs/benchmarks.md``) is generated from the committed results, is up
to date, and every results table on it has a time, a ratio and a memory column; the memory
measurement behind that column reads a known allocation exactly."""

from __future__ import annotations

import functools
import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def benchmarks() -> ModuleType:
    """``benchmarks/__main__.py`` (the repository root is not on the path under plain
    ``pytest``; spawned children inherit the path)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(ROOT))
        yield importlib.import_module("benchmarks.__main__")


def _tables(page: str) -> list[list[str]]:
    """The header cells of each results table."""
    return [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in page.splitlines()
        if line.startswith("| measure |")
    ]


def test_page_is_generated_from_the_committed_results(benchmarks, tmp_path):
    page = tmp_path / "benchmarks.md"
    assert benchmarks.main(["--out", str(page)]) == 0
    text = page.read_text()
    runs = [run for c in benchmarks.COMPARISONS for run in c.read(c)]
    tables = _tables(text)
    assert len(tables) == len(runs) >= 5
    for header in tables:
        assert {"median time", "× fastest", "peak MiB", "first-call MiB"} <= set(header)
    for comparison in benchmarks.COMPARISONS:
        assert f"## {comparison.title}" in text
        assert f"`{comparison.command()}`" in text
    for source, copy in benchmarks.figures(page).items():
        assert copy.read_bytes() == source.read_bytes()
        assert f"(benchmarks/{copy.name})" in text


def test_committed_page_is_current(benchmarks):
    assert benchmarks.is_current(benchmarks.PAGE), "stale: run `python -m benchmarks`"


def test_check_flags_a_stale_page(benchmarks, tmp_path):
    page = tmp_path / "benchmarks.md"
    benchmarks.write_page(page)
    assert benchmarks.main(["--check", "--out", str(page)]) == 0
    page.write_text(page.read_text().replace("× fastest", "x fastest"))
    assert benchmarks.main(["--check", "--out", str(page)]) == 1


@pytest.mark.parametrize("name", ["planar-speed", "flows-speed", "vae-speed"])
def test_measured_comparisons_have_every_memory_peak(benchmarks, name):
    (comparison,) = [c for c in benchmarks.COMPARISONS if c.name == name]
    entries = [e for run in comparison.read(comparison) for e in run.entries]
    assert entries and all(e.peak_mib is not None for e in entries)
    assert all(e.first_call_mib is not None for e in entries)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_peak_memory_reads_a_known_allocation(benchmarks):
    from benchmarks.memory import calibration, peak_memory

    peak = peak_memory(functools.partial(calibration, 32), threads=1)
    assert 31.5 < peak.peak_mib < 33.0  # a 32-MiB tensor, page-exact
    assert peak.first_call_mib >= peak.peak_mib - 0.5
    assert peak.before_mib > 0 and "VmHWM" in peak.method
