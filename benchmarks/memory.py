"""Peak memory of a benchmark competitor's call, measured in a fresh process.

A competitor is given as a *factory*: a picklable callable (a module-level function, or a
:func:`functools.partial` of one) that builds the model, loads the data and returns the
zero-argument call that the timings time. :func:`peak_memory` runs the factory in a fresh child
process (``multiprocessing`` 'spawn': nothing of the parent or of another competitor is resident
there), then measures two calls: the first after the setup, and the next one.

What the number means, on CPU: the **growth of the resident set during one call**, in MiB. The
child first fixes glibc's mmap threshold at 16 KiB (``mallopt``), so that every block of 16 KiB
or more is a mapping of its own, returned to the kernel when freed. After the imports and the
factory's setup, and before each measured call, it collects garbage, hands freed heap pages back
(``malloc_trim``), reads its resident set (``VmRSS`` of ``/proc/self/status``), resets the
kernel's high-water mark (writing ``5`` to ``/proc/self/clear_refs``), makes the call and reads
the high-water mark (``VmHWM``). The difference is the peak of the memory that the call holds at
once beyond what was resident before it: activations, the autograd graph, gradients, scratch
buffers of the threads. It does not count the libraries, the model's parameters or the data,
resident before. It is exact to the page and reproducible to about 0.5 MiB between fresh
processes (smaller objects share the heap); with glibc's default, adaptive threshold freed blocks
stay cached in the heap and the same call read anywhere from 5.5 to 14.8 MiB. It is the memory a
call needs, not what a process with the default allocator may keep resident after it.

``peak_mib`` is the second call: the steady state of a training loop. ``first_call_mib`` is the
first call, which also counts what a first call creates and keeps (optimizer state, caches) and
one-off work (lazy imports: Pyro's SVI builds its torch optimizers in its first step, which
imports ``torch._dynamo`` and sympy, about 70 MiB). Where the high-water mark cannot be reset
(Linux before 4.0), readings also include earlier peaks, so they are upper bounds, and the
method says so.

On CUDA (``device="cuda"``): ``torch.cuda.max_memory_allocated`` after
``torch.cuda.reset_peak_memory_stats``, minus ``torch.cuda.memory_allocated`` before the call:
the bytes of the tensors the call allocates through torch's caching allocator, not the pool it
reserves nor the CUDA context.

    from benchmarks.memory import peak_memory
    peak = peak_memory(functools.partial(make_call, "flowdist"))  # make_call returns the call
    print(peak.peak_mib, peak.first_call_mib, peak.method)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import multiprocessing
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import torch

from benchmarks.timing import command_line, library_versions, machine_summary

__all__ = ["Factory", "MemoryPeak", "calibration", "memory_record", "peak_memory"]

#: Builds a competitor (model, data) and returns the call whose peak memory is measured.
Factory = Callable[[], Callable[[], object]]

_MIB = 2**20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
_MMAP_THRESHOLD = 16 * 1024


@dataclass(frozen=True)
class MemoryPeak:
    """Peak memory of a competitor's calls beyond what was in use just before each, in MiB."""

    peak_mib: float  # a later call (the second): the memory one call needs in steady state
    first_call_mib: float  # the first call after the setup, with what it creates and keeps
    before_mib: float  # resident set (CPU) or allocated tensors (CUDA) before the first call
    method: str  # how it was read


def _status_mib(field: str) -> float:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in MiB."""
    try:
        with open("/proc/self/status") as f:
            line = next(line for line in f if line.startswith(f"{field}:"))
    except (OSError, StopIteration) as err:
        raise RuntimeError(f"CPU peak memory needs Linux's /proc/self/status ({field})") from err
    return int(line.split()[1]) / 1024


def _glibc() -> ctypes.CDLL | None:
    """The C library if it is glibc (``mallopt``, ``malloc_trim``), else ``None``."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def _reset_high_water_mark() -> bool:
    """Reset ``VmHWM`` to the current resident set (Linux 4.0 and later)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def _growth(call: Callable[[], object], device: str, libc: ctypes.CDLL | None) -> float:
    """Peak growth of the memory in use during one ``call()``, in MiB."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        call()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before) / _MIB
    gc.collect()
    if libc is not None:
        libc.malloc_trim(0)  # freed heap pages back to the kernel: reusing them shows as growth
    before = _status_mib("VmRSS")
    _reset_high_water_mark()
    call()
    return _status_mib("VmHWM") - before


def _measure(factory: Factory, threads: int, device: str) -> MemoryPeak:
    """In the child: set up, then measure the first call and the one after it."""
    torch.set_num_threads(threads)
    libc = _glibc()
    if libc is not None:  # every block of 16 KiB or more: its own mapping, unmapped on free
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, 2 * _MMAP_THRESHOLD)
    call = factory()
    if torch.device(device).type == "cuda":
        before = torch.cuda.memory_allocated(device) / _MIB
        method = "CUDA max_memory_allocated growth"
    else:
        before = _status_mib("VmRSS")
        method = "VmHWM - VmRSS before"
        threshold = f", glibc mmap threshold {_MMAP_THRESHOLD // 1024} KiB"
        method += threshold if libc else ", not glibc: heap caching makes readings vary"
        if not _reset_high_water_mark():
            method += ", high-water mark not resettable: an upper bound"
    first = _growth(call, device, libc)
    return MemoryPeak(_growth(call, device, libc), first, before, method)


def peak_memory(factory: Factory, *, threads: int | None = None, device: str = "cpu") -> MemoryPeak:
    """Peak memory of the first and of a later call of the competitor that ``factory`` builds,
    in a fresh process with ``threads`` torch threads (default: this process's).

    ``factory`` must be picklable: a module-level function or a ``functools.partial`` of one.
    """
    threads = threads or torch.get_num_threads()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as child:
        return child.submit(_measure, factory, threads, device).result()


def memory_record(
    competitors: Iterable[tuple[str, str, Factory]], *, call: str, **options: int | str
) -> dict:
    """Measure each ``(measure, competitor, factory)`` in its own fresh process and return the
    block that the results files store beside the times: ``peak_mib[measure][competitor]`` (a
    later call) and ``first_call_mib[measure][competitor]``, in MiB at 0.1 resolution, what one
    ``call`` is, how it was read, the command, the machine and the library versions.
    ``options`` go to :func:`peak_memory`."""
    record: dict = {"peak_mib": {}, "first_call_mib": {}}
    methods = set()
    for measure, name, factory in competitors:
        peak = peak_memory(factory, **options)
        first = f"first call {peak.first_call_mib:.1f}"
        print(f"{measure} | {name}: {peak.peak_mib:.1f} MiB ({first})", flush=True)
        record["peak_mib"].setdefault(measure, {})[name] = round(peak.peak_mib, 1)
        record["first_call_mib"].setdefault(measure, {})[name] = round(peak.first_call_mib, 1)
        methods.add(peak.method)
    return {
        "command": command_line(),
        "machine": machine_summary(),
        "versions": library_versions(),
        "call": call,
        "method": "; ".join(sorted(methods)),
        **record,
    }


def calibration(mib: int, device: str = "cpu") -> Callable[[], object]:
    """A competitor of known size, to check the measurement: each call writes a fresh
    ``mib``-MiB float32 tensor on ``device`` (every page resident) and frees it."""

    def call() -> float:
        return torch.ones(mib * _MIB // 4, device=device).sum().item()

    return call
