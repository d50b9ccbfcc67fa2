r"""Argument checks shared by the energy-based models, the MCMC kernels and the VAEs.

Every check raises a :class:`ValueError` (a value out of range) or a :class:`TypeError` (a value
of the wrong kind) whose message starts with the argument's name, so that a caller's mistake
never surfaces as a traceback from deep inside torch or Pyro. (Positive sizes are checked by
:func:`flowdist.transforms.base.check_dim`.)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Real
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "check_count",
    "check_float_dtype",
    "check_generator",
    "check_number",
    "check_patience",
    "squares_finite",
]


def check_count(name: str, value: Any, *, least: int = 0) -> None:
    """Raise unless ``value`` is an integer ``>= least`` (``True`` and ``False`` are not
    counts)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")


def check_number(
    name: str, value: Any, *, least: float = -math.inf, positive: bool = False
) -> float:
    """Raise unless ``value`` is a finite real number ``>= least`` (``> 0`` with ``positive``);
    returns it as a float."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not math.isfinite(value) or value < least or (positive and value <= 0):
        bound = "positive" if positive else f">= {least:g}"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


def check_patience(patience: Any, valid: Any) -> None:
    """Raise unless ``patience`` is ``None`` or a count of epochs, with ``valid`` data to watch."""
    if patience is None:
        return
    check_count("patience", patience)
    if valid is None:
        raise ValueError("patience: early stopping needs valid data")


def check_float_dtype(name: str, dtype: Any) -> None:
    """Raise unless ``dtype`` is ``None`` or a floating-point :class:`torch.dtype`."""
    if dtype is not None and (not isinstance(dtype, torch.dtype) or not dtype.is_floating_point):
        raise TypeError(f"{name} must be a floating-point torch.dtype or None, got {dtype!r}")


def squares_finite(x: torch.Tensor) -> torch.Tensor:
    r"""Whether every value of ``x`` is finite with a square that does not overflow its dtype
    (:math:`|x| \le \sqrt{\text{max}}`, about :math:`1.8 \cdot 10^{19}` in float32), as a 0-d
    bool tensor: a quadratic energy or log-density of larger values cannot be computed. Integer
    tensors pass."""
    if not x.is_floating_point():
        return torch.ones((), dtype=torch.bool, device=x.device)
    return (x.abs() <= math.sqrt(torch.finfo(x.dtype).max)).all()


def generator_device(generator: torch.Generator | None) -> torch.device | None:
    """The device that draws with ``generator`` are made on (a CUDA generator draws only on
    CUDA); ``None`` for torch's default generator."""
    return None if generator is None else generator.device


def initial_draw(
    draw: Callable[..., Tensor],
    *shape: int,
    generator: torch.Generator | None,
    device: torch.device | str | None,
    **kwargs: Any,
) -> Tensor:
    """``draw(*shape, **kwargs)`` (``torch.randn``, say) made with ``generator`` on that
    generator's device, so that a seed gives the same initial parameters wherever the model
    lives, then moved to ``device`` (the default device when ``None``)."""
    value = draw(*shape, generator=generator, device=generator_device(generator), **kwargs)
    return value.to(torch.empty(0, device=device).device)


def check_generator(generator: Any, device: torch.device | None = None) -> None:
    """Raise unless ``generator`` is ``None`` or a :class:`torch.Generator` (that draws on
    ``device``'s type, when given)."""
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator or None, got {type(generator).__name__}"
        )
    if device is not None and generator.device.type != device.type:
        raise ValueError(
            f"generator draws on {generator.device.type}, but the tensors are on {device}: "
            f"pass torch.Generator({device.type!r})"
        )
