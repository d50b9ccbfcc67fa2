r"""The model zoo's families and registry: how each named model is built from its settings,
trained, evaluated and sampled, with the choices of ``flowdist demo`` (or of the model's
benchmark) as defaults."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import torch
from pyro.infer import TraceEnum_ELBO, TraceMeanField_ELBO
from torch import Tensor, nn

from flowdist.ebm.base import UnnormalizedDistribution
from flowdist.ebm.boltzmann import BoltzmannMachine
from flowdist.ebm.dbm import DeepBoltzmannMachine
from flowdist.ebm.demo import fit_dbm
from flowdist.ebm.partition import PartitionTooLargeError
from flowdist.ebm.rbm import BernoulliRBM, GaussianRBM
from flowdist.ebm.train import train_cd
from flowdist.flows.autoregressive import MAF
from flowdist.flows.core import Flow
from flowdist.flows.coupling import NICE, RealNVP
from flowdist.flows.demo_energies import seeded
from flowdist.flows.glow import Glow
from flowdist.flows.train import fit_density
from flowdist.transforms.image import LogitTransform, bits_per_dim
from flowdist.vae.conditional import ConditionalVAE, SemiSupervisedVAE
from flowdist.vae.evaluate import importance_log_likelihood
from flowdist.vae.train import fit as fit_vae
from flowdist.vae.vae import VAE
from flowdist.zoo.data import DataSet, DataSpec, binarize_levels, dequantize_levels

__all__ = [
    "MODELS",
    "SETTINGS_HELP",
    "DBMModel",
    "EnergyModel",
    "Evaluation",
    "FlowModel",
    "M2Model",
    "Prepared",
    "RealEnergyModel",
    "Run",
    "Settings",
    "VAEModel",
    "ZooModel",
    "module_device",
]

Settings = dict[str, Any]


# ------------------------------------------------------------------------------- evaluations
@dataclass(frozen=True)
class Evaluation:
    """A test log-likelihood and how it was obtained.

    ``log_likelihood`` is the mean over the ``examples`` test examples in nats per example,
    ``std_error`` its standard error over examples; ``method`` is ``"exact"``, ``"AIS
    estimate"``, ``"lower bound"`` or ``"importance-weighted estimate"``, ``how`` says how in
    words; ``details`` holds the numbers behind it (e.g. ``log_z`` and ``log_z_std_error``,
    ``elbo``, ``k``)."""

    model: str
    examples: int
    log_likelihood: float
    std_error: float
    method: str
    how: str
    bits_per_dim: float | None = None
    details: dict[str, float] = field(default_factory=dict)


def _mean_and_error(values: Tensor) -> tuple[float, float]:
    values = values.double()
    return values.mean().item(), (values.std() / math.sqrt(values.numel())).item()


@dataclass(frozen=True)
class Prepared:
    """The tensors a model takes (train, test, labels), the data's :class:`DataSpec` and a note
    on how the tensors were made from the data."""

    train: Tensor
    test: Tensor
    train_y: Tensor | None
    test_y: Tensor | None
    spec: DataSpec
    note: str

    def to(self, device: torch.device) -> Prepared:
        """The same tensors on ``device``."""

        def move(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device)

        return replace(
            self,
            train=self.train.to(device),
            test=self.test.to(device),
            train_y=move(self.train_y),
            test_y=move(self.test_y),
        )


@dataclass(frozen=True)
class Run:
    """What a training run draws its randomness from, and whether it shows progress bars."""

    seed: int
    generator: torch.Generator
    progress: bool = False


# ------------------------------------------------------------------------------------ models
class ZooModel(ABC):
    """A named model: its settings (hyper-parameters, training and evaluation budgets) with
    their defaults, the data it takes, and how it is built, trained, evaluated and sampled."""

    #: The model's family, its data and its evaluation, in words.
    family: ClassVar[str]

    def __init__(
        self,
        name: str,
        summary: str,
        defaults: Mapping[str, Any],
        make: Callable[..., nn.Module],
        *,
        labels: bool = False,
    ) -> None:
        self.name, self.summary, self.defaults = name, summary, dict(defaults)
        self.make, self.labels = make, labels

    def settings(self, overrides: Mapping[str, Any] | None = None) -> Settings:
        """The defaults updated with ``overrides``; strings (from a command line) are parsed as
        the default's type (``hidden=256,256`` for a tuple, ``persistent=true``)."""
        out = dict(self.defaults)
        for key, value in (overrides or {}).items():
            if key not in self.defaults:
                raise ValueError(
                    f"{self.name} has no setting {key!r}; its settings are "
                    f"{', '.join(self.defaults)} (flowdist models {self.name})"
                )
            out[key] = _parse(key, value, self.defaults[key])
        return out

    def check(self, spec: DataSpec) -> None:
        """Raise a :class:`ValueError` naming the problem if the model cannot take the data."""
        if self.labels and spec.classes is None:
            raise ValueError(
                f"{self.name} needs labels, and {spec.source} has none (give train_y and test_y)"
            )

    @abstractmethod
    def prepare(self, data: DataSet, s: Settings, seed: int) -> Prepared:
        """The data as the model takes them."""

    @abstractmethod
    def build(self, s: Settings, spec: DataSpec, generator: torch.Generator) -> nn.Module:
        """A fresh module for data described by ``spec``."""

    @abstractmethod
    def fit(self, module: nn.Module, data: Prepared, s: Settings, run: Run) -> Any:
        """Train ``module`` in place; returns a history to record."""

    @abstractmethod
    def evaluate(self, module: nn.Module, data: Prepared, s: Settings, *, seed: int) -> Evaluation:
        """The test log-likelihood and how it was obtained."""

    @abstractmethod
    def sample(self, module: nn.Module, n: int, s: Settings, *, seed: int) -> Tensor:
        """``n`` samples, shape ``(n, *event)`` in the model's own space."""


def _parse(key: str, value: Any, default: Any) -> Any:
    """``value`` as the type of ``default``."""
    if not isinstance(value, str) or isinstance(default, str):
        kind = type(default)
        if isinstance(value, list) and isinstance(default, tuple):
            value = tuple(value)
        if type(value) is kind or (kind is float and type(value) is int):
            return kind(value)
        raise ValueError(f"setting {key}: expected {kind.__name__}, got {value!r}")
    text = value.strip()
    try:
        if isinstance(default, bool):
            flags = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
            return flags[text.lower()]
        if isinstance(default, tuple):
            return tuple(int(v) for v in text.split(",") if v.strip())
        return type(default)(text)
    except (KeyError, ValueError):
        example = {bool: "true or false", tuple: "comma-separated integers, e.g. 128,128"}
        wanted = example.get(type(default), type(default).__name__)
        raise ValueError(f"setting {key}={value}: expected {wanted}") from None


# -- flows ------------------------------------------------------------------------------------
FlowMaker = Callable[[Settings, tuple[int, ...], list, torch.Generator], Flow]

_FLOW_TRAINING = {"epochs": 25, "batch_size": 128, "lr": 2e-3, "alpha": 0.05}


class FlowModel(ZooModel):
    """A flow on pixel levels dequantised to :math:`[0, 1)`, with RealNVP's logit
    pre-processing (``alpha``) inside it; trained by maximum likelihood (:func:`fit_density`),
    evaluated exactly."""

    family = "normalizing flows: dequantised pixel levels; exact log-likelihood"

    def __init__(
        self,
        name: str,
        summary: str,
        defaults: Mapping[str, Any],
        make: FlowMaker,
        *,
        image: bool = False,
    ) -> None:
        super().__init__(name, summary, {**defaults, **_FLOW_TRAINING}, make)
        self.image = image

    def check(self, spec: DataSpec) -> None:
        super().check(spec)
        if self.image and spec.image is None:
            raise ValueError(
                f"{self.name} needs image-shaped examples (H, W) or (C, H, W), got {spec.shape}"
            )

    def _event(self, spec: DataSpec) -> tuple[int, ...]:
        return spec.image if self.image and spec.image else (spec.features,)

    def prepare(self, data: DataSet, s: Settings, seed: int) -> Prepared:
        train, test, note = dequantize_levels(data, self.name, seed)
        event = self._event(data.spec)
        return Prepared(
            train.reshape(-1, *event), test.reshape(-1, *event), None, None, data.spec, note
        )

    def build(self, s: Settings, spec: DataSpec, generator: torch.Generator) -> Flow:
        event = self._event(spec)
        logit = LogitTransform(*event, alpha=s["alpha"]).inv
        return self.make(s, event, [logit], generator)

    def fit(self, module: Any, data: Prepared, s: Settings, run: Run) -> Any:
        batch = min(s["batch_size"], len(data.train))
        result = fit_density(
            module,
            data.train,
            epochs=s["epochs"],
            batch_size=batch,
            lr=s["lr"],
            seed=run.seed,
            progress=run.progress,
        )
        return {"train_nll": result.train_nll}

    @torch.no_grad()
    def evaluate(self, module: Any, data: Prepared, s: Settings, *, seed: int) -> Evaluation:
        ll = torch.cat([module().log_prob(x).double() for x in data.test.split(1000)])
        mean, se = _mean_and_error(ll)
        dims, levels = data.spec.features, data.spec.levels
        return Evaluation(
            self.name,
            len(ll),
            mean,
            se,
            "exact",
            "change of variables through every bijector, at the test pixels dequantised with "
            f"seed {seed}: the density on [0, 1]^{dims}",
            bits_per_dim(ll, dims, levels).mean().item(),
            {"levels": levels},
        )

    @torch.no_grad()
    def sample(self, module: Any, n: int, s: Settings, *, seed: int) -> Tensor:
        with seeded(seed, module_device(module)):
            x, _ = module().rsample_and_log_prob((n,))
        return x.clamp(0, 1)


# -- energy-based models ----------------------------------------------------------------------
_CD = {"batch_size": 20, "lr": 0.05, "momentum": 0.5, "gibbs_steps": 1, "persistent": False}
_AIS = {"ais_chains": 100, "ais_betas": 14500, "burn_in": 1000}


class EnergyModel(ZooModel):
    """An energy-based model trained by CD-k / PCD-k (:func:`train_cd`); evaluated exactly
    when :math:`\\log Z` can be enumerated, by AIS otherwise; sampled by Gibbs sampling."""

    family = "energy-based models: binarised pixels (grbm: real values); exact or AIS log Z"

    #: Whether the model takes binarised pixels (else dequantised pixels or real values).
    binary = True

    def prepare(self, data: DataSet, s: Settings, seed: int) -> Prepared:
        if self.binary:
            train, test, note = binarize_levels(data, self.name)
        elif data.levels is not None:
            train, test, note = dequantize_levels(data, self.name, seed)
        else:
            train, test, note = data.train_x, data.test_x, "real values as given"
        return Prepared(train.flatten(1), test.flatten(1), None, None, data.spec, note)

    def build(self, s: Settings, spec: DataSpec, generator: torch.Generator) -> nn.Module:
        return self.make(s, spec.features, generator)

    #: The training function, called as ``trainer(module, train, generator=, progress=,
    #: **arguments)``, and its keyword arguments: argument name -> setting name.
    trainer = staticmethod(train_cd)
    trainer_arguments: ClassVar[dict[str, str]] = {
        "epochs": "epochs",
        "batch_size": "batch_size",
        "k": "gibbs_steps",
        "persistent": "persistent",
        "lr": "lr",
        "momentum": "momentum",
    }

    def fit(self, module: Any, data: Prepared, s: Settings, run: Run) -> Any:
        arguments = {name: s[key] for name, key in self.trainer_arguments.items()}
        self.trainer(
            module, data.train, generator=run.generator, progress=run.progress, **arguments
        )
        return {}

    def _log_z(
        self, module: UnnormalizedDistribution, data: Prepared, s: Settings, seed: int
    ) -> tuple[str, dict[str, Any]]:
        """Normalise ``module``: the exact :math:`\\log Z` when it can be enumerated, else an
        AIS estimate (kept by the module for ``log_prob``)."""
        try:
            return "exact", {"log_z": float(module.log_partition())}
        except PartitionTooLargeError:
            pass
        g = torch.Generator(device=data.train.device).manual_seed(seed)
        est = module.estimate_log_partition(
            num_chains=s["ais_chains"],
            betas=s["ais_betas"],
            data=data.train if self.binary else None,
            generator=g,
        )
        return "ais", {
            "log_z": est.log_z,
            "log_z_std_error": est.std_error,
            "ais_chains": s["ais_chains"],
            "ais_betas": est.num_betas,
        }

    @staticmethod
    def _how(kind: str, d: dict[str, Any]) -> str:
        if kind == "exact":
            return f"log Z = {d['log_z']:.3f}, exact (by enumeration)"
        return (
            f"log Z = {d['log_z']:.3f} ± {d['log_z_std_error']:.3f} by annealed importance "
            f"sampling ({d['ais_chains']} runs, {d['ais_betas']} intermediate distributions)"
        )

    @torch.no_grad()
    def evaluate(self, module: Any, data: Prepared, s: Settings, *, seed: int) -> Evaluation:
        kind, details = self._log_z(module, data, s, seed)
        mean, se = _mean_and_error(module.log_prob(data.test))
        method = "exact" if kind == "exact" else "AIS estimate"
        return Evaluation(
            self.name, len(data.test), mean, se, method, self._how(kind, details), None, details
        )

    @torch.no_grad()
    def sample(self, module: Any, n: int, s: Settings, *, seed: int) -> Tensor:
        g = torch.Generator(device=module_device(module)).manual_seed(seed)
        return module.sample((n,), burn_in=s["burn_in"], generator=g)


class RealEnergyModel(EnergyModel):
    """An energy-based model of real values: dequantised pixel levels, or real-valued data as
    they are."""

    binary = False


class DBMModel(EnergyModel):
    """The deep Boltzmann machine: the demo's recipe (:func:`flowdist.ebm.demo.fit_dbm`), and the
    variational lower bound with an exact or AIS :math:`\\log Z`."""

    trainer = staticmethod(fit_dbm)
    trainer_arguments: ClassVar[dict[str, str]] = {
        key: key for key in ("epochs", "batch_size", "pretrain_lr", "lr", "final_lr", "momentum")
    }

    @torch.no_grad()
    def evaluate(self, module: Any, data: Prepared, s: Settings, *, seed: int) -> Evaluation:
        kind, details = self._log_z(module, data, s, seed)
        bound = module.variational_lower_bound(data.test, s["mean_field_iters"])
        mean, se = _mean_and_error(bound)
        how = (
            f"variational lower bound (mean-field posterior, {s['mean_field_iters']} "
            f"iterations) with {self._how(kind, details)}"
        )
        return Evaluation(self.name, len(data.test), mean, se, "lower bound", how, None, details)


# -- variational autoencoders -----------------------------------------------------------------
_VAE = {"z_dim": 8, "hidden": (256,), "epochs": 150, "batch_size": 128, "lr": 3e-3, "k": 1000}


class VAEModel(ZooModel):
    """A VAE with a Bernoulli likelihood on binarised pixels, trained with the closed-form-KL
    ELBO (:func:`flowdist.vae.fit`); evaluated by importance sampling with ``k`` samples."""

    family = "variational autoencoders: binarised pixels; importance-weighted estimate"

    def prepare(self, data: DataSet, s: Settings, seed: int) -> Prepared:
        train, test, note = binarize_levels(data, self.name)
        ys = (data.train_y, data.test_y) if self.labels else (None, None)
        return Prepared(train.flatten(1), test.flatten(1), *ys, data.spec, note)

    def build(self, s: Settings, spec: DataSpec, generator: torch.Generator) -> nn.Module:
        return self.make(s, spec)

    def _inputs(self, data: Prepared, train: bool) -> tuple[Tensor, ...]:
        x, y = (data.train, data.train_y) if train else (data.test, data.test_y)
        return (x,) if y is None else (x, y)

    def _loss(self) -> Any:
        return TraceMeanField_ELBO()

    def fit(self, module: Any, data: Prepared, s: Settings, run: Run) -> Any:
        result = fit_vae(
            module,
            self._inputs(data, train=True),
            epochs=s["epochs"],
            batch_size=s["batch_size"],
            lr=s["lr"],
            loss=self._loss(),
            seed=run.seed,
            progress=run.progress,
        )
        return {"train_loss": [row["train_loss"] for row in result.history]}

    def _quantity(self) -> str:
        return "log p(x | y) at the test labels" if self.labels else "log p(x)"

    @torch.no_grad()
    def evaluate(self, module: Any, data: Prepared, s: Settings, *, seed: int) -> Evaluation:
        test = self._inputs(data, train=False)
        with seeded(seed, module_device(module)):
            iw, elbo = importance_log_likelihood(module.model, module.guide, *test, k=s["k"])
        mean, se = _mean_and_error(iw)
        how = (
            f"{self._quantity()} from k = {s['k']} samples of the guide per example (the IWAE "
            "bound: below the log-likelihood in expectation, converging to it as k grows; "
            f"seed {seed}); the ELBO is {elbo.double().mean().item():.3f}"
        )
        details = {"k": s["k"], "elbo": elbo.double().mean().item()}
        return Evaluation(
            self.name, len(iw), mean, se, "importance-weighted estimate", how, None, details
        )

    @torch.no_grad()
    def sample(self, module: Any, n: int, s: Settings, *, seed: int) -> Tensor:
        device = module_device(module)
        y = torch.arange(n, device=device) % module.n_classes if self.labels else None
        with seeded(seed, device):
            return module.sample(n, y, mean=False)


class M2Model(VAEModel):
    """The semi-supervised M2 model: ``labels`` training labels kept (class-balanced), the rest
    hidden; trained with the label enumerated (``TraceEnum_ELBO``); evaluated on
    :math:`\\log p(x)` with the label sampled from the classifier, and its test accuracy."""

    def prepare(self, data: DataSet, s: Settings, seed: int) -> Prepared:
        full = super().prepare(data, s, seed)
        assert full.train_y is not None and data.spec.classes is not None
        per_class = max(1, s["labels"] // data.spec.classes)
        keep = torch.zeros_like(full.train_y, dtype=torch.bool)
        for c in range(data.spec.classes):
            keep[torch.nonzero(full.train_y == c).flatten()[:per_class]] = True
        hidden = torch.where(keep, full.train_y, -1)
        note = f"{full.note}; {int(keep.sum())} training labels kept, the others hidden"
        return Prepared(full.train, full.test, hidden, full.test_y, full.spec, note)

    def _loss(self) -> Any:
        return TraceEnum_ELBO(max_plate_nesting=1)

    def _quantity(self) -> str:
        return "log p(x), labels drawn from the classifier q(y | x),"

    @torch.no_grad()
    def evaluate(self, module: Any, data: Prepared, s: Settings, *, seed: int) -> Evaluation:
        unlabelled = replace(data, train_y=None, test_y=None)
        result = super().evaluate(module, unlabelled, s, seed=seed)
        accuracy = float((module.classify(data.test) == data.test_y).double().mean())
        return replace(
            result,
            how=f"{result.how}; test accuracy of q(y | x) {accuracy:.3f}",
            details={**result.details, "accuracy": accuracy},
        )


def module_device(module: nn.Module) -> torch.device:
    """The device of ``module``'s parameters."""
    return next(module.parameters()).device


# ---------------------------------------------------------------------------------- registry
def _vector_flow(cls: type[Flow]) -> FlowMaker:
    """The maker of a flow on vectors whose constructor takes ``(features, layers, hidden)``."""
    return lambda s, event, t, g: cls(event[0], s["layers"], s["hidden"], data_transforms=t)


_FLOWS: tuple[FlowModel, ...] = (
    FlowModel(
        "nice",
        "NICE: additive couplings, logistic base (Dinh et al. 2015)",
        {"layers": 4, "hidden": (256, 256)},
        _vector_flow(NICE),
    ),
    FlowModel(
        "realnvp",
        "RealNVP: affine couplings (Dinh et al. 2017)",
        {"layers": 6, "hidden": (128, 128)},
        _vector_flow(RealNVP),
    ),
    FlowModel(
        "maf",
        "masked autoregressive flow (Papamakarios et al. 2017)",
        {"layers": 5, "hidden": (128, 128)},
        _vector_flow(MAF),
    ),
    FlowModel(
        "glow",
        "Glow: multi-scale, ActNorm, 1x1 convolutions (Kingma & Dhariwal 2018); images only",
        {"scales": 2, "steps": 3, "hidden": 48},
        lambda s, event, t, g: Glow(
            event, s["scales"], s["steps"], s["hidden"], generator=g, data_transforms=t
        ),
        image=True,
    ),
)

_EBMS: tuple[EnergyModel, ...] = (
    EnergyModel(
        "rbm",
        "restricted Boltzmann machine with binary units (exact log Z up to 25 hidden units)",
        {"hidden": 16, "epochs": 30, **_CD, **_AIS},
        lambda s, d, g: BernoulliRBM(d, s["hidden"], generator=g),
    ),
    RealEnergyModel(
        "grbm",
        "Gaussian RBM: real-valued visible units with learned variances",
        {
            "hidden": 16,
            "sigma": 0.3,
            "learn_sigma": True,
            "min_sigma": 0.05,
            "epochs": 50,
            **_CD,
            "lr": 3e-3,
            **_AIS,
        },
        lambda s, d, g: GaussianRBM(
            d,
            s["hidden"],
            sigma=s["sigma"],
            learn_sigma=s["learn_sigma"],
            min_sigma=s["min_sigma"],
            generator=g,
        ),
    ),
    DBMModel(
        "dbm",
        "deep Boltzmann machine: pre-training, then mean-field + persistent chains",
        {
            "hidden": (32, 16),
            "epochs": 30,
            "batch_size": 20,
            "pretrain_lr": 0.05,
            "lr": 0.02,
            "final_lr": 0.002,
            "momentum": 0.5,
            "mean_field_iters": 30,
            **_AIS,
        },
        lambda s, d, g: DeepBoltzmannMachine((d, *s["hidden"]), generator=g),
    ),
    EnergyModel(
        "bm",
        "fully visible Boltzmann machine (pairwise couplings), persistent CD",
        # AIS: each intermediate distribution costs a sweep of single-site updates, so fewer
        # than for the RBMs (the quick demo's 2000); the printed error says if it is enough
        {"epochs": 30, **_CD, "persistent": True, **_AIS, "ais_betas": 2000},
        lambda s, d, g: BoltzmannMachine(d, generator=g),
    ),
)

_VAES: tuple[VAEModel, ...] = (
    VAEModel(
        "vae",
        "VAE: Bernoulli likelihood, MLP encoder and decoder (Kingma & Welling 2014)",
        _VAE,
        lambda s, spec: VAE(spec.features, s["z_dim"], hidden=s["hidden"]),
    ),
    VAEModel(
        "cvae",
        "conditional VAE p(x | y); needs labels",
        _VAE,
        lambda s, spec: ConditionalVAE(spec.features, spec.classes, s["z_dim"], hidden=s["hidden"]),
        labels=True,
    ),
    M2Model(
        "m2",
        "semi-supervised VAE M2 (Kingma et al. 2014): keeps a few labels, learns q(y | x)",
        {**_VAE, "labels": 100, "aux_weight": 46.0},
        lambda s, spec: SemiSupervisedVAE(
            spec.features, spec.classes, s["z_dim"], hidden=s["hidden"], aux_weight=s["aux_weight"]
        ),
        labels=True,
    ),
)

#: Every named model, by name.
MODELS: dict[str, ZooModel] = {m.name: m for m in (*_FLOWS, *_EBMS, *_VAES)}

#: What each setting means.
SETTINGS_HELP: dict[str, str] = {
    "layers": "coupling or autoregressive layers",
    "hidden": "hidden sizes (flows, VAEs: of each network; RBMs: units; dbm: layers)",
    "scales": "Glow's levels (squeeze, steps, split off half the channels)",
    "steps": "Glow steps per scale",
    "alpha": "logit pre-processing logit(alpha + (1 - 2 alpha) y) inside the flow",
    "epochs": "passes over the training data",
    "batch_size": "examples per update",
    "lr": "learning rate",
    "momentum": "momentum of the contrastive-divergence updates",
    "gibbs_steps": "Gibbs steps per update (the k of CD-k)",
    "persistent": "persistent chains (PCD) instead of chains started at the data (CD)",
    "sigma": "initial standard deviation of the visible units",
    "learn_sigma": "learn the visible units' standard deviations",
    "min_sigma": "lower bound on the learned standard deviations",
    "pretrain_lr": "learning rate of the greedy layer-wise pre-training",
    "final_lr": "the joint training's learning rate decays linearly from lr towards this",
    "mean_field_iters": "mean-field iterations of the variational lower bound",
    "ais_chains": "AIS runs, when log Z cannot be enumerated",
    "ais_betas": "AIS intermediate distributions",
    "burn_in": "Gibbs sweeps before a sample is taken",
    "z_dim": "latent dimensions",
    "k": "importance samples per test example (evaluation)",
    "labels": "training labels kept (class-balanced); the others are hidden",
    "aux_weight": "weight of the classifier's loss on labelled examples",
}
