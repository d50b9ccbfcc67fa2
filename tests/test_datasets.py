"""The MNIST loaders on small archives of their formats: values, and clear errors for others."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flowdist.datasets import load_binarized_mnist, load_mnist


def _mnist(path, images=None, labels=None):
    images = np.arange(4 * 2 * 2, dtype=np.uint8).reshape(4, 2, 2) if images is None else images
    labels = np.array([3, 1, 4, 1]) if labels is None else labels
    np.savez(path, train_images=images, train_labels=labels, test_images=images[:2],
             test_labels=labels[:2])  # fmt: skip


def test_loaders_read_their_formats(tmp_path):
    _mnist(tmp_path / "m.npz")
    split = load_mnist(tmp_path / "m.npz")
    assert split.train_x.shape == (4, 4) and float(split.train_x.max()) == pytest.approx(15 / 255)
    assert split.train_y.tolist() == [3, 1, 4, 1] and split.test_y.tolist() == [3, 1]
    raw = load_mnist(tmp_path / "m.npz", flatten=False, scale=False)
    assert raw.train_x.shape == (4, 2, 2) and float(raw.train_x.max()) == 15
    bits = np.random.default_rng(0).integers(0, 2, (5, 12), dtype=np.uint8)
    packed = np.packbits(bits, axis=1)
    np.savez(tmp_path / "b.npz", train_x=packed, valid_x=packed[:2], test_x=packed[:3], n_pixels=12)
    b = load_binarized_mnist(tmp_path / "b.npz")
    assert torch.equal(b.train_x, torch.as_tensor(bits, dtype=torch.float32))
    assert (
        len(b.test_x) == 3
        and len(load_binarized_mnist(tmp_path / "b.npz", validation=True).test_x) == 2
    )


def test_loaders_refuse_what_they_would_misread(tmp_path):
    cases = {
        "labels.npz": ({"labels": np.array([3, 1, 4])}, "4 train_images but 3 train_labels"),
        "floatlabels.npz": ({"labels": np.full(4, 1.5)}, "train_labels must be a 1-d integer"),
        "scaled.npz": ({"images": np.zeros((4, 2, 2))}, "train_images must be a 3-d uint8"),
    }
    for name, (kw, message) in cases.items():
        _mnist(tmp_path / name, **kw)
        with pytest.raises(ValueError, match=message):
            load_mnist(tmp_path / name)
    np.save(tmp_path / "plain.npy", np.zeros(3))
    with pytest.raises(ValueError, match=r"a single array, not an \.npz archive"):
        load_mnist(tmp_path / "plain.npy")
    packed = np.packbits(np.ones((2, 12), dtype=np.uint8), axis=1)
    np.savez(tmp_path / "b.npz", train_x=packed, valid_x=packed, test_x=packed, n_pixels=100)
    with pytest.raises(ValueError, match="n_pixels = 100, but train_x packs 16 bits per row"):
        load_binarized_mnist(tmp_path / "b.npz")
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_mnist(tmp_path / "missing.npz")
