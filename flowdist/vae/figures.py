r"""Figures for VAEs (matplotlib, the ``plot`` extra): image grids of reconstructions, prior
samples, conditional generations, and a 2-D latent map (decoded means over a grid of two latent
coordinates, the others at zero)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from flowdist.plots import image_grid
from flowdist.transforms.base import check_dim
from flowdist.vae.vae import VAE
from flowdist.validation import check_number

__all__ = ["digit_grid", "latent_map"]


def latent_map(
    vae: VAE,
    shape: tuple[int, int],
    *,
    dims: tuple[int, int] = (0, 1),
    n: int = 12,
    span: float = 2.5,
) -> Any:
    r"""Decoded means :math:`\mathbb E[x \mid z]` over an ``n × n`` grid of the latent
    coordinates ``dims`` in :math:`[-\text{span}, \text{span}]`, the other coordinates at 0."""
    if not isinstance(vae, VAE):
        raise TypeError(f"vae must be a flowdist VAE, got {type(vae).__name__}")
    check_dim("n", n)
    check_number("span", span, positive=True)
    if (
        not isinstance(dims, (tuple, list))
        or len(dims) != 2
        or dims[0] == dims[1]
        or any(
            isinstance(d, bool) or not isinstance(d, int) or not 0 <= d < vae.z_dim for d in dims
        )
    ):
        raise ValueError(
            f"dims must be two distinct latent coordinates in 0..{vae.z_dim - 1}, got {dims!r}"
        )
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
    check_dim("ncols", ncols)
    if not isinstance(images, Tensor) or images.device.type == "meta":
        where = images.device if isinstance(images, Tensor) else type(images).__name__
        raise TypeError(f"images must be a torch.Tensor holding values, got {where}")
    if not bool(torch.isfinite(images).all()):
        raise ValueError("images has non-finite values (nan or inf)")
    return image_grid(
        images, ncols, shape, cmap="gray_r", vmin=0.0, vmax=1.0, row_labels=row_labels
    )
