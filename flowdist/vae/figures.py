r"""Figures for VAEs (matplotlib, the ``plot`` extra): image grids of reconstructions, prior
samples, conditional generations, and a 2-D latent map (decoded means over a grid of two latent
coordinates, the others at zero)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from flowdist.plots import image_grid

__all__ = ["digit_grid", "latent_map"]


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
    return digit_grid(vae.decode_mean(z), shape, ncols=n)


def digit_grid(
    images: Tensor, shape: tuple[int, int], *, ncols: int, row_labels: list[str] | None = None
) -> Any:
    """``images`` with values in [0, 1] as dark-on-light ``H×W`` tiles, ``ncols`` per row
    (:func:`flowdist.plots.image_grid`)."""
    return image_grid(
        images, ncols, shape, cmap="gray_r", vmin=0.0, vmax=1.0, row_labels=row_labels
    )
