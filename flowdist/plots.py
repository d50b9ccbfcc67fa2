r"""Figures shared by the demo sections and benchmarks (matplotlib is an optional extra).

matplotlib is imported inside the functions that draw, so that importing this module (and the
demo sections that use it) works without it; the figures are built on
:class:`matplotlib.figure.Figure` directly, without pyplot's global state, so they need no
backend and are safe to make from any thread. Save them with ``fig.savefig`` or
:meth:`flowdist.report.Report.figure`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["density_grid", "grid_points", "image_grid", "tile_images"]


def _figure(width: float, height: float) -> Figure:
    try:
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("flowdist.plots needs matplotlib: pip install 'flowdist[plot]'") from err
    return Figure(figsize=(width, height))


def grid_points(
    half_width: float, n: int, dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor]:
    r"""The cell centres of an ``n`` × ``n`` grid on :math:`[-L, L]^2` (``L = half_width``):
    returns ``(points, cell_area)`` with ``points`` of shape ``(n, n, 2)``, indexed
    ``[row, column] = [z_2, z_1]`` so that ``points[..., 0]`` increases along columns (the
    layout :func:`density_grid` draws with the origin at the bottom left)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if not half_width > 0:
        raise ValueError(f"half_width must be positive, got {half_width!r}")
    step = 2 * half_width / n
    axis = (torch.arange(n, dtype=dtype) + 0.5) * step - half_width
    z2, z1 = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([z1, z2], dim=-1), torch.tensor(step * step, dtype=dtype)


def density_grid(
    panels: Sequence[Sequence[Tensor]],
    *,
    half_width: float,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    panel_size: float = 1.8,
    cmap: str = "viridis",
) -> Figure:
    r"""Rows × columns of 2-D densities on :math:`[-L, L]^2` (the layout of Rezende & Mohamed
    2015, figure 3: one row per target, the true density then the fits).

    Args:
        panels: ``panels[i][j]`` is a tensor of shape ``(n, n)`` of (unnormalised) density
            values on :func:`grid_points` (row index :math:`z_2`, column index :math:`z_1`).
            Each panel is scaled to its own maximum.
        half_width: :math:`L`, the extent of the grid.
        row_labels, col_labels: titles of the rows (left) and columns (top).
    """
    nrows, ncols = len(panels), max((len(row) for row in panels), default=0)
    if nrows == 0 or ncols == 0:
        raise ValueError("panels must hold at least one row and one column")
    if len(row_labels) != nrows or len(col_labels) != ncols:
        raise ValueError(
            f"row_labels/col_labels must have {nrows}/{ncols} entries, "
            f"got {len(row_labels)}/{len(col_labels)}"
        )
    fig = _figure(panel_size * ncols, panel_size * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    extent = (-half_width, half_width, -half_width, half_width)
    for i, row in enumerate(panels):
        for j in range(ncols):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(row):
                density = torch.as_tensor(row[j]).detach().cpu().double()
                if density.dim() != 2:
                    raise ValueError(f"panels[{i}][{j}] must be 2-D, got {tuple(density.shape)}")
                peak = density.max().clamp_min(torch.finfo(torch.float64).tiny)
                ax.imshow(
                    (density / peak).numpy(), origin="lower", extent=extent, cmap=cmap, vmin=0
                )
            if i == 0:
                ax.set_title(col_labels[j], fontsize=9)
            if j == 0:
                ax.set_ylabel(row_labels[i], fontsize=9)
    fig.tight_layout()
    return fig


def tile_images(images: Tensor, nrow: int, shape: tuple[int, int], pad: int = 1) -> Tensor:
    """Tile ``images`` (``(N, H*W)`` or ``(N, H, W)``) into one ``(rows*(H+pad)-pad,
    nrow*(W+pad)-pad)`` array, ``nrow`` images per row (as ``torchvision``'s ``make_grid``),
    padding and empty cells filled with the images' minimum."""
    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if nrow < 1:
        raise ValueError(f"nrow must be a positive integer, got {nrow!r}")
    h, w = shape
    if images.numel() == 0 or tuple(images.shape[1:]) not in ((h * w,), (h, w)):
        raise ValueError(f"images of shape {tuple(images.shape)} do not hold images of {shape}")
    imgs = images.detach().cpu().reshape(-1, h, w)
    n = imgs.shape[0]
    rows, cols = math.ceil(n / nrow), min(n, nrow)
    finite = imgs[torch.isfinite(imgs)]  # a nan pixel must not turn the padding nan
    fill = finite.min().item() if finite.numel() else 0.0
    out = imgs.new_full((rows * (h + pad) - pad, cols * (w + pad) - pad), fill)
    for k in range(n):
        r, c = divmod(k, nrow)
        out[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = imgs[k]
    return out


def image_grid(
    images: Tensor,
    nrow: int,
    shape: tuple[int, int],
    *,
    title: str | None = None,
    cmap: str = "gray",
    vmin: float | None = None,
    vmax: float | None = None,
    row_labels: Sequence[str] | None = None,
    scale: float = 0.25,
) -> Figure:
    """A figure of ``images`` tiled ``nrow`` per row (see :func:`tile_images`), e.g. digit
    samples or reconstructions, with optional color limits and one label per row of tiles;
    ``scale`` is inches per image side unit of 8 pixels."""
    tiled = tile_images(images, nrow, shape)
    height, width = tiled.shape
    fig = _figure(max(1.0, width * scale / 8), max(1.0, height * scale / 8))
    left = 0.1 if row_labels else 0.0
    ax = fig.add_axes((left, 0, 1 - left, 0.92 if title else 1))
    ax.imshow(tiled.float().numpy(), cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    if row_labels:
        h = shape[0]
        ax.set_xticks([])
        ax.set_yticks([r * (h + 1) + (h - 1) / 2 for r in range(len(row_labels))])
        ax.set_yticklabels(list(row_labels), fontsize=7)
    else:
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=9)
    return fig
