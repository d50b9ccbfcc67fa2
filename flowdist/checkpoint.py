r"""Checkpoints: a model's ``state_dict`` with the configuration that rebuilds it.

Saving is atomic: the file is written beside its destination and moved into place with
:func:`os.replace`, so an interrupted save never destroys the previous checkpoint. Loading uses
``torch.load(weights_only=True)`` (no arbitrary code runs) and turns every way a file can be
wrong — missing, truncated, corrupted, not a flowdist checkpoint, another model — into a
:class:`CheckpointError` that says which. A SHA-256 digest of the contents, saved with them,
catches corrupted bytes that torch's reader would load without complaint (tensor data);
:meth:`Checkpoint.restore` says which entries do not fit a module.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from collections import OrderedDict
from collections.abc import Collection
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

    def restore(self, module: torch.nn.Module) -> None:
        """Load :attr:`state_dict` into ``module``; a :class:`CheckpointError` names the
        missing, unexpected and differently shaped entries when ``module`` is not built like
        the saved model (another kind, or another configuration)."""
        own = module.state_dict()
        problems = [
            f"{what} {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
            for what, names in (
                ("missing", sorted(set(own) - set(self.state_dict))),
                ("unexpected", sorted(set(self.state_dict) - set(own))),
            )
            if names
        ]
        problems += [
            f"{key} has shape {tuple(value.shape)}, the module's {tuple(own[key].shape)}"
            for key, value in self.state_dict.items()
            if key in own and value.shape != own[key].shape
        ]
        if problems:
            raise CheckpointError(
                f"checkpoint: the saved {self.model!r} does not fit this "
                f"{type(module).__name__}: {'; '.join(problems)}"
            )
        module.load_state_dict(self.state_dict)


_PLAIN = (str, int, float, bool, type(None), torch.Tensor)


def _check_plain(value: Any, where: str) -> None:
    """Raise unless ``value`` is built of what :func:`load_checkpoint` reads back: dicts (and
    ordered ones, as ``state_dict()`` returns) with string keys, lists, tuples, strings,
    numbers, booleans, ``None`` and tensors."""
    # exact types: other subclasses (a namedtuple, a defaultdict) would be saved, then refused
    if type(value) in (dict, OrderedDict):
        for key, item in value.items():
            if type(key) is not str:
                raise TypeError(f"{where}: keys must be strings, got {key!r}")
            _check_plain(item, f"{where}[{key!r}]")
    elif type(value) in (list, tuple):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
    elif type(value) not in _PLAIN:
        raise TypeError(
            f"{where} is a {type(value).__name__}; a checkpoint holds only dicts, lists, tuples, "
            "strings, numbers, booleans, None and tensors"
        )


def _digest(value: Any, h: Any) -> None:
    """Feed plain data ``value`` (see :func:`_check_plain`) into the hash ``h``, canonically:
    a tensor as its dtype, shape and bytes."""
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"tensor {t.dtype} {tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())  # the buffer itself, not a copy
    elif isinstance(value, dict):
        h.update(f"dict {len(value)};".encode())
        for key, item in value.items():
            h.update(f"{key!r}:".encode())
            _digest(item, h)
    elif isinstance(value, (list, tuple)):
        h.update(f"{type(value).__name__} {len(value)};".encode())
        for item in value:
            _digest(item, h)
    else:
        h.update(f"{type(value).__name__} {value!r};".encode())


def _checksum(payload: dict[str, Any]) -> str:
    """The SHA-256 digest of a payload's model, configuration, state and metadata."""
    h = hashlib.sha256()
    _digest([payload[k] for k in ("model", "config", "state_dict", "metadata")], h)
    return h.hexdigest()


def save_checkpoint(
    path: str | Path,
    model: str,
    config: dict[str, Any],
    module: torch.nn.Module,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Atomically write ``module``'s state and ``config`` to ``path``; returns the path.

    ``config`` and ``metadata`` must be plain data (see :func:`_check_plain`): anything else
    could not be read back without unpickling code, so it is refused before writing."""
    _check_plain(config, "config")
    _check_plain(metadata or {}, "metadata")
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
    payload["checksum"] = _checksum(payload)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide it from other users
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    """The process's file-creation mask (read by setting it, then restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def load_checkpoint(path: str | Path, *, model: str | Collection[str] | None = None) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`; with ``model`` (a name or a
    collection of names), also require that it holds that model (one of them).

    Every error message is one line."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint: no such file {str(path)!r}")
    with path.open("rb") as f:  # torch.save writes a zip archive; torch.load would read any
        zipped = f.read(4) == b"PK\x03\x04"  # other file as a legacy pickle, with warnings
    if not zipped:
        raise CheckpointError(
            f"checkpoint: {str(path)!r} is truncated or corrupted and cannot be read "
            "(not a torch archive)"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for damaged files
        if isinstance(err, pickle.UnpicklingError) and "global" in str(err):
            raise CheckpointError(  # readable, but it stores Python objects (classes)
                f"checkpoint: {str(path)!r} is not a flowdist checkpoint: it stores Python "
                "objects other than tensors, which are never loaded (they could run code)"
            ) from err
        reason = _first_line(err)
        if isinstance(err, pickle.UnpicklingError):  # torch's message spans many lines
            reason = "not a torch archive"
        raise CheckpointError(
            f"checkpoint: {str(path)!r} is truncated or corrupted and cannot be read ({reason})"
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint: {str(path)!r} is not a flowdist checkpoint")
    if payload.get("version") != VERSION:
        raise CheckpointError(
            f"checkpoint: {str(path)!r} has format version {payload.get('version')}, "
            f"this flowdist reads version {VERSION}"
        )
    if "checksum" in payload and payload["checksum"] != _checksum(payload):
        raise CheckpointError(
            f"checkpoint: {str(path)!r} is corrupted: its contents do not match their checksum"
        )
    names = (model,) if isinstance(model, str) else model
    if names is not None and payload["model"] not in names:
        wanted = repr(model) if isinstance(model, str) else f"one of {', '.join(names)}"
        raise CheckpointError(
            f"checkpoint: {str(path)!r} holds a {payload['model']!r} model, not {wanted}"
        )
    return Checkpoint(
        payload["model"], payload["config"], payload["state_dict"], payload["metadata"]
    )
