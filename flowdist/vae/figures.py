r"""Figures for VAEs (matplotlib, the ``plot`` extra): image grids of reconstructions, prior
samples, conditional generations, and a 2-D latent map (decoded means over a grid of two latent
coordinates, the others at zero)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["image_grid", "latent_map"]


def image_grid(
    images: Tensor, shape: tuple[int, int], *, ncols: int, row_labels: list[str] | None = None
) -> Any:
    """A figure showing ``images`` (``(N, H*W)`` or ``(N, ...)``, values in [0, 1]) as ``H×W``
    gray tiles, ``ncols`` per row."""
    import matplotlib.pyplot as plt

    images = images.detach().float().cpu().reshape(-1, *shape)
    nrows = -(-len(images) // ncols)
    tiles = torch.ones(nrows * ncols, *shape)
    tiles[: len(images)] = images
    h, w = shape
    grid = tiles.reshape(nrows, ncols, h, w).permute(0, 2, 1, 3).reshape(nrows * h, ncols * w)
    fig, ax = plt.subplots(figsize=(0.5 * ncols + 0.5, 0.5 * nrows + 0.2))
    ax.imshow(grid.numpy(), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([h * (i + 0.5) for i in range(nrows)] if row_labels else [])
    if row_labels:
        ax.set_yticklabels(row_labels)
    fig.tight_layout()
    return fig


def latent_map(
    vae: Any,
    shape: tuple[int, int],
    *,
    dims: tuple[int, int] = (0, 1),
    n: int = 12,
    span: float = 2.5,
) -> Any:
    r"""Decoded means :math:`\mathbb E[x \mid z]` over an ``n × n`` grid of the latent
    coordinates ``dims`` in :math:`[-\text{span}, \text{span}]`, the other coordinates at 0."""
    ticks = torch.linspace(-span, span, n, dtype=vae.dtype, device=vae.prior_loc.device)
    z = torch.zeros(n * n, vae.z_dim, dtype=vae.dtype, device=vae.prior_loc.device)
    z[:, dims[0]] = ticks.repeat(n)
    z[:, dims[1]] = ticks.flip(0).repeat_interleave(n)
    return image_grid(vae.decode_mean(z), shape, ncols=n)
