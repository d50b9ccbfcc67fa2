"""Checkpoints: round trip, atomic save, and clear errors for every kind of bad file."""

from __future__ import annotations

import os
from collections import defaultdict, namedtuple
from datetime import datetime

import pytest
import torch

from flowdist.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from flowdist.flows import PlanarFlow


def test_round_trip(tmp_path):
    flow = PlanarFlow(2, 4)
    path = save_checkpoint(tmp_path / "f.pt", "planar", {"dim": 2, "K": 4}, flow, {"seed": 3})
    ckpt = load_checkpoint(path, model="planar")
    other = PlanarFlow(**ckpt.config)
    other.load_state_dict(ckpt.state_dict)
    x = torch.randn(5, 2)
    with torch.no_grad():
        torch.testing.assert_close(other().log_prob(x), flow().log_prob(x))
    assert ckpt.metadata == {"seed": 3}


def test_interrupted_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "f.pt", "planar", {"dim": 2, "K": 4}, PlanarFlow(2, 4))
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, "planar", {"dim": 2, "K": 8}, PlanarFlow(2, 8))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["f.pt"]  # no temporary file left


def test_the_checksum_covers_metadata_keys_and_values(tmp_path):
    path = save_checkpoint(
        tmp_path / "f.pt", "planar", {"a": 1, "b": 2}, PlanarFlow(2, 4), {"loss": [1.5, 2.5]}
    )
    edits = (
        lambda p: p["metadata"]["loss"].__setitem__(0, 1.25),  # a metadata value
        lambda p: p.__setitem__("config", {"b": 1, "a": 2}),  # the config's keys swapped
    )
    for edit in edits:
        payload = torch.load(path, weights_only=True)
        edit(payload)  # as bit rot would, the stored checksum kept
        torch.save(payload, tmp_path / "edited.pt")
        with pytest.raises(CheckpointError, match="do not match their checksum"):
            load_checkpoint(tmp_path / "edited.pt")


def test_bad_files_give_clear_errors(tmp_path):
    path = save_checkpoint(tmp_path / "f.pt", "planar", {"dim": 2, "K": 4}, PlanarFlow(2, 4))
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "missing.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_checkpoint(truncated)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_checkpoint(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="not a flowdist checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="holds a 'planar' model, not 'rbm'"):
        load_checkpoint(path, model="rbm")
    with pytest.raises(CheckpointError, match="holds a 'planar' model, not one of rbm, vae"):
        load_checkpoint(path, model=("rbm", "vae"))
    assert load_checkpoint(path, model=("rbm", "planar")).model == "planar"
    objects = tmp_path / "objects.pt"
    torch.save({"format": "flowdist-checkpoint", "flow": PlanarFlow(2, 4)}, objects)
    with pytest.raises(CheckpointError, match="stores Python objects other than tensors"):
        load_checkpoint(objects)
    for bad in (tmp_path / "missing.pt", truncated, garbage, foreign, objects):
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(bad)
        assert "\n" not in str(info.value), bad  # one line, whatever torch said


def test_save_refuses_what_load_could_not_read(tmp_path):
    with pytest.raises(TypeError, match=r"config\['when'\] is a datetime"):
        save_checkpoint(tmp_path / "f.pt", "planar", {"when": datetime.now()}, PlanarFlow(2, 4))
    with pytest.raises(TypeError, match="keys must be strings"):
        save_checkpoint(tmp_path / "f.pt", "planar", {}, PlanarFlow(2, 4), {1: "one"})
    # subclasses of dict and tuple pass isinstance but are refused by the weights-only load
    point = namedtuple("Point", "epoch loss")(3, 0.5)
    for name, value in (("Point", point), ("defaultdict", defaultdict(int, a=1))):
        with pytest.raises(TypeError, match=rf"metadata\['best'\] is a {name}"):
            save_checkpoint(tmp_path / "f.pt", "planar", {}, PlanarFlow(2, 4), {"best": value})
    assert not list(tmp_path.iterdir())
    best = PlanarFlow(2, 4).state_dict()
    path = save_checkpoint(
        tmp_path / "f.pt",
        "planar",
        {"sizes": (2, 4), "names": ["a"], "none": None, "flag": True},
        PlanarFlow(2, 4),
        {"history": [{"loss": 1.5}], "t": torch.zeros(2), "best": best},  # an OrderedDict
    )
    assert load_checkpoint(path).config["sizes"] == (2, 4)
    loaded = load_checkpoint(path).metadata["best"]
    assert loaded.keys() == best.keys() and all(map(torch.equal, loaded.values(), best.values()))
    mask = os.umask(0o027)
    try:  # the file's mode follows the umask, as a plain open() would make it
        assert save_checkpoint(path, "planar", {}, PlanarFlow(2, 4)).stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(mask)
