r"""Named ready-made models: build one from a configuration, train it, evaluate it, sample it.

This is what ``flowdist train / evaluate / sample`` run (:mod:`flowdist.cli`). Every model of
the library that fits a data set of images or vectors has a name in :data:`MODELS`:

* normalizing flows ``nice``, ``realnvp``, ``maf``, ``glow`` — pixel levels dequantised to
  :math:`[0, 1)` (``(k + u)/L``), RealNVP's logit pre-processing inside the flow; exact
  log-likelihood;
* energy-based models ``rbm``, ``dbm``, ``bm`` on binarised pixels and ``grbm`` (Gaussian RBM)
  on dequantised pixels or real values; exact log-likelihood while :math:`\log Z` can be
  enumerated, otherwise an AIS estimate (``dbm``: the variational lower bound);
* variational autoencoders ``vae``, ``cvae`` (labels needed) and ``m2`` (semi-supervised: a
  few labels) on binarised pixels; importance-weighted estimate with ``k`` samples.

Pixel levels are binarised at the middle level, :math:`x > (L - 1)/2` (for the digits' levels
0–16: :math:`x > 8`, as the demo). Default settings are the choices of ``flowdist demo`` for
the models it fits (``grbm`` and ``m2``: of their benchmarks). The planar and radial flows are
absent: they fit a target density, not data.

A trained model travels as a :class:`Fitted` — module, configuration and metadata — saved with
:func:`flowdist.checkpoint.save_checkpoint`, so :func:`load` rebuilds it from the file alone.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from flowdist.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from flowdist.flows.demo_energies import seeded
from flowdist.zoo.data import DataSet, DataSpec, load_data
from flowdist.zoo.models import (
    MODELS,
    SETTINGS_HELP,
    Evaluation,
    Run,
    Settings,
    ZooModel,
    module_device,
)

__all__ = [
    "MODELS",
    "SETTINGS_HELP",
    "DataSet",
    "DataSpec",
    "Evaluation",
    "Fitted",
    "ZooModel",
    "evaluate",
    "get",
    "load",
    "load_data",
    "sample",
    "save",
    "train",
]


# ------------------------------------------------------------------------------ the workflow
@dataclass
class Fitted:
    """A model of the zoo with its module, settings, data description and metadata — what a
    checkpoint holds."""

    model: ZooModel
    module: nn.Module
    settings: Settings
    spec: DataSpec
    metadata: dict[str, Any]

    @property
    def config(self) -> dict[str, Any]:
        """What rebuilds the module: ``{"settings": ..., "data": ...}``."""
        return {"settings": dict(self.settings), "data": self.spec.as_config()}


def get(name: str) -> ZooModel:
    """The model called ``name``; a :class:`ValueError` lists the names otherwise."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; the models are {', '.join(MODELS)}")
    return MODELS[name]


def train(
    name: str,
    data: DataSet,
    *,
    settings: Mapping[str, Any] | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> Fitted:
    """Build the model ``name`` with its default settings updated by ``settings``, and train it
    on ``data.train_x`` (deterministic for a fixed ``seed`` on the CPU)."""
    model = get(name)
    s = model.settings(settings)
    model.check(data.spec)
    device = torch.device(device)
    prepared = model.prepare(data, s, seed).to(device)
    build_generator = torch.Generator().manual_seed(seed)  # modules are built on the CPU
    cpu = device.type == "cpu"
    generator = build_generator if cpu else torch.Generator(device=device).manual_seed(seed)
    start = time.perf_counter()
    with seeded(seed, device):
        module = model.build(s, data.spec, build_generator).to(device)
        history = model.fit(module, prepared, s, Run(seed, generator, progress))
    metadata = {
        "seed": seed,
        "seconds": time.perf_counter() - start,
        "preprocessing": prepared.note,
        "history": history,
        "torch": str(torch.__version__),
    }
    return Fitted(model, module, s, data.spec, metadata)


def save(fitted: Fitted, path: str | Path) -> Path:
    """Write ``fitted`` to a checkpoint (atomically); returns the path."""
    return save_checkpoint(path, fitted.model.name, fitted.config, fitted.module, fitted.metadata)


def load(path: str | Path, *, device: torch.device | str = "cpu") -> Fitted:
    """Rebuild a model saved by :func:`save` from the checkpoint alone; a
    :class:`~flowdist.checkpoint.CheckpointError` says why a file cannot be used."""
    ckpt = load_checkpoint(path, model=tuple(MODELS))
    model = MODELS[ckpt.model]
    try:
        s = model.settings(ckpt.config["settings"])
        spec = DataSpec.from_config(ckpt.config["data"])
        module = model.build(s, spec, torch.Generator())
        module.load_state_dict(ckpt.state_dict)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(
            f"checkpoint: {str(path)!r} holds a {ckpt.model!r} model that its configuration "
            f"does not rebuild ({type(err).__name__}: {' '.join(str(err).split())})"
        ) from err
    return Fitted(model, module.to(device), s, spec, ckpt.metadata)


def _check_compatible(fitted: Fitted, data: DataSet) -> None:
    want, got = fitted.spec, data.spec
    if (want.shape, want.levels) != (got.shape, got.levels):

        def kind(spec: DataSpec) -> str:
            values = f"{spec.levels} pixel levels" if spec.levels else "real values"
            return f"examples of shape {spec.shape} with {values}"

        raise ValueError(
            f"data: {fitted.model.name} was trained on {kind(want)} ({want.source}), but "
            f"{got.source} holds {kind(got)}"
        )
    if want.classes is not None and got.classes is not None and got.classes > want.classes:
        raise ValueError(
            f"data: {fitted.model.name} was trained on {want.classes} classes, but "
            f"{got.source} has labels up to {got.classes - 1}"
        )


def evaluate(fitted: Fitted, data: DataSet, *, seed: int = 0) -> Evaluation:
    """The test log-likelihood of ``fitted`` on ``data.test_x`` and how it was obtained; the
    data must look like the training data (shape, pixel levels)."""
    _check_compatible(fitted, data)
    fitted.model.check(data.spec)
    prepared = fitted.model.prepare(data, fitted.settings, seed).to(module_device(fitted.module))
    return fitted.model.evaluate(fitted.module, prepared, fitted.settings, seed=seed)


def sample(fitted: Fitted, n: int, *, seed: int = 0) -> Tensor:
    """``n`` samples of ``fitted``, shape ``(n, *shape)`` of the training examples, on the CPU:
    values in :math:`[0, 1]` for dequantised pixels (level :math:`k` covers
    :math:`[k/L, (k+1)/L)`), 0/1 for binarised pixels, real values otherwise."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    x = fitted.model.sample(fitted.module, n, fitted.settings, seed=seed)
    return x.reshape(n, *fitted.spec.shape).cpu()
