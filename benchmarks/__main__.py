"""Regenerate the benchmarks page of the documentation from the committed results, or re-run
every comparison against Pyro, zuko, normflows, nflows and scikit-learn first.

The page, ``docs/benchmarks.md``, shows for each comparison the tables of times, ratios to the
fastest competitor and memory peaks, the machine, library versions, dates and exact commands of
each run, read from the results files committed under ``benchmarks/``; the committed figures are
copied to ``docs/benchmarks/``.

    python -m benchmarks                                  # the page, from the committed results
    python -m benchmarks --check                          # exit 1 if the page is out of date
    python -m benchmarks --rerun --data ../shared/data    # re-run every comparison, then the page
    python -m benchmarks --rerun --data ../shared/data --only planar-speed vae-speed
"""

from __future__ import annotations

import argparse
import filecmp
import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
PAGE = HERE.parent / "docs" / "benchmarks.md"
EBM_EPOCH, EBM_AIS = "PCD-1 epoch", "AIS, 14,500 β × 100 runs"
MEMORY_KEYS = ("peak_mib", "first_call_mib")  # the peaks of a memory block (benchmarks.memory)


@dataclass(frozen=True)
class Entry:
    """One competitor's result for one measure of a run."""

    measure: str
    competitor: str
    seconds: float
    peak_mib: float | None = None  # a later call; None: not measured
    first_call_mib: float | None = None
    note: str = ""


@dataclass(frozen=True)
class Run:
    """One run of a comparison: its conditions (one line each) and its entries."""

    title: str
    conditions: list[str]
    entries: list[Entry]


@dataclass(frozen=True)
class Comparison:
    """A comparison: how to re-run it, where its results are and how to read them."""

    name: str
    title: str
    what: str
    argv: tuple[str, ...]  # "{data}" is replaced by the data directory
    minutes: int  # rough duration of a rerun on the project's 2-core machine
    details: str  # the detailed results page, relative to benchmarks/
    results: str  # the results file the page reads, relative to benchmarks/
    read: Callable[[Comparison], list[Run]]
    figures: tuple[tuple[str, str], ...] = ()  # (path relative to benchmarks/, caption)
    caveat: str = ""  # what the committed runs do not show by themselves

    def command(self) -> str:
        """The rerun command as shown on the page (``DATA``: the folder given by ``--data``)."""
        return " ".join(["python", *self.argv]).replace("{data}", "DATA")


def _threads(n: int) -> str:
    """``1 thread``, ``2 threads``."""
    return f"{n} thread{'s' if n > 1 else ''}"


def _entry(measure: str, name: str, seconds: float, memory: dict, note: str = "") -> Entry:
    """An entry with its peaks from a results file's memory block (``None``: not measured)."""
    peaks = (memory.get(key, {}).get(measure, {}).get(name) for key in MEMORY_KEYS)
    return Entry(measure, name, seconds, *peaks, note=note)


def _memory_conditions(memory: dict) -> list[str]:
    """How, when and with which libraries the memory block was measured."""
    if not memory:
        return ["Memory: not measured."]
    return [
        f"Memory: {memory['call']}; {memory['method']}; measured by `{memory['command']}` on "
        f"{memory['machine']}.",
        f"Libraries (recorded by the memory pass): {memory['versions']}.",
    ]


def _entries(rows: list[dict], memory: dict) -> list[Entry]:
    """The entries of rows with ``measure`` and ``median_ms`` or ``median_s``."""
    entries = []
    for row in rows:
        times = row.get("median_s") or {n: ms / 1e3 for n, ms in row["median_ms"].items()}
        entries += [_entry(row["measure"], n, seconds, memory) for n, seconds in times.items()]
    return entries


def read_runs(comparison: Comparison) -> list[Run]:
    """A results file written by the planar, flows or VAE speed script: one run, or a list
    ``runs``; rows of ``measure`` with ``median_ms`` or ``median_s``; a ``memory`` block."""
    data = json.loads((HERE / comparison.results).read_text())
    memory = data.get("memory", {})
    runs = []
    for run in data.get("runs", [data]):
        conditions = [f"Timed by `{run['command']}` on {run['machine']}."]
        if "kept_blocks" in run:
            conditions.append(
                f"Medians over {run['kept_blocks']} quiet blocks of interleaved calls "
                f"({run['dropped_blocks']} dropped because other processes used the CPU)."
            )
        conditions += [f"Timed in {run['calls']}."] if "calls" in run else []
        conditions += [run["note"]] if "note" in run else []
        conditions += _memory_conditions(memory)
        title = _threads(run["threads"]) if "threads" in run else ""
        runs.append(Run(title, conditions, _entries(run["rows"], memory)))
    return runs


def read_ebm(comparison: Comparison) -> list[Run]:
    """``speed_runs.jsonl`` of the EBM speed script: the latest summary row per thread count
    (rows with ``kept_blocks``: the interleaved, quiet-block runs), with its memory block."""
    rows = [json.loads(line) for line in (HERE / comparison.results).read_text().splitlines()]
    latest = {row["threads"]: row for row in rows if "kept_blocks" in row}
    runs = []
    for threads, row in sorted(latest.items()):
        memory = row.get("memory", {})
        entries = [
            _entry(EBM_EPOCH, name, seconds, memory)
            for name, seconds in row["median_seconds"].items()
        ]
        note = f"log Z {row['ais_log_z']:.2f} ± {row['ais_std_error']:.2f}"
        ais = statistics.median(row["ais_seconds"])
        entries.append(Entry(EBM_AIS, "flowdist float32", ais, note=note))
        conditions = [
            f"Timed by `{row['command']}` on {row['machine']}, with {_threads(threads)}: one "
            f"epoch of each competitor per block, interleaved; medians over the "
            f"{row['kept_blocks']} blocks kept ({row['dropped_blocks']} dropped because other "
            "processes used the CPU).",
            *_floor_conditions(row),
            *_memory_conditions(memory),
        ]
        runs.append(Run(_threads(threads), conditions, entries))
    return runs


def _floor_conditions(row: dict) -> list[str]:
    """What the floor timed beside the epochs (its matrix products alone) leaves for the rest of
    a 3× faster epoch than scikit-learn on float32 data."""
    if "floor_seconds" not in row:
        return []
    floor, sklearn = row["floor_seconds"], row["median_seconds"]["sklearn float32"]
    return [
        f"Floor: the three matrix products of the 500 PCD-1 updates alone (two in bfloat16, "
        f"the gradient's in int8) take {floor:.3f} s (timed in the same blocks); an epoch 3× "
        f"faster than scikit-learn on float32 data ({sklearn / 3:.3f} s) would leave "
        f"{sklearn / 3 - floor:.3f} s for the random bits, the sigmoids, the rounding and the "
        "updates."
    ]


def read_planar_kl(comparison: Comparison) -> list[Run]:
    """``results.json`` of the planar KL benchmark: ms per training step and the KL reached."""
    data = json.loads((HERE / comparison.results).read_text())
    meta = data["meta"]
    entries = [
        Entry(
            f"{r['energy']}, K = {r['K']}: training step",
            label,
            r[key]["ms_per_step"] / 1e3,
            note=f"KL {r[key]['kl']:.4f} ± {r[key]['se']:.4f}",
        )
        for r in data["results"]
        for key, label in (("flowdist", "flowdist"), ("pyro", "Pyro Planar"))
    ]
    conditions = [
        f"Timed by `{meta['command']}` on {meta['machine']}; {meta['date']}.",
        f"Budget: {meta['budget']}.",
        f"Libraries: {meta['versions']}.",
        *_memory_conditions({}),
    ]
    return [Run("", conditions, entries)]


COMPARISONS = (
    Comparison(
        "planar-speed",
        "Planar flow: reverse-KL training pass",
        "K = 32 planar steps, d = 2, batch 4096, energy U1: flowdist's fused pass against Pyro's "
        "`Planar` and a hand-written torch loop, and flowdist's other passes.",
        ("-m", "benchmarks.planar_speed.run"),
        1,
        "planar_speed/RESULTS.md",
        "planar_speed/results.json",
        read_runs,
    ),
    Comparison(
        "planar-kl",
        "Planar flows on U1–U4 at equal budget",
        "Both libraries' planar flows fitted to the energies of Rezende & Mohamed (2015) from the "
        "same initial parameters, noise and optimizer; time per step and the KL reached.",
        ("benchmarks/planar_kl/run.py",),
        21,
        "planar_kl/RESULTS.md",
        "planar_kl/results.json",
        read_planar_kl,
        (
            ("planar_kl/densities_flowdist.png", "flowdist's planar flows (exact density)"),
            ("planar_kl/densities_pyro.png", "Pyro's planar flows (sample histograms)"),
        ),
        "The committed run timed its steps on a machine shared with other jobs (load 4 to 8): "
        "compare its times roughly. Its subject is the KL reached at equal budget.",
    ),
    Comparison(
        "flows-speed",
        "Coupling, autoregressive and Glow layers",
        "Density (`log_prob` + backward) and sampling of 64-dimensional coupling and MAF flows "
        "(batch 1024) and of ActNorm + 1x1 convolution and a Glow step on 12x16x16 images "
        "(batch 64), against zuko, nflows, normflows and Pyro.",
        (
            "-m",
            "benchmarks.flows.speed",
            "--blocks",
            "9",
            "--calls",
            "3",
            "--out",
            "benchmarks/flows/speed_quiet.json",
        ),
        4,
        "flows/RESULTS.md",
        "flows/speed_quiet.json",
        read_runs,
        tuple(
            (f"flows/digits/figures/digits_{model}.png", f"{label} samples, 8x8 digits")
            for model, label in (
                ("nice", "NICE"),
                ("realnvp", "RealNVP"),
                ("glow", "Glow"),
                ("maf", "MAF"),
            )
        ),
    ),
    Comparison(
        "ebm-speed",
        "RBM training and AIS",
        "One PCD-1 epoch of a 784-500 RBM on 50,000 binarized MNIST images (batch 100): flowdist "
        "(float32, and bfloat16 matrix products) against scikit-learn's `BernoulliRBM` on float32 "
        "and float64 data; AIS on that RBM.",
        (
            "-m",
            "benchmarks.ebm.speed",
            "{data}/binarized_mnist.npz",
            "--out",
            "benchmarks/ebm/speed_runs.jsonl",
        ),
        3,
        "ebm/RESULTS.md",
        "ebm/speed_runs.jsonl",
        read_ebm,
        (
            ("ebm/figures/ebm_rbm16_samples.png", "RBM 64-16, Gibbs samples (digits)"),
            ("ebm/figures/ebm_rbm64_samples.png", "RBM 64-64, Gibbs samples (digits)"),
            ("ebm/figures/ebm_dbm_samples.png", "DBM 64-32-16, Gibbs samples (digits)"),
            ("ebm/figures/grbm_gibbs_samples.png", "Gaussian RBM, Gibbs samples"),
            ("ebm/figures/grbm_nuts_samples.png", "Gaussian RBM, Pyro NUTS samples"),
        ),
        "The 3x target is met against scikit-learn on the data as shipped (it converts the "
        "uint8 pixels to float64), with flowdist's bfloat16 products; not against scikit-learn "
        "fed float32 (2.2-2.46x by the medians of the last two runs).",
    ),
    Comparison(
        "vae-speed",
        "VAE training epoch",
        "One epoch of the 784-400-50 VAE on 50,000 binarized MNIST images (batch 128): "
        "flowdist's `fit` step and flowdist under Pyro's `SVI` against hand-written PyTorch and "
        "Pyro's VAE example.",
        (
            "-m",
            "benchmarks.vae.speed",
            "{data}/binarized_mnist.npz",
            "--epochs",
            "2",
            "--threads",
            "1",
        ),
        6,
        "vae/RESULTS.md",
        "vae/speed.json",
        read_runs,
        tuple(
            (f"vae/digits/figures/{name}.png", caption)
            for name, caption in (
                ("vae_reconstructions", "VAE reconstructions, 8x8 digits"),
                ("vae_samples", "VAE prior samples"),
                ("vae_latent_map", "VAE 2-D latent map"),
                ("cvae_generation", "Conditional VAE, one row per label"),
            )
        ),
    ),
)


def _seconds(seconds: float) -> str:
    """A median time: ms below a second, s above."""
    return f"{seconds * 1e3:.2f} ms" if seconds < 1 else f"{seconds:.1f} s"


def _mib(value: float | None) -> str:
    """A peak in MiB, or — where it was not measured."""
    return "—" if value is None else f"{value:.1f}"


def table(entries: list[Entry]) -> list[str]:
    """The markdown table of a run: time, ratio to the fastest of the same measure, memory."""
    header = ["measure", "competitor", "median time", "× fastest", "peak MiB", "first-call MiB"]
    notes = any(e.note for e in entries)
    header += ["notes"] if notes else []
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    fastest: dict[str, float] = {}
    for e in entries:
        fastest[e.measure] = min(fastest.get(e.measure, e.seconds), e.seconds)
    shown = set()
    for e in entries:
        alone = sum(other.measure == e.measure for other in entries) == 1
        cells = ["" if e.measure in shown else e.measure, e.competitor, _seconds(e.seconds)]
        cells += ["—" if alone else f"{e.seconds / fastest[e.measure]:.2f}"]
        cells += [_mib(e.peak_mib), _mib(e.first_call_mib), *([e.note] if notes else [])]
        lines.append("| " + " | ".join(cells) + " |")
        shown.add(e.measure)
    return lines


def figure_name(comparison: Comparison, path: str) -> str:
    """The figure's file name under ``docs/benchmarks/``."""
    return f"{comparison.name}-{Path(path).name}"


def section(comparison: Comparison) -> list[str]:
    """A comparison's part of the page: what it is, its runs' conditions and tables, figures."""
    lines = [f"## {comparison.title}", "", comparison.what, ""]
    lines += [
        f"Comparison `{comparison.name}`; detailed results, method and caveats: "
        f"`benchmarks/{comparison.details}`; results file: `benchmarks/{comparison.results}`.",
        "",
    ]
    lines += [f"!!! warning\n    {comparison.caveat}", ""] if comparison.caveat else []
    for run in comparison.read(comparison):
        lines += [f"### {run.title}", ""] if run.title else []
        lines += [f"- {line}" for line in run.conditions]
        lines += ["", *table(run.entries), ""]
    for path, caption in comparison.figures:
        lines += [f"![{caption}](benchmarks/{figure_name(comparison, path)})", ""]
    return lines


def render_page() -> str:
    """The benchmarks page, from the results committed under ``benchmarks/``."""
    lines = [
        "<!-- Generated by `python -m benchmarks` from the results committed under benchmarks/;"
        " edit those and regenerate, not this page. -->",
        "",
        "# Benchmarks",
        "",
        "flowdist against Pyro, zuko, normflows, nflows, scikit-learn and hand-written PyTorch. "
        "In every comparison the competitors run in one process, interleaved call by call, so "
        "that ratios compare timings taken under the same conditions. Most runs were taken on a "
        "shared 2-core machine while other jobs ran: read each comparison's detailed results "
        "(named in its section) for the noise and the caveats before quoting a number.",
        "",
        "- **median time**: median wall-clock time of one call (ms) or of one epoch or AIS run "
        "(s).",
        "- **× fastest**: this time divided by the fastest competitor's time for the same "
        "measure, in the same run (1.00: the fastest; —: a measure of flowdist alone).",
        "- **peak MiB**: peak growth of the resident set during one call, measured in a fresh "
        "process per competitor after its setup, on the call after the first; so it counts the "
        "activations, graph, gradients and scratch space of a call, not the libraries, model or "
        "data. **first-call MiB**: the same for the first call after the setup, which also holds "
        "what a first call creates and keeps (optimizer state, caches) and one-off work such as "
        "lazy imports. How it is read: `benchmarks/memory.py`. —: not measured.",
        "",
        "## Regenerate",
        "",
        "```bash",
        "python -m benchmarks           # this page from the committed results (seconds)",
        "python -m benchmarks --check   # exit 1 if this page is out of date",
        "python -m benchmarks --rerun --data ../shared/data  # re-run every comparison first",
        "python -m benchmarks --rerun --data ../shared/data --only planar-speed vae-speed",
        "```",
        "",
        "A full rerun takes roughly "
        f"{sum(c.minutes for c in COMPARISONS)} minutes on the project's 2-core CPU (estimated "
        "from the committed runs; each comparison prints its own wall time); `DATA` is the "
        "folder given by `--data` (it holds `binarized_mnist.npz`). Each comparison's script "
        "also measures the memory peaks after its timings; `--memory-only` (planar, flows and "
        "VAE scripts) measures them alone and keeps the committed times.",
        "",
        "| comparison | command | rerun, about |",
        "|---|---|---|",
        *[f"| `{c.name}` | `{c.command()}` | {c.minutes} min |" for c in COMPARISONS],
        "",
    ]
    for comparison in COMPARISONS:
        lines += section(comparison)
    return "\n".join(lines)


def figures(page: Path) -> dict[Path, Path]:
    """Each committed figure and where the page beside ``page`` links it."""
    folder = page.with_suffix("")
    return {
        HERE / path: folder / figure_name(c, path) for c in COMPARISONS for path, _ in c.figures
    }


def write_page(page: Path) -> None:
    """Write the page and copy the figures beside it, removing figures no longer linked."""
    copies = figures(page)
    folder = page.with_suffix("")
    folder.mkdir(parents=True, exist_ok=True)
    for stale in set(folder.glob("*.png")) - set(copies.values()):
        stale.unlink()
    for source, target in copies.items():
        shutil.copyfile(source, target)
    page.write_text(render_page())


def is_current(page: Path) -> bool:
    """Whether ``page`` and its figures are what :func:`write_page` would write."""
    return (
        page.exists()
        and page.read_text() == render_page()
        and all(t.exists() and filecmp.cmp(s, t, shallow=False) for s, t in figures(page).items())
    )


def rerun(chosen: list[Comparison], data: Path | None) -> bool:
    """Run each comparison's script from the repository root; whether all succeeded."""
    ok = True
    for c in chosen:
        argv = [a.replace("{data}", str(data)) for a in c.argv]
        print(f"== {c.name}: python {' '.join(argv)}", flush=True)
        start = time.perf_counter()
        status = subprocess.run([sys.executable, *argv], cwd=HERE.parent).returncode
        print(f"== {c.name}: exit {status} after {time.perf_counter() - start:.0f} s", flush=True)
        ok &= status == 0
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PAGE, help="the page to write")
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is stale")
    parser.add_argument("--rerun", action="store_true", help="re-run the comparisons first")
    parser.add_argument("--data", type=Path, help="folder with binarized_mnist.npz (--rerun)")
    parser.add_argument(
        "--only",
        nargs="*",
        choices=[c.name for c in COMPARISONS],
        help="with --rerun: re-run only these (the page always shows every comparison)",
    )
    args = parser.parse_args(argv)
    chosen = [c for c in COMPARISONS if not args.only or c.name in args.only]
    if args.data is not None and not args.rerun:
        parser.error("--data applies to --rerun: add --rerun to re-run the comparisons")
    if args.rerun and args.data is None and any("{data}" in " ".join(c.argv) for c in chosen):
        parser.error("--rerun of the EBM and VAE comparisons needs --data")
    if args.check:
        if is_current(args.out):
            return 0
        print(f"{args.out} is out of date: run `python -m benchmarks`", file=sys.stderr)
        return 1
    ok = rerun(chosen, args.data) if args.rerun else True
    write_page(args.out)
    print(f"wrote {args.out} and its figures")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
