"""Checkpoints of the energy-based models and the VAEs (tests/test_checkpoint.py covers the
format with a flow): damaged files, files of another model kind and states of another shape
give a clear :class:`~flowdist.checkpoint.CheckpointError`; an interrupted save (the write
failing midway) keeps the previous checkpoint — for :func:`~flowdist.checkpoint.save_checkpoint`
and for the checkpoints of :func:`flowdist.vae.fit`.
"""

from __future__ import annotations

import io
import os
import random
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyro
import pytest
import torch
from torch import nn

from flowdist.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from flowdist.ebm import BernoulliRBM, BoltzmannMachine, DeepBoltzmannMachine, GaussianRBM
from flowdist.vae import VAE, ConditionalVAE, fit

MODELS: dict[str, Callable[[], nn.Module]] = {
    "bm": lambda: BoltzmannMachine(6),
    "rbm": lambda: BernoulliRBM(6, 4),
    "grbm": lambda: GaussianRBM(6, 4, learn_sigma=True),
    "dbm": lambda: DeepBoltzmannMachine((6, 4, 3)),
    "vae": lambda: VAE(6, 2, hidden=(8,)),
    "cvae": lambda: ConditionalVAE(6, 3, 2, hidden=(8,)),
}


def _build(name: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return MODELS[name]()


@pytest.fixture(params=sorted(MODELS))
def saved(request, tmp_path) -> tuple[str, nn.Module, Path]:
    """A model of each family and its checkpoint."""
    module = _build(request.param, seed=1)
    return request.param, module, save_checkpoint(tmp_path / "m.pt", request.param, {}, module)


def test_round_trip(saved):
    name, module, path = saved
    fresh = _build(name, seed=2)
    fresh.load_state_dict(load_checkpoint(path, model=name).state_dict)
    for key, value in module.state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[key], value, rtol=0, atol=0)


@pytest.mark.parametrize("keep", [0, 0.1, 0.5, 0.99])
def test_truncated_file(saved, keep):
    _, _, path = saved
    data = path.read_bytes()
    path.write_bytes(data[: int(keep * len(data))])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_checkpoint(path)


@pytest.mark.parametrize("start", [b"", b"\x80\x16"], ids=["random", "pickle-protocol-22"])
def test_corrupted_header(saved, start):
    _, _, path = saved
    data = bytearray(path.read_bytes())
    data[:64] = (start + random.Random(0).randbytes(64))[:64]
    path.write_bytes(bytes(data))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(CheckpointError, match="corrupted"):
            load_checkpoint(path)
    assert not caught  # torch's legacy loader, which warns on such bytes, is never reached


def _tensor_records(path: Path) -> list[tuple[int, int]]:
    """``(offset, size)`` of the raw bytes of every tensor stored in the archive."""
    with zipfile.ZipFile(path) as archive:
        records = [i for i in archive.infolist() if "/data/" in i.filename and i.file_size]
        data = path.read_bytes()
        out = []
        for info in records:  # a local header is 30 bytes, then the name and the extra field
            start = info.header_offset
            name_len = int.from_bytes(data[start + 26 : start + 28], "little")
            extra_len = int.from_bytes(data[start + 28 : start + 30], "little")
            out.append((start + 30 + name_len + extra_len, info.file_size))
        return out


def test_corrupted_tensor_bytes(saved):
    """torch reads flipped bytes inside a tensor's data without complaint: the checkpoint must
    notice that the contents changed."""
    _, _, path = saved
    clean = path.read_bytes()
    for offset, size in _tensor_records(path):
        data = bytearray(clean)
        data[offset + size // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        with pytest.raises(CheckpointError, match="corrupted"):
            load_checkpoint(path)


@pytest.mark.parametrize(("kind", "other"), [("rbm", "vae"), ("vae", "rbm"), ("dbm", "cvae")])
def test_checkpoint_of_another_model_kind(tmp_path, kind, other):
    path = save_checkpoint(tmp_path / "m.pt", kind, {}, _build(kind, seed=1))
    with pytest.raises(CheckpointError, match=f"holds a '{kind}' model, not '{other}'"):
        load_checkpoint(path, model=other)


@pytest.mark.parametrize(
    ("kind", "into", "message"),
    [
        ("rbm", lambda: VAE(6, 2, hidden=(8,)), r"missing .*; unexpected biases\.0"),
        ("vae", lambda: BernoulliRBM(6, 4), r"missing biases\.0, biases\.1, weights\.0"),
        (
            "rbm",
            lambda: BernoulliRBM(6, 5),
            r"weights\.0 has shape \(6, 4\), the module's \(6, 5\)",
        ),
        ("vae", lambda: VAE(6, 3, hidden=(8,)), r"has shape .*, the module's"),
    ],
)
def test_state_that_does_not_fit_the_module(tmp_path, kind, into, message):
    path = save_checkpoint(tmp_path / "m.pt", kind, {}, _build(kind, seed=1))
    module = into()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path).restore(module)
    for key, value in module.state_dict().items():  # nothing was half loaded
        assert torch.equal(value, before[key])


def _crash_midway(real_save: Callable[..., Any]) -> Callable[..., Any]:
    """A ``torch.save`` that writes the first half of the real bytes, then fails (a full disk,
    a killed process)."""

    def save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        half = buffer.getvalue()[: len(buffer.getvalue()) // 2]
        if isinstance(f, (str, os.PathLike)):
            Path(f).write_bytes(half)
        else:
            f.write(half)
        raise OSError("No space left on device (simulated)")

    return save


def test_interrupted_save_keeps_the_previous_checkpoint(saved, monkeypatch):
    name, _, path = saved
    before = path.read_bytes()
    monkeypatch.setattr(torch, "save", _crash_midway(torch.save))
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(path, name, {}, _build(name, seed=3))
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


# ------------------------------------------------------------------ checkpoints of fit()
def _fit(module: nn.Module, path: Path, epochs: int) -> Any:
    pyro.clear_param_store()
    x = (torch.rand(16, 6, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    return fit(module, x, epochs=epochs, batch_size=8, checkpoint=path)


def _vae(seed: int = 1, hidden: tuple[int, ...] = (8,)) -> VAE:
    torch.manual_seed(seed)
    return VAE(6, 2, hidden=hidden, name="ckpt")


def test_fit_interrupted_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "fit.pt"
    _fit(_vae(), path, epochs=1)
    before = path.read_bytes()
    monkeypatch.setattr(torch, "save", _crash_midway(torch.save))
    with pytest.raises(OSError, match="simulated"):
        _fit(_vae(), path, epochs=2)
    assert path.read_bytes() == before


def test_fit_refuses_a_damaged_checkpoint(tmp_path):
    path = tmp_path / "fit.pt"
    _fit(_vae(), path, epochs=1)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        _fit(_vae(), path, epochs=2)


@pytest.mark.parametrize(
    ("save", "message"),
    [
        (
            lambda path: save_checkpoint(path, "rbm", {}, BernoulliRBM(6, 4)),
            "holds a 'rbm' model, not 'VAE'",
        ),
        (lambda path: _fit(_vae(hidden=(16,)), path, epochs=1), "does not fit this VAE"),
        (lambda path: torch.save({"module": {}}, path), "not a flowdist checkpoint"),
    ],
    ids=["rbm", "other-shapes", "foreign"],
)
def test_fit_refuses_a_checkpoint_of_another_model(tmp_path, save, message):
    path = tmp_path / "fit.pt"
    save(path)
    with pytest.raises(CheckpointError, match=message):
        _fit(_vae(), path, epochs=2)
