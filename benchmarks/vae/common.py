"""Shared plumbing of the budgeted reproduction scripts: arguments, seeding, result lines.

Budgets are process CPU time (``time.process_time``) at one thread by default: what a busy
shared machine cannot inflate, unlike wall-clock time."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pyro
import torch


def budget_parser(description: str, data_help: str, minutes: float) -> argparse.ArgumentParser:
    """Arguments every script takes: the data path, the training budget, threads, output."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("data", type=Path, help=data_help)
    parser.add_argument(
        "--minutes", type=float, default=minutes, help="training budget, process CPU minutes"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="append a JSON line here")
    return parser


def seed_everything(threads: int) -> None:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    pyro.set_rng_seed(0)


def emit(row: dict[str, Any], out: Path | None) -> None:
    """Print the result row as JSON and append it to ``out`` when given."""
    print(json.dumps(row), flush=True)
    if out is not None:
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")
