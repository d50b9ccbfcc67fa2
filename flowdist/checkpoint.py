r"""Checkpoints: a model's ``state_dict`` with the configuration that rebuilds it.

Saving is atomic: the file is written beside its destination and moved into place with
:func:`os.replace`, so an interrupted save never destroys the previous checkpoint. Loading uses
``torch.load(weights_only=True)`` (no arbitrary code runs) and turns every way a file can be
wrong — missing, truncated, corrupted, not a flowdist checkpoint, another model — into a
:class:`CheckpointError` that says which.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = ["Checkpoint", "CheckpointError", "load_checkpoint", "save_checkpoint"]

FORMAT = "flowdist-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used, with the reason."""


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint holds: the model's registered name, the keyword arguments that rebuild
    it, its ``state_dict`` and free-form ``metadata`` (training history, data, seed)."""

    model: str
    config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    metadata: dict[str, Any]


def save_checkpoint(
    path: str | Path,
    model: str,
    config: dict[str, Any],
    module: torch.nn.Module,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Atomically write ``module``'s state and ``config`` to ``path``; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model": model,
        "config": dict(config),
        "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
        "metadata": dict(metadata or {}),
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, *, model: str | None = None) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`; with ``model``, also require that
    it holds that model."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint: no such file {str(path)!r}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for damaged files
        raise CheckpointError(
            f"checkpoint: {str(path)!r} is truncated or corrupted and cannot be read ({err})"
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint: {str(path)!r} is not a flowdist checkpoint")
    if payload.get("version") != VERSION:
        raise CheckpointError(
            f"checkpoint: {str(path)!r} has format version {payload.get('version')}, "
            f"this flowdist reads version {VERSION}"
        )
    if model is not None and payload["model"] != model:
        raise CheckpointError(
            f"checkpoint: {str(path)!r} holds a {payload['model']!r} model, not {model!r}"
        )
    return Checkpoint(
        payload["model"], payload["config"], payload["state_dict"], payload["metadata"]
    )
