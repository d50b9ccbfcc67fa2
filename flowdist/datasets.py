r"""Data sets: scikit-learn's embedded 8×8 digits, and MNIST / binarized MNIST from a path.

Every loader returns :class:`Split` of ``torch`` tensors. Images are flattened to
vectors (``digits``: 64 values, MNIST: 784 values; :func:`load_mnist` keeps the 28 × 28
images with ``flatten=False``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = ["Split", "load_binarized_mnist", "load_digits", "load_mnist"]


@dataclass(frozen=True)
class Split:
    """A train / test split; ``*_y`` are integer labels or ``None`` where the data has none."""

    train_x: torch.Tensor
    test_x: torch.Tensor
    train_y: torch.Tensor | None = None
    test_y: torch.Tensor | None = None


def load_digits(
    *,
    binarize: bool = False,
    threshold: float = 8.0,
    scale: bool = True,
    test_size: float = 0.2,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> Split:
    r"""The 1797 8×8 handwritten digits that ship with scikit-learn, split train/test.

    Pixels are integers :math:`0 \ldots 16`. With ``binarize=True`` a pixel becomes
    :math:`\mathbb 1[x > \text{threshold}]`; otherwise, with ``scale=True``, it is divided by 16
    so that it lies in :math:`[0, 1]`. The split is scikit-learn's ``train_test_split`` with
    ``random_state=seed`` (80/20 by default).
    """
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as err:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "the digits data set ships with scikit-learn: pip install 'flowdist[demo]'"
        ) from err
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must lie in (0, 1), got {test_size}")
    data = _sk_load_digits()
    x, y = data.data, data.target
    if binarize:
        x = (x > threshold).astype(np.float64)
    elif scale:
        x = x / 16.0
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_size, random_state=seed)
    return Split(
        torch.as_tensor(x_tr, dtype=dtype),
        torch.as_tensor(x_te, dtype=dtype),
        torch.as_tensor(y_tr, dtype=torch.long),
        torch.as_tensor(y_te, dtype=torch.long),
    )


def _open_npz(path: str | Path, keys: tuple[str, ...]) -> np.lib.npyio.NpzFile:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no such file {str(path)!r}")
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as err:  # zipfile, pickle and format errors of many types
        raise ValueError(f"path: cannot read {str(path)!r} ({err})") from err
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"path: {str(path)!r} is a single array, not an .npz archive")
    missing = [k for k in keys if k not in archive.files]
    if missing:
        raise ValueError(f"path: {str(path)!r} lacks the arrays {missing} (has {archive.files})")
    return archive


def _array(archive: np.lib.npyio.NpzFile, key: str, kind: str, ndim: int) -> np.ndarray:
    """``archive[key]``, checked: ``ndim`` dimensions and a dtype of ``kind`` (``"u"``:
    unsigned bytes, ``"i"``: integers)."""
    a = archive[key]
    ok = a.dtype == np.uint8 if kind == "u" else np.issubdtype(a.dtype, np.integer)
    if a.ndim != ndim or not ok:
        what = "uint8" if kind == "u" else "integer"
        raise ValueError(f"path: {key} must be a {ndim}-d {what} array, got {a.ndim}-d {a.dtype}")
    return a


def load_binarized_mnist(
    path: str | Path, *, validation: bool = False, dtype: torch.dtype = torch.float32
) -> Split:
    r"""The fixed binarization of MNIST (Larochelle & Murray, 2011) from ``binarized_mnist.npz``.

    The archive holds ``np.packbits`` rows (``train_x``, ``valid_x``, ``test_x``). With
    ``validation=False`` the train split is the 50,000 training images and the test split the
    10,000 test images; with ``validation=True`` the test split is the validation set instead.
    """
    archive = _open_npz(path, ("train_x", "valid_x", "test_x", "n_pixels"))
    n = _array(archive, "n_pixels", "i", 0)

    def unpack(key: str) -> torch.Tensor:
        packed = _array(archive, key, "u", 2)
        if not 0 < n <= 8 * packed.shape[1]:
            raise ValueError(
                f"path: n_pixels = {n}, but {key} packs {8 * packed.shape[1]} bits per row"
            )
        return torch.as_tensor(np.unpackbits(packed, axis=1)[:, :n], dtype=dtype)

    return Split(unpack("train_x"), unpack("valid_x" if validation else "test_x"))


def load_mnist(
    path: str | Path,
    *,
    flatten: bool = True,
    scale: bool = True,
    dtype: torch.dtype = torch.float32,
) -> Split:
    r"""Grayscale MNIST from ``mnist.npz`` (keys ``train_images``, ``train_labels``, ...).

    With ``scale=True`` pixels are divided by 255 (values in :math:`[0, 1]`); otherwise they are
    the raw integers :math:`0 \ldots 255` as ``dtype``.
    """
    archive = _open_npz(path, ("train_images", "train_labels", "test_images", "test_labels"))

    def split(part: str) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.as_tensor(_array(archive, f"{part}_images", "u", 3), dtype=dtype)
        y = _array(archive, f"{part}_labels", "i", 1)
        if len(y) != len(x):
            raise ValueError(f"path: {len(x)} {part}_images but {len(y)} {part}_labels")
        x = x / 255.0 if scale else x
        return (x.flatten(1) if flatten else x), torch.as_tensor(y, dtype=torch.long)

    (train_x, train_y), (test_x, test_y) = split("train"), split("test")
    return Split(train_x, test_x, train_y, test_y)
