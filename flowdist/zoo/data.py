r"""Data sets as the model zoo reads them — scikit-learn's digits or an ``.npz`` archive — and
the two ways pixel levels become a model's input: binarised at the middle level, or dequantised
to :math:`[0, 1)`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from flowdist.datasets import load_binarized_mnist, load_digits, load_mnist
from flowdist.flows.demo_images import dequantized

__all__ = [
    "TEST_FRACTION",
    "DataSet",
    "DataSpec",
    "binarize_levels",
    "dequantize_levels",
    "load_data",
]

TEST_FRACTION = 0.2


@dataclass(frozen=True)
class DataSet:
    """Examples as the zoo reads them: ``train_x``, ``test_x`` of shape ``(N, *shape)``
    (float32), integer ``*_y`` labels or ``None``, and ``levels``: the number of pixel levels
    :math:`L` when every value is an integer in :math:`0 \\ldots L - 1`, else ``None``."""

    train_x: Tensor
    test_x: Tensor
    train_y: Tensor | None
    test_y: Tensor | None
    levels: int | None
    source: str

    @property
    def spec(self) -> DataSpec:
        """What a model trained on these data records about them."""
        classes = None
        if self.train_y is not None and self.test_y is not None:
            classes = int(torch.cat([self.train_y, self.test_y]).max()) + 1
        return DataSpec(self.source, tuple(self.train_x.shape[1:]), self.levels, classes)

    def describe(self) -> str:
        """One line: source, sizes, shape, levels, labels."""
        kind = f"{self.levels} pixel levels" if self.levels else "real values"
        labels = "labelled" if self.train_y is not None else "no labels"
        return (
            f"{self.source}: {len(self.train_x)} train / {len(self.test_x)} test examples of "
            f"shape {tuple(self.train_x.shape[1:])}, {kind}, {labels}"
        )


@dataclass(frozen=True)
class DataSpec:
    """What a trained model records about its data: where they came from, the shape of one
    example, the number of pixel levels (``None``: real values) and of classes (``None``: no
    labels)."""

    source: str
    shape: tuple[int, ...]
    levels: int | None
    classes: int | None

    def as_config(self) -> dict[str, Any]:
        """The fields as a dict (for a checkpoint's configuration)."""
        return {
            "source": self.source,
            "shape": self.shape,
            "levels": self.levels,
            "classes": self.classes,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> DataSpec:
        """The inverse of :meth:`as_config`."""
        shape = tuple(config["shape"])
        return cls(config["source"], shape, config["levels"], config["classes"])

    @property
    def features(self) -> int:
        return math.prod(self.shape)

    @property
    def image(self) -> tuple[int, int, int] | None:
        """``(C, H, W)`` for image-shaped examples (``(H, W)`` or ``(C, H, W)``), else None."""
        if len(self.shape) == 2:
            return (1, *self.shape)
        return tuple(self.shape) if len(self.shape) == 3 else None  # type: ignore[return-value]


def _tensor(array: np.ndarray, what: str, where: str) -> Tensor:
    if array.dtype == object or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"data: {where!r} {what} must hold numbers, got dtype {array.dtype}")
    return torch.as_tensor(np.asarray(array, dtype=np.float32))


def _labels(array: np.ndarray | None, n: int, what: str, where: str) -> Tensor | None:
    if array is None:
        return None
    if array.shape != (n,) or not np.issubdtype(array.dtype, np.integer) or (array < 0).any():
        raise ValueError(
            f"data: {where!r} {what} must hold one non-negative integer label per example "
            f"(shape ({n},)), got dtype {array.dtype} and shape {array.shape}"
        )
    return torch.as_tensor(array.astype(np.int64))


def _levels(train: Tensor, test: Tensor, given: int | None) -> int | None:
    both = torch.cat([train.flatten(), test.flatten()])
    if not bool((both == both.round()).all()) or float(both.min()) < 0:
        return None
    levels = int(both.max()) + 1 if given is None else int(given)
    if levels < 2 or float(both.max()) >= levels:
        raise ValueError(f"data: levels = {levels}, but the pixels reach {float(both.max()):g}")
    return levels


def _make(
    where: str,
    xs: tuple[np.ndarray, np.ndarray],
    ys: tuple[np.ndarray | None, np.ndarray | None],
    levels: int | None = None,
) -> DataSet:
    train, test = (_tensor(a, k, where) for a, k in zip(xs, ("train_x", "test_x"), strict=True))
    if train.dim() < 2 or len(train) == 0 or len(test) == 0 or train.shape[1:] != test.shape[1:]:
        raise ValueError(
            f"data: {where!r} must hold non-empty train and test arrays of shape (N, ...) with "
            f"examples of one shape, got {tuple(train.shape)} and {tuple(test.shape)}"
        )
    if not bool(torch.isfinite(train).all() and torch.isfinite(test).all()):
        raise ValueError(f"data: {where!r} holds nan or inf values")
    train_y = _labels(ys[0], len(train), "train_y", where)
    test_y = _labels(ys[1], len(test), "test_y", where)
    if (train_y is None) != (test_y is None):
        raise ValueError(f"data: {where!r} must give labels for both splits or for neither")
    return DataSet(train, test, train_y, test_y, _levels(train, test, levels), where)


def _load_npz(path: Path) -> DataSet:
    where = str(path.resolve())  # a checkpoint records it: evaluate finds it from anywhere
    try:
        archive = np.load(path, allow_pickle=False)
        arrays = {k: archive[k] for k in archive.files}
    except Exception as err:  # zipfile, pickle and format errors of many types
        raise ValueError(f"data: cannot read {where!r} as an .npz archive ({err})") from err
    if {"train_images", "test_images", "train_labels", "test_labels"} <= arrays.keys():
        split = load_mnist(path, flatten=False, scale=False)  # mnist.npz
        ys = (split.train_y.numpy(), split.test_y.numpy())
        return _make(where, (split.train_x.numpy(), split.test_x.numpy()), ys, levels=256)
    if {"train_x", "valid_x", "test_x", "n_pixels"} <= arrays.keys():
        split = load_binarized_mnist(path)  # packed bits
        side = math.isqrt(split.train_x.shape[1])
        shape = (
            (side, side)
            if side * side == split.train_x.shape[1]
            else tuple(split.train_x.shape[1:])
        )
        xs = (split.train_x.reshape(-1, *shape).numpy(), split.test_x.reshape(-1, *shape).numpy())
        return _make(where, xs, (None, None), levels=2)
    levels = None
    if "levels" in arrays:
        if arrays["levels"].ndim or not np.issubdtype(arrays["levels"].dtype, np.integer):
            raise ValueError(f"data: levels in {where!r} must be one integer")
        levels = int(arrays["levels"])
    if {"train_x", "test_x"} <= arrays.keys():
        xs = (arrays["train_x"], arrays["test_x"])
        return _make(where, xs, (arrays.get("train_y"), arrays.get("test_y")), levels)
    if "x" in arrays:
        x, y = arrays["x"], arrays.get("y")
        if x.ndim < 2 or (y is not None and (y.ndim != 1 or len(y) != len(x))):
            raise ValueError(
                f"data: {where!r} must hold x of shape (N, ...) and y of shape (N,), got "
                f"{x.shape} and {None if y is None else y.shape}"
            )
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0)).numpy()
        cut = max(1, round(TEST_FRACTION * len(x)))
        test, tr = order[:cut], order[cut:]
        ys = (None, None) if y is None else (y[tr], y[test])
        return _make(where, (x[tr], x[test]), ys, levels)
    raise ValueError(
        f"data: {where!r} holds the arrays {sorted(arrays)}; expected train_x and test_x "
        "(optional train_y, test_y, levels) or x (optional y, levels)"
    )


def load_data(source: str | Path) -> DataSet:
    """``"digits"`` (scikit-learn's 8×8 digits, levels 0–16, 80/20 split with
    ``random_state=0``) or the path of an ``.npz`` archive holding

    * ``train_x`` and ``test_x`` (``(N, ...)`` each; optional integer labels ``train_y``,
      ``test_y``), or
    * ``x`` (optional ``y``), split 80/20 by a permutation seeded with 0,

    and optionally ``levels``, the number of pixel levels (default: the largest value + 1 when
    every value is a non-negative integer; otherwise the data are real-valued). The MNIST
    archives of :mod:`flowdist.datasets` (``mnist.npz``, ``binarized_mnist.npz``) load as well.
    """
    if str(source) == "digits":
        split = load_digits(scale=False)
        xs = (split.train_x.reshape(-1, 8, 8).numpy(), split.test_x.reshape(-1, 8, 8).numpy())
        assert split.train_y is not None and split.test_y is not None
        return _make("digits", xs, (split.train_y.numpy(), split.test_y.numpy()), levels=17)
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(
            f"data: no such file {str(path)!r} (give 'digits' or the path of an .npz archive)"
        )
    return _load_npz(path)


def binarize_levels(data: DataSet, model: str) -> tuple[Tensor, Tensor, str]:
    """Train and test pixel levels binarised at the middle level, :math:`x > (L - 1)/2`, and a
    note saying so; a :class:`ValueError` for real-valued data."""
    if data.levels is None:
        raise ValueError(
            f"{model} models binary pixels: the data must hold 0/1 values or integer pixel "
            f"levels (binarised at the middle level), but {data.source} holds real values"
        )
    middle = (data.levels - 1) / 2
    note = f"binarised at > {middle:g}"
    return (data.train_x > middle).float(), (data.test_x > middle).float(), note


def dequantize_levels(data: DataSet, model: str, seed: int) -> tuple[Tensor, Tensor, str]:
    r"""Train and test pixel levels dequantised to :math:`(k + u)/L \in [0, 1)` (seeded,
    :func:`flowdist.flows.demo_images.dequantized`), and a note saying so; a
    :class:`ValueError` for real-valued data."""
    if data.levels is None:
        raise ValueError(
            f"{model} models dequantised pixels: the data must hold integer pixel levels "
            f"0..L-1, but {data.source} holds real values"
        )
    train, test = dequantized(data.train_x, data.test_x, data.levels, seed)
    return train, test, f"levels k dequantised to (k + u)/{data.levels} in [0, 1) (seed {seed})"
