"""Robustness sweep over the energy-based models, their MCMC kernels and the VAEs (the flows'
sweep is tests/test_robustness.py): malformed input gives a correct result or a ValueError /
TypeError naming the argument — never a NaN, a hang or an internal traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pyro
import pytest
import torch
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from pyro.infer import Trace_ELBO, TraceEnum_ELBO
from robustness_helpers import (
    BAD_SIZES,
    KINDS,
    assert_clean_outcome,
    malformed_inputs,
    on_another_device,
)
from torch import Tensor, nn

from flowdist.ebm import (
    BernoulliRBM,
    BoltzmannMachine,
    DeepBoltzmannMachine,
    GaussianRBM,
    UnnormalizedDistribution,
    train_cd,
)
from flowdist.mcmc import (
    PersistentChains,
    alternating_gibbs_sweep,
    bernoulli,
    run_chain,
    site_gibbs_sweep,
)
from flowdist.vae import (
    IWAE_ELBO,
    VAE,
    BernoulliLikelihood,
    ConditionalVAE,
    ContinuousBernoulliLikelihood,
    GaussianLikelihood,
    SemiSupervisedVAE,
    fit,
    importance_log_likelihood,
)
from flowdist.vae.figures import digit_grid, latent_map


def _cases(names: Iterable[str], kinds: Iterable[str]) -> list[Any]:
    """``(name, kind)`` parameters for every name and kind."""
    return [pytest.param(name, kind, id=f"{name}-{kind}") for name in names for kind in kinds]


SWEEP = settings(
    max_examples=6, deadline=None, phases=[Phase.explicit, Phase.generate, Phase.shrink]
)
#: Kinds whose correct result, when there is one, has the batch shape of the input.
BATCHED = ("large", "overflow", "empty")

# ================================================================== energy-based models
D = 4  # visible units
EBMS: dict[str, Callable[[], UnnormalizedDistribution]] = {
    "bm": lambda: BoltzmannMachine(D),
    "rbm": lambda: BernoulliRBM(D, 3),
    "grbm": lambda: GaussianRBM(D, 3),
    "dbm": lambda: DeepBoltzmannMachine((D, 3, 2)),
}
EBM_INPUTS = malformed_inputs(D)


def _fresh_ebm(name: str) -> UnnormalizedDistribution:
    """A new model of kind ``name``, initialised from a fixed seed (failures reproduce)."""
    torch.manual_seed(0)
    return EBMS[name]()


def _densities(model: UnnormalizedDistribution) -> dict[str, Callable[[Any], Any]]:
    """The model's methods that take a batch of visible vectors."""
    methods: dict[str, Callable[[Any], Any]] = {
        name: getattr(model, name)
        for name in ("energy", "free_energy", "unnormalized_log_prob", "log_prob")
    }
    if isinstance(model, DeepBoltzmannMachine):
        methods["variational_lower_bound"] = model.variational_lower_bound
        methods["mean_field"] = lambda x: tuple(model.mean_field(x, 2))
    return methods


@pytest.mark.parametrize(("name", "kind"), _cases(EBMS, KINDS))
@SWEEP
@given(data=st.data())
def test_ebm_densities_on_malformed_input(name, kind, data):
    x = data.draw(EBM_INPUTS[kind])
    model = _fresh_ebm(name)
    for method_name, method in _densities(model).items():
        batched = kind in BATCHED and method_name != "mean_field"
        assert_clean_outcome(method, x, "x", tuple(x.shape[:-1]) if batched else None)


@pytest.mark.parametrize(("name", "kind"), _cases(EBMS, KINDS))
@SWEEP
@given(data=st.data())
def test_estimate_log_partition_data_on_malformed_input(name, kind, data):
    model = _fresh_ebm(name)

    def log_weights(x: Any) -> Tensor:
        return model.estimate_log_partition(num_chains=4, betas=5, data=x).log_weights

    assert_clean_outcome(log_weights, data.draw(EBM_INPUTS[kind]), "data", None)


def _trained_parameters(model: UnnormalizedDistribution, **kwargs: Any) -> tuple[Tensor, ...]:
    """Train ``model`` one epoch of CD-1 (``kwargs`` override the defaults; ``pretrain=True``:
    pre-train a DBM instead) and return its parameters."""
    kwargs = {"data": torch.zeros(4, D), "epochs": 1, "batch_size": 2, **kwargs}
    if kwargs.pop("pretrain", False):
        model.pretrain(**kwargs)
    else:
        train_cd(model, **kwargs)
    return tuple(p.detach() for p in model.parameters())


@pytest.mark.parametrize(("name", "kind"), _cases(EBMS, KINDS))
@SWEEP
@given(data=st.data())
def test_train_cd_data_on_malformed_input(name, kind, data):
    model = _fresh_ebm(name)
    x = data.draw(EBM_INPUTS[kind])
    assert_clean_outcome(lambda v: _trained_parameters(model, data=v), x, "data", None)


@pytest.mark.parametrize(("name", "kind"), _cases(["dbm"], KINDS))
@SWEEP
@given(data=st.data())
def test_dbm_pretrain_data_on_malformed_input(name, kind, data):
    model = _fresh_ebm(name)
    x = data.draw(EBM_INPUTS[kind])
    assert_clean_outcome(
        lambda v: _trained_parameters(model, data=v, pretrain=True), x, "data", None
    )


@pytest.mark.parametrize("name", sorted(EBMS))
@pytest.mark.parametrize("shape", [(0,), (3, 0)], ids=repr)
def test_empty_sample(name, shape):
    assert _fresh_ebm(name).sample(shape, burn_in=1).shape == (*shape, D)


@pytest.mark.parametrize("name", sorted(EBMS))
@pytest.mark.parametrize("shape", [(-1,), (2.5,), ("a",), 3, None], ids=repr)
def test_bad_sample_shapes(name, shape):
    with pytest.raises((ValueError, TypeError), match="sample_shape"):
        _fresh_ebm(name).sample(shape, burn_in=1)


def _bad_counts(name: str, valid: Iterable[Any] = ()) -> list[Any]:
    """``(argument, value)`` parameters for the BAD_SIZES an argument must reject (not those
    in ``valid``)."""
    return [pytest.param(name, bad, id=f"{name}={bad!r}") for bad in BAD_SIZES if bad not in valid]


@pytest.mark.parametrize("name", sorted(EBMS))
@pytest.mark.parametrize(
    ("argument", "bad"),
    _bad_counts("burn_in", valid=[0])
    + _bad_counts("thin")
    + _bad_counts("num_chains", valid=[None]),
)
def test_sample_counts(name, argument, bad):
    with pytest.raises((ValueError, TypeError), match=argument):
        _fresh_ebm(name).sample((2,), **{"burn_in": 1, argument: bad})


BAD_BETAS: list[Any] = [
    pytest.param(torch.tensor([0.0, float("nan"), 1.0]), id="nan"),
    pytest.param("3", id="str"),
    pytest.param(None, id="None"),
    pytest.param(True, id="True"),
    pytest.param(2, id="2"),
    pytest.param(2.5, id="2.5"),
    pytest.param(torch.tensor([0.0, 0.5]), id="not-to-1"),
]


@pytest.mark.parametrize("name", sorted(EBMS))
@pytest.mark.parametrize("betas", BAD_BETAS)
def test_estimate_log_partition_betas(name, betas):
    with pytest.raises((ValueError, TypeError), match=r"\bbetas\b"):
        _fresh_ebm(name).estimate_log_partition(num_chains=4, betas=betas)


@pytest.mark.parametrize("name", sorted(EBMS))
@pytest.mark.parametrize(("argument", "bad"), _bad_counts("num_chains"))
def test_estimate_log_partition_num_chains(name, argument, bad):
    with pytest.raises((ValueError, TypeError), match=argument):
        _fresh_ebm(name).estimate_log_partition(betas=5, **{argument: bad})


def _number_cases(argument: str, bad: Iterable[Any]) -> list[Any]:
    """``(argument, value)`` parameters for each ``bad`` value."""
    return [pytest.param(argument, v, id=f"{argument}={v!r}") for v in bad]


TRAIN_CD_ARGUMENTS = (
    _bad_counts("epochs")
    + _bad_counts("batch_size")
    + _bad_counts("k")
    + _number_cases("lr", [float("nan"), float("inf"), True, -1.0, "a"])
    + _number_cases("momentum", [float("nan"), -1.0, "a"])
    + _number_cases("weight_decay", [float("nan"), -1.0, "a"])
    + _number_cases("max_seconds", [float("nan"), -1.0, "a"])
    + _number_cases("callback", [3])
)


@pytest.mark.parametrize("name", ["bm", "rbm"])
@pytest.mark.parametrize(("argument", "bad"), TRAIN_CD_ARGUMENTS)
def test_train_cd_arguments(name, argument, bad):
    with pytest.raises((ValueError, TypeError), match=argument):
        _trained_parameters(_fresh_ebm(name), **{argument: bad})


@pytest.mark.parametrize("name", sorted(EBMS))
@pytest.mark.parametrize(("argument", "bad"), _number_cases("num_chains", [-2, 2.5, 0, "3", True]))
def test_train_cd_persistent_chains(name, argument, bad):
    with pytest.raises((ValueError, TypeError), match=argument):
        _trained_parameters(_fresh_ebm(name), persistent=True, num_chains=bad)


@pytest.mark.parametrize(("argument", "bad"), _bad_counts("num_iters", valid=[0]))
@pytest.mark.parametrize("method", ["mean_field", "variational_lower_bound"])
def test_dbm_num_iters(method, argument, bad):
    dbm = _fresh_ebm("dbm")
    with pytest.raises((ValueError, TypeError), match=argument):
        getattr(dbm, method)(torch.zeros(2, D), bad)


def _constructor_cases() -> list[Any]:
    """``(argument, build, bad)``: every size argument of every EBM constructor."""
    builds: list[tuple[str, Callable[[Any], Any]]] = [
        ("num_units", lambda v: BoltzmannMachine(v)),
        ("layer_sizes", lambda v: BernoulliRBM(v, 3)),
        ("layer_sizes", lambda v: BernoulliRBM(3, v)),
        ("layer_sizes", lambda v: DeepBoltzmannMachine((3, v, 2))),
        ("num_visible", lambda v: GaussianRBM(v, 3)),
        ("num_hidden", lambda v: GaussianRBM(3, v)),
    ]
    return [
        pytest.param(argument, build, bad, id=f"{argument}-{i}-{bad!r}")
        for i, (argument, build) in enumerate(builds)
        for bad in BAD_SIZES
    ]


@pytest.mark.parametrize(("argument", "build", "bad"), _constructor_cases())
def test_ebm_constructors_reject_bad_sizes(argument, build, bad):
    with pytest.raises((ValueError, TypeError), match=argument):
        build(bad)


def _argument_cases(
    argument: str, builds: dict[str, Callable[[Any], Any]], bad: list[Any]
) -> list[Any]:
    """``(argument, build, bad)`` parameters for each labelled ``build`` and ``bad`` value."""
    return [
        pytest.param(argument, build, v, id=f"{label}-{argument}={v!r}")
        for label, build in builds.items()
        for v in bad
    ]


EBM_ARGUMENTS = (
    _argument_cases(
        "init_std",
        {
            "bm": lambda v: BoltzmannMachine(3, init_std=v),
            "rbm": lambda v: BernoulliRBM(3, 2, init_std=v),
            "grbm": lambda v: GaussianRBM(3, 2, init_std=v),
        },
        [float("nan"), float("inf"), -1.0, "a", None],
    )
    + _argument_cases(
        "dtype",
        {
            "bm": lambda v: BoltzmannMachine(3, dtype=v),
            "rbm": lambda v: BernoulliRBM(3, 2, dtype=v),
            "grbm": lambda v: GaussianRBM(3, 2, dtype=v),
        },
        [torch.int64, torch.bool, "float32"],
    )
    + _argument_cases("layer_sizes", {"dbm": lambda v: DeepBoltzmannMachine(v)}, [5, None, "432"])
    + _argument_cases(
        "sigma",
        {"grbm": lambda v: GaussianRBM(3, 2, sigma=v)},
        [0.0, float("nan"), torch.ones(2), "a"],
    )
    + _argument_cases(
        "min_sigma", {"grbm": lambda v: GaussianRBM(3, 2, min_sigma=v)}, [float("nan"), -1.0, "a"]
    )
)


@pytest.mark.parametrize(("argument", "build", "bad"), EBM_ARGUMENTS)
def test_ebm_constructor_arguments(argument, build, bad):
    with pytest.raises((ValueError, TypeError), match=argument):
        build(bad)


# ================================================================== MCMC kernels
Y, J, B = torch.zeros(2, 3), torch.zeros(3, 3), torch.zeros(3)
MCMC_CASES: list[tuple[str, str, Callable[[], Any]]] = [
    ("bernoulli", "probs", lambda: bernoulli([0.5])),
    ("bernoulli", "probs", lambda: bernoulli(torch.ones(2, dtype=torch.long))),
    ("bernoulli", "generator", lambda: bernoulli(torch.zeros(2), 3)),
    ("site_gibbs_sweep", "y", lambda: site_gibbs_sweep([[0.0] * 3], J, B)),
    ("site_gibbs_sweep", "y", lambda: site_gibbs_sweep(torch.zeros(3), J, B)),
    ("site_gibbs_sweep", "coupling", lambda: site_gibbs_sweep(Y, torch.zeros(2, 2), B)),
    ("site_gibbs_sweep", "bias", lambda: site_gibbs_sweep(Y, J, torch.zeros(2))),
    ("site_gibbs_sweep", "coupling", lambda: site_gibbs_sweep(Y, J.double(), B)),
    ("site_gibbs_sweep", "coupling", lambda: site_gibbs_sweep(Y, J.to("meta"), B)),
    ("site_gibbs_sweep", "generator", lambda: site_gibbs_sweep(Y, J, B, 3)),
    ("alternating_gibbs_sweep", "layers", lambda: alternating_gibbs_sweep(3, bernoulli)),
    ("alternating_gibbs_sweep", "sample_layer", lambda: alternating_gibbs_sweep([Y], 3)),
    ("run_chain", "step", lambda: run_chain(3, Y, num_samples=2, burn_in=1)),
    ("run_chain", "extract", lambda: run_chain(bernoulli, Y, num_samples=2, burn_in=1, extract=3)),
    *(
        (
            f"run_chain-{argument}={bad!r}",
            argument,
            lambda a=argument, b=bad: run_chain(
                bernoulli, Y, **{"num_samples": 2, "burn_in": 1, a: b}
            ),
        )
        for argument, valid in (("num_samples", ()), ("burn_in", (0,)), ("thin", ()))
        for bad in BAD_SIZES
        if bad not in valid or isinstance(bad, bool)
    ),
    ("PersistentChains", "init", lambda: PersistentChains(3)),
    *(
        (
            f"PersistentChains.get-{bad!r}",
            "num_chains",
            lambda b=bad: PersistentChains(BernoulliRBM(3, 2).init_chain).get(b, Y),
        )
        for bad in BAD_SIZES
    ),
]


@pytest.mark.parametrize(
    ("argument", "call"), [pytest.param(a, c, id=f"{n}-{a}") for n, a, c in MCMC_CASES]
)
def test_mcmc_arguments(argument, call):
    with pytest.raises((ValueError, TypeError), match=rf"\b{argument}\b"):
        call()


def test_mcmc_empty_batches():
    assert site_gibbs_sweep(torch.zeros(0, 3), J, B).shape == (0, 3)
    assert bernoulli(torch.zeros(0)).shape == (0,)


# ================================================================== variational autoencoders
X, Z = 6, 2  # data and latent sizes
VAES: dict[str, Callable[[], VAE]] = {
    "vae": lambda: VAE(X, Z, hidden=(8,), name="r_vae"),
    "flow": lambda: VAE(X, Z, hidden=(8,), flow_steps=2, name="r_flow"),
    "gauss": lambda: VAE(X, Z, hidden=(8,), likelihood="gaussian", name="r_gauss"),
    "cvae": lambda: ConditionalVAE(X, 3, Z, hidden=(8,), name="r_cvae"),
    "m2": lambda: SemiSupervisedVAE(X, 3, Z, hidden=(8,), name="r_m2"),
}
CONDITIONAL = ("cvae", "m2")


def _fresh_vae(name: str) -> VAE:
    """A new model of kind ``name`` (Pyro's parameter store emptied, initialised from a fixed
    seed so that failures reproduce)."""
    pyro.clear_param_store()
    torch.manual_seed(0)
    return VAES[name]()


def _labels(model: VAE, like: Any) -> tuple[Tensor, ...]:
    """Labels 0 of the batch shape of ``like`` (two when it has none) when ``model`` is
    conditional; nothing otherwise."""
    if not isinstance(model, ConditionalVAE):
        return ()
    batch = like.shape[:-1] if isinstance(like, Tensor) and like.dim() else (2,)
    return (torch.zeros(batch, dtype=torch.long),)


def _loss(model: VAE) -> Any:
    """The training objective of ``model`` (M2 enumerates the labels of unlabelled rows)."""
    if isinstance(model, SemiSupervisedVAE):
        return TraceEnum_ELBO(max_plate_nesting=1)
    return Trace_ELBO()


def _data_methods(model: VAE) -> dict[str, Callable[..., Any]]:
    """The model's functions of a batch of data (and its labels, when conditional)."""
    methods: dict[str, Callable[..., Any]] = {
        "model": model.model,
        "guide": model.guide,
        "training_loss": lambda *a: model.training_loss(_loss(model), *a),
        "iwae": lambda *a: IWAE_ELBO(2)(model.model, model.guide, *a),
        "importance_log_likelihood": lambda *a: importance_log_likelihood(
            model.model, model.guide, *a, k=2
        ),
        "latent_mean": model.latent_mean,
        "reconstruct": model.reconstruct,
    }
    if isinstance(model, SemiSupervisedVAE):
        methods |= {
            "classify": lambda x, _: model.classify(x),
            "class_logits": lambda x, _: model.class_logits(x),
        }
    return methods


def _latent_methods(model: VAE) -> dict[str, Callable[..., Any]]:
    """The model's functions of latents (and labels, when conditional)."""
    return {"decode_mean": model.decode_mean, "decode": lambda *a: model.decode(*a).mean}


@pytest.mark.parametrize("argument", ["x", "z"])
@pytest.mark.parametrize(("name", "kind"), _cases(VAES, KINDS))
@SWEEP
@given(data=st.data())
def test_vae_inputs_on_malformed_input(argument, name, kind, data):
    """Data ``x`` for :func:`_data_methods`, latents ``z`` for :func:`_latent_methods`."""
    value = data.draw(malformed_inputs(X if argument == "x" else Z)[kind])
    model = _fresh_vae(name)
    methods = _data_methods(model) if argument == "x" else _latent_methods(model)
    decoded = (*value.shape[:-1], X) if argument == "z" and kind in BATCHED else None
    for method in methods.values():
        assert_clean_outcome(lambda v, f=method: f(v, *_labels(model, v)), value, argument, decoded)


BAD_LABELS = {
    "float": torch.zeros(2),
    "int32": torch.zeros(2, dtype=torch.int32),
    "too-large": torch.tensor([0, 3]),
    "negative": torch.tensor([0, -2]),
    "rows": torch.zeros(3, dtype=torch.long),
    "list": [0, 0],
    "device": torch.zeros(2, dtype=torch.long, device="meta"),
    "none": None,
}


def _label_methods(model: ConditionalVAE, x: Tensor) -> dict[str, Callable[[Any], Any]]:
    """The model's functions of labels (with the batch ``x`` where they take data)."""
    return {
        "model": lambda y: model.model(x, y),
        "guide": lambda y: model.guide(x, y),
        "training_loss": lambda y: model.training_loss(_loss(model), x, y),
        "importance_log_likelihood": lambda y: importance_log_likelihood(
            model.model, model.guide, x, y, k=2
        ),
        "latent_mean": lambda y: model.latent_mean(x, y),
        "reconstruct": lambda y: model.reconstruct(x, y),
        "sample": lambda y: model.sample(2, y),
        "generate": model.generate,
    }


@pytest.mark.parametrize("name", CONDITIONAL)
@pytest.mark.parametrize("labels", list(BAD_LABELS.values()), ids=list(BAD_LABELS))
def test_vae_labels(name, labels):
    model = _fresh_vae(name)
    for method_name, method in _label_methods(model, torch.zeros(2, X)).items():
        if (
            labels is None
            and isinstance(model, SemiSupervisedVAE)
            and method_name in ("model", "guide")
        ):
            continue  # M2's model and guide take unlabelled data
        assert_clean_outcome(method, labels, "y", None)


@pytest.mark.parametrize("name", sorted(VAES))
def test_vae_empty_sample(name):
    model = _fresh_vae(name)
    assert model.sample(0, *_labels(model, torch.zeros(0))).shape == (0, X)


@pytest.mark.parametrize("name", ["vae", "cvae"])
@pytest.mark.parametrize(
    ("argument", "bad"),
    _bad_counts("n", valid=[0])
    + _bad_counts("k")
    + _bad_counts("batch_size")
    + _bad_counts("max_elements")
    + _bad_counts("num_particles")
    + _bad_counts("num_data", valid=[None]),
)
def test_vae_counts(name, argument, bad):
    model = _fresh_vae(name)
    x = torch.zeros(2, X)
    y = _labels(model, x)
    calls: dict[str, Callable[[], Any]] = {
        "n": lambda: model.sample(bad, *_labels(model, torch.zeros(2))),
        "num_particles": lambda: IWAE_ELBO(bad),
        "num_data": lambda: model.model(x, *y, num_data=bad),
    }
    call = calls.get(
        argument,
        lambda: importance_log_likelihood(model.model, model.guide, x, *y, **{argument: bad}),
    )
    with pytest.raises((ValueError, TypeError), match=rf"\b{argument}\b"):
        call()


def _vae_constructor_cases() -> list[Any]:
    builds: dict[str, Callable[[Any], Any]] = {
        "x_shape": lambda v: VAE(v, Z),
        "z_dim": lambda v: VAE(X, v),
        "hidden": lambda v: VAE(X, Z, hidden=(v,)),
        "n_classes": lambda v: ConditionalVAE(X, v, Z),
        "flow_steps": lambda v: VAE(X, Z, hidden=(8,), flow_steps=v),
    }
    cases = [
        pytest.param(argument, build, bad, id=f"{argument}={bad!r}")
        for argument, build in builds.items()
        for bad in BAD_SIZES
        if not (argument == "flow_steps" and bad == 0)
    ]
    likelihoods = (BernoulliLikelihood, ContinuousBernoulliLikelihood, GaussianLikelihood)
    cases += [
        pytest.param("x_shape", cls, bad, id=f"{cls.__name__}({bad!r})")
        for cls in likelihoods
        for bad in BAD_SIZES
    ]
    return cases


@pytest.mark.parametrize(("argument", "build", "bad"), _vae_constructor_cases())
def test_vae_constructors_reject_bad_sizes(argument, build, bad):
    with pytest.raises((ValueError, TypeError), match=rf"\b{argument}\b"):
        build(bad)


VAE_ARGUMENTS: dict[str, tuple[Callable[[Any], Any], list[Any]]] = {
    "x_shape": (lambda v: VAE(v, Z), [(), [], (1, 6, 6), "6"]),
    "hidden": (lambda v: VAE(X, Z, hidden=v), [8, None, "8", (8, 0)]),
    "encoder": (lambda v: VAE(X, Z, encoder=v), [3, nn.Linear(X - 1, 8), nn.Flatten(0)]),
    "decoder": (lambda v: VAE(X, Z, decoder=v), [3, nn.Linear(Z, X - 1), nn.Linear(Z + 1, X)]),
    "flow": (lambda v: VAE(X, Z, flow_steps=1, flow=v), [int, "planar"]),
    "likelihood": (lambda v: VAE(X, Z, likelihood=v), [3, "poisson", BernoulliLikelihood(X - 1)]),
    "scale": (
        lambda v: GaussianLikelihood(X, scale=v),
        [0.0, -1.0, float("nan"), float("inf"), "a", 1e-45],
    ),
    "aux_weight": (
        lambda v: SemiSupervisedVAE(X, 3, Z, aux_weight=v),
        [float("nan"), -1.0, "a"],
    ),
}


@pytest.mark.parametrize(
    ("argument", "bad"),
    [
        pytest.param(a, bad, id=f"{a}={bad!r}")
        for a, (_, values) in VAE_ARGUMENTS.items()
        for bad in values
    ],
)
def test_vae_constructor_arguments(argument, bad):
    with pytest.raises((ValueError, TypeError), match=rf"\b{argument}\b"):
        VAE_ARGUMENTS[argument][0](bad)


LIKELIHOODS = {
    "bernoulli": BernoulliLikelihood,
    "continuous_bernoulli": ContinuousBernoulliLikelihood,
    "gaussian": GaussianLikelihood,
}


@pytest.mark.parametrize(
    ("name", "kind"), _cases(LIKELIHOODS, ["shape", "dtype", "large", "empty", "type"])
)
@SWEEP
@given(data=st.data())
def test_likelihood_parameters_on_malformed_input(name, kind, data):
    likelihood = LIKELIHOODS[name](X)
    params = data.draw(malformed_inputs(X)[kind])
    batch = tuple(params.shape) if kind in BATCHED else None
    assert_clean_outcome(likelihood.mean, params, "params", batch)
    assert_clean_outcome(lambda v: likelihood(v).mean, params, "params", batch)


@pytest.mark.parametrize(("name", "kind"), _cases(LIKELIHOODS, KINDS))
@SWEEP
@given(data=st.data())
def test_likelihood_check_on_malformed_input(name, kind, data):
    likelihood = LIKELIHOODS[name](X)
    assert_clean_outcome(
        lambda v: likelihood.check(v) or (), data.draw(malformed_inputs(X)[kind]), "x", None
    )


FIT_ARGUMENTS: list[Any] = [
    pytest.param("x", {"data": torch.zeros(4, X - 1)}, id="data-shape"),
    pytest.param("x", {"data": torch.full((4, X), float("nan"))}, id="data-nan"),
    pytest.param("valid", {"valid": torch.zeros(0, X)}, id="valid-empty"),
    pytest.param("epochs", {"epochs": 0}, id="epochs"),
    pytest.param("data", {"data": [[0.0] * X]}, id="data-list"),
    pytest.param("data", {"data": torch.zeros(0, X)}, id="data-empty"),
    *(pytest.param("seed", {"seed": v}, id=f"seed={v!r}") for v in (-1, 2.5, "a", None, True)),
    *(pytest.param("lr", {"lr": v}, id=f"lr={v!r}") for v in (float("nan"), -1.0, "a")),
    *(
        pytest.param("patience", {"patience": v, "valid": torch.zeros(2, X)}, id=f"patience={v!r}")
        for v in (-1, 2.5, "a", True)
    ),
    pytest.param("loss", {"loss": 3}, id="loss"),
    pytest.param("module", {"module": 3}, id="module"),
]


@pytest.mark.parametrize(("argument", "kwargs"), FIT_ARGUMENTS)
def test_fit_arguments(argument, kwargs):
    kwargs = {"module": _fresh_vae("vae"), "data": torch.zeros(4, X), "epochs": 1, **kwargs}
    with pytest.raises((ValueError, TypeError), match=rf"\b{argument}\b"):
        fit(**kwargs)


def test_fit_data_and_labels_of_different_lengths():
    model = _fresh_vae("cvae")
    with pytest.raises(ValueError, match="data"):
        fit(model, (torch.zeros(4, X), torch.zeros(3, dtype=torch.long)), epochs=1)


FIGURE_ARGUMENTS: list[tuple[str, Callable[[Any], Any], list[Any]]] = [
    ("vae", lambda v: latent_map(v, (2, 3)), [3, None]),
    ("n", lambda v: latent_map(_fresh_vae("vae"), (2, 3), n=v), BAD_SIZES),
    (
        "dims",
        lambda v: latent_map(_fresh_vae("vae"), (2, 3), dims=v),
        [(0, 5), (0, 0), (-1, 0), (0,), "01", (True, 0)],
    ),
    (
        "span",
        lambda v: latent_map(_fresh_vae("vae"), (2, 3), span=v),
        [float("nan"), -1.0, 0.0, "a"],
    ),
    ("ncols", lambda v: digit_grid(torch.rand(4, X), (2, 3), ncols=v), BAD_SIZES),
    (
        "images",
        lambda v: digit_grid(v, (2, 3), ncols=2),
        [
            torch.full((4, X), float("nan")),
            on_another_device(X),
            [[0.0] * X],
            torch.rand(4, X - 1),
            torch.rand(0, X),
        ],
    ),
]


@pytest.mark.parametrize(
    ("argument", "call", "bad"),
    [
        pytest.param(argument, call, bad, id=f"{argument}-{i}")
        for argument, call, values in FIGURE_ARGUMENTS
        for i, bad in enumerate(values)
    ],
)
def test_figure_arguments(argument, call, bad):
    with pytest.raises((ValueError, TypeError), match=rf"\b{argument}\b"):
        call(bad)
