"""Noise-aware timing for benchmarks on shared machines.

Competitors are interleaved (one call of each, in an order shuffled afresh every round, so that
no competitor always follows the same one) within *blocks*; for every block we read
the machine-wide busy CPU time from ``/proc/stat`` and subtract this process's own CPU time. A
block during which other processes used more than ``max_other`` of a core is dropped, and the
statistics are medians over the kept calls. Ratios are only ever taken between timings of the
same run. What the results files record with each run (the machine, the library versions, the
command) comes from here too.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import random
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

__all__ = ["Timings", "command_line", "interleave", "library_versions", "machine_summary"]

#: The libraries the benchmarks compare, as their distributions are named.
LIBRARIES = ("torch", "pyro-ppl", "zuko", "normflows", "nflows", "scikit-learn", "flowdist")


def _busy_seconds() -> float | None:
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
    except OSError:  # not Linux: no filtering
        return None
    ticks = [int(v) for v in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")


@dataclass
class Timings:
    """Per-competitor call times (seconds) from the kept blocks."""

    times: dict[str, list[float]] = field(default_factory=dict)
    kept_blocks: int = 0
    dropped_blocks: int = 0

    def median_ms(self, name: str) -> float:
        return 1e3 * statistics.median(self.times[name])

    def ratio(self, slow: str, fast: str) -> float:
        """``median(slow) / median(fast)``: how many times faster ``fast`` is."""
        return statistics.median(self.times[slow]) / statistics.median(self.times[fast])


def interleave(
    fns: dict[str, Callable[[], object]],
    *,
    blocks: int = 20,
    calls: int = 5,
    warmup: int = 3,
    max_other: float = 0.25,
    max_blocks: int | None = None,
    seed: int = 0,
    settle: float = 0.0,
) -> Timings:
    """Time each function ``calls`` times per block, interleaved, until ``blocks`` quiet blocks
    were kept (or ``max_blocks`` were run, default ``4 * blocks``). Each round calls every
    function once, in an order drawn from ``seed``: in a fixed order each competitor would
    always run after the same one, in the cache and allocator state that one leaves.

    ``settle`` seconds of sleep precede every timed call, so that the thread pools of the
    previous call are idle: OpenBLAS's threads spin for about 0.1 s after a call, and the call
    timed next would otherwise share the cores with them."""
    order = random.Random(seed)
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    result = Timings({name: [] for name in fns})
    max_blocks = max_blocks or 4 * blocks
    for _ in range(max_blocks):
        if result.kept_blocks >= blocks:
            break
        block: dict[str, list[float]] = {name: [] for name in fns}
        busy0, cpu0, wall0 = _busy_seconds(), time.process_time(), time.perf_counter()
        for _ in range(calls):
            for name, fn in order.sample(list(fns.items()), len(fns)):
                time.sleep(settle)
                start = time.perf_counter()
                fn()
                block[name].append(time.perf_counter() - start)
        busy1, cpu1, wall1 = _busy_seconds(), time.process_time(), time.perf_counter()
        other = None if busy0 is None else (busy1 - busy0) - (cpu1 - cpu0)
        if other is not None and other > max_other * (wall1 - wall0):
            result.dropped_blocks += 1
            continue
        result.kept_blocks += 1
        for name, values in block.items():
            result.times[name] += values
    if result.kept_blocks == 0:
        raise RuntimeError("every block was disturbed by other processes; rerun when quiet")
    return result


def machine_summary() -> str:
    """One line: CPU, core count, torch version and threads, date."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), {time.strftime('%Y-%m-%d %H:%M %Z')}"
    )


def library_versions() -> str:
    """One line: the installed version of every library the benchmarks compare."""
    found = []
    for name in LIBRARIES:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def command_line() -> str:
    """The command that started this process, as typed from the repository root."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    head = f"python -m {spec.name}" if spec is not None else f"python {sys.argv[0]}"
    return " ".join([head, *map(shlex.quote, sys.argv[1:])])
