r"""The bijector base class: a :class:`torch.distributions.Transform` that is also an
:class:`torch.nn.Module`.

A bijector :math:`f` maps :math:`x \mapsto y = f(x)` and reports
:math:`\log |\det \partial f / \partial x|` in the same pass (:meth:`Bijector.call_and_ladj`).
Its inverse is always available (:meth:`Bijector.inverse_and_ladj`).

**Caching.** With ``cache_size=1`` (the default) the latest ``(x, y, log|det J|)`` triple is kept,
so that ``d.log_prob(d.rsample())`` reuses the forward pass instead of inverting. The cache only
answers for tensors the bijector itself produced (the inverse of an output it returned, the
forward of an input it recovered): a tensor a user passes in twice is recomputed, so a repeated
``log_prob(data)`` never hands back a graph that an earlier ``backward()`` freed. A cached value
is only returned while the parameters it was computed from are unchanged: the cache key holds
every state tensor's version counter (bumped by every in-place update, e.g. ``load_state_dict``
or a manual ``p.add_()``), its storage, and a global counter of optimizer steps (hooked into
every :class:`torch.optim.Optimizer`, so fused and foreach optimizers are covered too). Writes
through ``p.data`` outside an optimizer bypass version counters: call ``with_cache(0)`` (or
``with_cache(1)`` again, which empties the cache) after such writes. A value computed without
a graph (under ``torch.no_grad()``, as ``sample()`` runs) is not returned while gradients are on
and the parameters require them: ``log_prob(d.sample())`` then recomputes, so that a
score-function (REINFORCE) loss differentiates. Nor is one returned for a cached ``x`` or ``y``
modified in place since (``x = d.sample(); x.clamp_(0, 1)``: their version counters are kept
too), or for inference-mode tensors, which have no version counter. The cache is dropped on
pickling, ``deepcopy`` and ``.to()``.

**Validation.** Shapes, dtypes and devices of inputs are always checked (cheap). While
``torch.distributions`` validation is on (its default), direct calls also scan inputs and
outputs for nan/inf; inside a :class:`~flowdist.flows.FlowDistribution` those scans happen once
at the distribution's boundary instead of at every layer.
"""

from __future__ import annotations

import itertools
import math
import weakref
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, Transform, constraints
from torch.distributions.transforms import _InverseTransform
from torch.nn.modules.module import (
    register_module_buffer_registration_hook,
    register_module_module_registration_hook,
    register_module_parameter_registration_hook,
)
from torch.optim.optimizer import register_optimizer_step_post_hook

from flowdist.nn import MLP

__all__ = [
    "Bijector",
    "ConditionalModule",
    "ConditionalTransform",
    "InverseBijector",
    "VectorBijector",
    "call_and_ladj",
    "check_dim",
    "check_input",
    "nonfinite_parameter",
    "sum_rightmost",
]

_OPTIMIZER_STEPS = itertools.count(1)
_optimizer_step = [0]


def _count_optimizer_step(optimizer: Any, args: Any, kwargs: Any) -> None:
    _optimizer_step[0] = next(_OPTIMIZER_STEPS)


register_optimizer_step_post_hook(_count_optimizer_step)

#: Bumped whenever any module registers a parameter, buffer or submodule (``setattr``,
#: ``register_*``, ``add_module``): a bijector's list of its submodules is rebuilt after that.
_module_structure = [0]


def _count_registration(module: nn.Module, name: str, value: Any) -> None:
    _module_structure[0] += 1


for _register in (
    register_module_buffer_registration_hook,
    register_module_module_registration_hook,
    register_module_parameter_registration_hook,
):
    _register(_count_registration)


def check_input(
    name: str,
    x: Any,
    event_shape: tuple[int, ...],
    dtype: torch.dtype | None,
    *,
    device: torch.device | None = None,
    finite: bool = False,
) -> None:
    """Raise a clear error unless ``x`` is a floating-point tensor whose rightmost dimensions
    are ``event_shape``, of dtype ``dtype`` and on ``device`` when those are given, and (with
    ``finite``) free of nan and inf."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    n = len(event_shape)
    if x.dim() < n or tuple(x.shape[x.dim() - n :]) != tuple(event_shape):
        raise ValueError(
            f"{name} must have shape (..., {', '.join(map(str, event_shape))}) "
            f"(event_shape {tuple(event_shape)}), got {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if dtype is not None and x.dtype != dtype:
        raise TypeError(
            f"{name} has dtype {x.dtype} but the module's parameters are {dtype}; "
            f"convert one of them (e.g. module.to({dtype}) or {name}.to({dtype}))"
        )
    if device is not None and x.device != device:
        raise ValueError(
            f"{name} is on device {x.device} but the module's parameters are on {device}"
        )
    if finite and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} has non-finite values (nan or inf)")


class Bijector(Transform, nn.Module):
    r"""Base class of flowdist's bijectors.

    Subclasses implement :meth:`_call_and_ladj` (forward value and
    :math:`\log|\det \partial y/\partial x|` in one pass) and :meth:`_inverse_and_ladj`
    (inverse value and :math:`\log|\det \partial x/\partial y|`), and set ``domain``,
    ``codomain`` and ``event_shape``. Everything a :class:`torch.distributions.Transform` offers
    (``__call__``, ``inv``, ``log_abs_det_jacobian``, ``forward_shape``) is derived from these.
    """

    bijective = True
    sign = 1
    domain: constraints.Constraint = constraints.real_vector
    codomain: constraints.Constraint = constraints.real_vector

    def __init__(self, cache_size: int = 1) -> None:
        Transform.__init__(self, cache_size=cache_size)  # also runs nn.Module.__init__
        # (x, y, log|det J|, computed forward?, key, computed with a graph?, versions of x, y)
        self._cache: (
            tuple[Tensor, Tensor, Tensor, bool, tuple[Any, ...], bool, tuple[int, int]] | None
        ) = None

    # ---------------------------------------------------------------- to implement
    @property
    def event_shape(self) -> tuple[int, ...]:
        """The shape of one input event (the rightmost ``event_dim`` dimensions)."""
        raise NotImplementedError

    def _call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def _inverse_and_ladj(self, y: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    #: For transforms with a fixed set of parameter tensors: their names, in the order
    #: :meth:`param_shapes` and :meth:`from_tensors` use.
    param_names: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def param_shapes(cls, dim: int) -> tuple[tuple[int, ...], ...]:
        """The event shapes of the parameters named in ``param_names`` for inputs of size
        ``dim`` (used by :class:`ConditionalTransform`)."""
        raise NotImplementedError(f"{cls.__name__} has no amortised form")

    @classmethod
    def from_tensors(cls, *params: Tensor, cache_size: int = 1) -> Bijector:
        """An amortised instance whose parameters are the given tensors (not ``nn.Parameter``:
        typically a network's output with batch dimensions, which broadcast against the input's
        batch dimensions)."""
        if len(params) != len(cls.param_names):
            raise TypeError(f"{cls.__name__}.from_tensors takes {cls.param_names}")
        obj = cls.__new__(cls)
        Bijector.__init__(obj, cache_size=cache_size)
        for name, value in zip(cls.param_names, params, strict=True):
            if not isinstance(value, Tensor) or not value.is_floating_point():
                raise TypeError(f"{name} must be a floating-point tensor")
            setattr(obj, name, value)
        return obj

    def init_parameters(
        self,
        shapes: Sequence[tuple[int, ...]],
        *,
        bound: float,
        generator: torch.Generator | None,
    ) -> None:
        """Register the parameters named in ``param_names`` with the given shapes, drawn
        uniformly in :math:`[-\text{bound}, \text{bound}]`."""
        for name, shape in zip(self.param_names, shapes, strict=True):
            value = torch.rand(shape, generator=generator) * 2 * bound - bound
            setattr(self, name, nn.Parameter(value))

    def state_tensors(self) -> tuple[Tensor, ...]:
        """The tensors the transform's value depends on (the cache key watches them): the
        ``param_names`` attributes, or every parameter and buffer of the module tree.

        The modules' non-empty parameter and buffer dicts are listed once, and again only after
        some module registered a parameter, buffer or submodule; each call reads those dicts
        afresh, so tensors swapped into them (``.to()``, ``torch.func.functional_call``)
        are seen. This keeps the per-call cost of the cache key and of the input checks to a
        few dict reads instead of two traversals of ``named_modules``.
        """
        if self.param_names:
            return tuple(getattr(self, name) for name in self.param_names)
        listed = self.__dict__.get("_module_list")
        if listed is None or listed[0] != _module_structure[0]:
            members = (d for m in self.modules() for d in (m._parameters, m._buffers))
            listed = (_module_structure[0], tuple(d for d in members if d))
            self.__dict__["_module_list"] = listed
        return tuple(t for d in listed[1] for t in d.values() if t is not None)

    @property
    def dtype(self) -> torch.dtype | None:
        """The dtype of the transform's floating-point state, which inputs must have (``None``
        for a transform without one: it takes any floating dtype)."""
        return _dtype_of(self.state_tensors())

    @property
    def device(self) -> torch.device | None:
        """The device of the transform's state (inputs must be there), if it has state."""
        state = self.state_tensors()
        return state[0].device if state else None

    def _check_output(self, name: str, value: Tensor, ladj: Tensor) -> None:
        if bool(torch.isfinite(value).all()) and bool(torch.isfinite(ladj).all()):
            return
        parameter = nonfinite_parameter(self)
        if parameter is not None:
            raise ValueError(
                f"{type(self).__name__} parameter {parameter!r} has non-finite values (nan or inf)"
            )
        raise ValueError(
            f"{name}: {type(self).__name__} gives non-finite values for these inputs: their "
            f"magnitude exceeds what {value.dtype} represents through the transform"
        )

    # ---------------------------------------------------------------- public, cached
    def _key(self, state: Sequence[Tensor] | None = None) -> tuple[Any, ...]:
        state = self.state_tensors() if state is None else state
        return (_optimizer_step[0], *((t._version, t.data_ptr()) for t in state))

    def _lookup(self, x: Tensor | None, y: Tensor | None) -> tuple[Tensor, Tensor, Tensor] | None:
        """The cached triple if it answers this query: ``x`` (forward) must be an input the
        inverse produced, ``y`` (inverse) an output the forward produced, or both must match."""
        cache = self._cache
        if cache is None or self._cache_size == 0:
            return None
        cx, cy, ladj, forward, key, graph, versions = cache
        if x is not None and y is not None:
            hit = x is cx and y is cy
        elif x is not None:
            hit = x is cx and not forward
        else:
            hit = y is cy and forward
        if not hit or key != self._key() or versions != _versions(cx, cy):
            return None
        if not graph and torch.is_grad_enabled() and self._trainable():
            # computed without a graph (``sample()`` runs under no_grad): a ``log_prob`` of
            # that sample with gradients on must differentiate, so recompute
            return None
        return cx, cy, ladj

    def _trainable(self) -> bool:
        return any(t.requires_grad for t in self.state_tensors())

    def _store(
        self, x: Tensor, y: Tensor, ladj: Tensor, forward: bool, state: Sequence[Tensor]
    ) -> None:
        if self._cache_size and not (x.is_inference() or y.is_inference()):
            graph = torch.is_grad_enabled()
            versions = _versions(x, y)
            self.__dict__["_cache"] = (x, y, ladj, forward, self._key(state), graph, versions)

    def _checked(
        self, name: str, value: Tensor, shape: tuple[int, ...], finite: bool
    ) -> tuple[Tensor, ...]:
        """Check an input (:func:`check_input` against the state's dtype and device) and
        return the state tensors, read once per call."""
        state = self.state_tensors()
        device = state[0].device if state else None
        check_input(name, value, shape, _dtype_of(state), device=device, finite=finite)
        return state

    def call_and_ladj(self, x: Tensor, *, validate: bool | None = None) -> tuple[Tensor, Tensor]:
        r"""Return :math:`y = f(x)` and :math:`\log|\det \partial y / \partial x|` (batch shape).

        ``validate`` (default: ``torch.distributions``' global setting) scans the input and
        the outputs for nan/inf; shapes, dtype and device are always checked."""
        hit = self._lookup(x, None)
        if hit is not None:
            return hit[1], hit[2]
        validate = Distribution._validate_args if validate is None else validate
        state = self._checked("x", x, self.event_shape, validate)
        y, ladj = self._call_and_ladj(x)
        if validate:
            self._check_output("x", y, ladj)
        self._store(x, y, ladj, True, state)
        return y, ladj

    def inverse_and_ladj(self, y: Tensor, *, validate: bool | None = None) -> tuple[Tensor, Tensor]:
        r"""Return :math:`x = f^{-1}(y)` and :math:`\log|\det \partial x / \partial y|`."""
        hit = self._lookup(None, y)
        if hit is not None:
            return hit[0], -hit[2]
        validate = Distribution._validate_args if validate is None else validate
        state = self._checked("y", y, tuple(self.forward_shape(self.event_shape)), validate)
        x, ladj = self._inverse_and_ladj(y)
        if validate:
            self._check_output("y", x, ladj)
        self._store(x, y, -ladj, False, state)
        return x, ladj

    # ---------------------------------------------------------------- Transform protocol
    def __call__(self, x: Tensor) -> Tensor:
        return self.call_and_ladj(x)[0]

    def forward(self, x: Tensor) -> Tensor:
        return self.call_and_ladj(x)[0]

    def _call(self, x: Tensor) -> Tensor:
        return self.call_and_ladj(x)[0]

    def _inv_call(self, y: Tensor) -> Tensor:
        return self.inverse_and_ladj(y)[0]

    def _inverse(self, y: Tensor) -> Tensor:
        return self.inverse_and_ladj(y)[0]

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        hit = self._lookup(x, y)
        if hit is not None:
            return hit[2]
        return self.call_and_ladj(x)[1]

    @property
    def inv(self) -> InverseBijector:
        inv = self._inv() if isinstance(self._inv, weakref.ref) else None
        if inv is None:
            inv = InverseBijector(self)
            self._inv = weakref.ref(inv)
        return inv

    def with_cache(self, cache_size: int = 1) -> Bijector:
        """Set the cache size in place (the cache is safe, so sharing the module is fine)."""
        if cache_size not in (0, 1):
            raise ValueError(f"cache_size must be 0 or 1, got {cache_size}")
        self._cache_size = cache_size
        self._cache = None
        return self

    # ---------------------------------------------------------------- module plumbing
    __hash__ = nn.Module.__hash__

    #: Attributes computed from the parameters: dropped by ``.to()``, pickling and ``deepcopy``.
    _volatile: ClassVar[tuple[str, ...]] = ("_cache", "_module_list")

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> Bijector:
        for name in self._volatile:
            setattr(self, name, None)
        return super()._apply(fn, *args, **kwargs)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.update(dict.fromkeys(self._volatile))
        state["_inv"] = None
        return state

    def __repr__(self) -> str:
        return nn.Module.__repr__(self)


class VectorBijector(Bijector):
    r"""A bijector on :math:`\mathbb R^d` whose parameters are the tensors named in
    ``param_names``, of shapes ``param_shapes(dim)``, drawn uniformly in :math:`\pm 1/\sqrt d`
    (as in Pyro) from ``generator``."""

    def __init__(
        self, dim: int, *, generator: torch.Generator | None = None, cache_size: int = 1
    ) -> None:
        super().__init__(cache_size=cache_size)
        check_dim("dim", dim)
        self.init_parameters(self.param_shapes(dim), bound=dim**-0.5, generator=generator)


class InverseBijector(_InverseTransform):
    """The inverse of a :class:`Bijector`, with the fused :meth:`call_and_ladj`."""

    def __init__(self, bijector: Bijector) -> None:
        super().__init__(bijector)

    def __getstate__(self) -> dict[str, Any]:
        return self.__dict__.copy()  # keep _inv: here it is the bijector, not a cached inverse

    def call_and_ladj(self, y: Tensor, *, validate: bool | None = None) -> tuple[Tensor, Tensor]:
        return self._inv.inverse_and_ladj(y, validate=validate)

    def inverse_and_ladj(self, x: Tensor, *, validate: bool | None = None) -> tuple[Tensor, Tensor]:
        return self._inv.call_and_ladj(x, validate=validate)

    @property
    def event_shape(self) -> tuple[int, ...]:
        """The shape of one input event: the bijector's output event shape."""
        return tuple(self._inv.forward_shape(self._inv.event_shape))


def call_and_ladj(t: Transform, x: Tensor, event_dim: int) -> tuple[Tensor, Tensor]:
    r"""``t(x)`` and :math:`\log|\det J|` summed over an event of ``event_dim`` dimensions, in
    one pass for flowdist bijectors (without the nan/inf scans, which the calling
    distribution does once) and through ``log_abs_det_jacobian`` for any other
    :class:`~torch.distributions.Transform`."""
    if isinstance(t, (Bijector, InverseBijector)):
        y, ladj = t.call_and_ladj(x, validate=False)  # the distribution validates its boundary
    else:
        y = t(x)
        ladj = t.log_abs_det_jacobian(x, y)
    return y, sum_rightmost(ladj, event_dim - t.domain.event_dim)


def _dtype_of(state: Iterable[Tensor]) -> torch.dtype | None:
    """The dtype of the first floating-point tensor of ``state`` (``None`` if there is none)."""
    return next((t.dtype for t in state if t.is_floating_point()), None)


def _versions(x: Tensor, y: Tensor) -> tuple[int, int]:
    """The version counters of a cached pair (bumped by every in-place write)."""
    return x._version, y._version


def nonfinite_parameter(module: nn.Module) -> str | None:
    """The name of the first parameter of ``module`` with a nan or inf entry, if any."""
    named = (
        zip(module.param_names, module.state_tensors(), strict=True)
        if isinstance(module, Bijector) and module.param_names
        else module.named_parameters()
    )
    for name, p in named:
        if not bool(torch.isfinite(p).all()):
            return name
    return None


def sum_rightmost(x: Tensor, n: int) -> Tensor:
    """Sum the ``n`` rightmost dimensions (unlike torch's helper, also for empty batches)."""
    return x.sum(tuple(range(-n, 0))) if n > 0 else x


class ConditionalModule(nn.Module):
    """A module that, called with a context tensor, returns the
    :class:`~torch.distributions.Transform` to apply (:class:`~flowdist.flows.Flow` calls it)."""

    def forward(self, context: Tensor) -> Transform:
        raise NotImplementedError


class ConditionalTransform(ConditionalModule):
    r"""An amortised bijector: a hyper-network maps a context :math:`c` to the parameters
    :math:`\theta(c)` of a ``bijector`` class, and calling the module returns the
    :class:`Bijector` :math:`f_{\theta(c)}` (e.g. planar steps of a VAE guide whose parameters
    the encoder outputs, Rezende & Mohamed 2015).

    The hyper-network's last layer starts at zero, so every context starts at the same
    parameters; pass any ``nn.Module`` as ``hyper`` to replace the default :class:`MLP`.
    """

    def __init__(
        self,
        bijector: type[Bijector],
        dim: int,
        context_dim: int,
        hidden: Sequence[int] = (64,),
        hyper: nn.Module | None = None,
    ) -> None:
        super().__init__()
        check_dim("dim", dim)
        check_dim("context_dim", context_dim)
        self.bijector = bijector
        self.dim = dim
        self.context_dim = context_dim
        self.shapes = bijector.param_shapes(dim)
        self.sizes = [math.prod(shape) for shape in self.shapes]
        self.hyper = hyper if hyper is not None else MLP(context_dim, sum(self.sizes), hidden)

    def forward(self, context: Tensor) -> Bijector:
        dtype = next(self.hyper.parameters()).dtype
        check_input("context", context, (self.context_dim,), dtype)
        chunks = self.hyper(context).split(self.sizes, dim=-1)
        params = [
            c.reshape(c.shape[:-1] + shape) for c, shape in zip(chunks, self.shapes, strict=True)
        ]
        return self.bijector.from_tensors(*params)


def check_dim(name: str, value: Any) -> None:
    """Raise unless ``value`` is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
