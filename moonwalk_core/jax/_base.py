"""AbstractLayer: the JAX form of :class:`moonwalk_core.interface.Layer`.

Layers are Equinox modules (abstract/final: ``AbstractLayer`` -> ``Linear``, ``CausalConv1d``,
...); ``__call__`` is the plain forward. Public methods check their arguments and call private
hooks; concrete layers override only the hooks (``_forward``, ``_residual``, ``_vjp``,
``_fragment``, ``_vijp``) and state their capabilities as class attributes. ``condition``,
``_forward`` and ``_vjp`` are abstract: a final layer that forgets one cannot be instantiated.
Everything but ``condition`` and ``check_weights`` (host-side, on concrete weights) is pure and
``jit``-able. The math and the contract identities are in :mod:`moonwalk_core.interface`;
docs/layers.md tabulates the layers.
"""

from __future__ import annotations

import abc
import copy
import dataclasses
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from ..arch import LayerSpec
from ..interface import BlockAxis
from ._containers import FullFragment

__all__ = ["AbstractLayer", "BuildContext", "ChoosesFinalClass", "host"]


def host(a: Array) -> np.ndarray:
    """``a`` as a NumPy array on the host, in its own dtype (one explicit device-to-host copy;
    the backend-neutral condition numerics take it from here). Needs a concrete array."""
    return np.asarray(jax.device_get(a))


class BuildContext:
    """Everything a layer's ``from_spec`` needs besides the spec: RNG, dtype, init."""

    def __init__(self, generator: np.random.Generator, dtype: jnp.dtype, init: str) -> None:
        self.generator, self.dtype, self.init = generator, dtype, init

    def _cast(self, a: np.ndarray) -> Array:
        return jnp.asarray(a, dtype=self.dtype)

    def zeros(self, *shape: int) -> Array:
        return jnp.zeros(shape, dtype=self.dtype)

    def normal(self, *shape: int, std: float = 1.0) -> Array:
        # drawn in float64 so that every dtype gets the same numbers
        return self._cast(self.generator.standard_normal(shape) * std)

    def orthogonal(self, rows: int, cols: int) -> Array:
        """A (rows, cols) matrix with orthonormal rows or columns (whichever are fewer)."""
        a = self.generator.standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q = q * np.sign(np.diagonal(r))  # Haar-distributed
        return self._cast(q if rows >= cols else q.T)

    def uniform(self, *shape: int, bound: float) -> Array:
        return self._cast((2 * self.generator.random(shape) - 1) * bound)


class ChoosesFinalClass(type(eqx.Module)):  # type: ignore[misc]
    """Metaclass of a base layer class whose constructor builds one of its final classes
    (``Conv2d(weight, bias, mode=...)``, ``Stem(weight, bias)``): a class that defines
    ``_final_class(*args, **kwargs)`` itself hands the arguments to the class it returns."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if "_final_class" in cls.__dict__:
            return cls._final_class(*args, **kwargs)(*args, **kwargs)
        return super().__call__(*args, **kwargs)


def _get(obj: Any, dotted: str) -> Any:
    for name in dotted.split("."):
        obj = getattr(obj, name)
    return obj


class AbstractLayer(eqx.Module):
    """A Moonwalk layer: an Equinox module whose ``__call__`` is the plain forward.

    Class attributes (capabilities, :mod:`moonwalk_core.interface`): ``type_name``,
    ``variant``, ``surjective`` (no default: every final class states it), ``block_axis``,
    ``offers_negative_units``, ``reversible``, ``has_vijp_constants``; and ``param_names``,
    the dotted names of the layer's parameter arrays (``parameters()``).

    Attributes:
        index: position in the model, for error messages (-1 when standalone).
    """

    index: int = eqx.field(static=True, default=-1, kw_only=True)
    type_name: ClassVar[str]
    variant: ClassVar[str | None] = None
    surjective: ClassVar[bool]
    block_axis: ClassVar[BlockAxis | None] = None
    offers_negative_units: ClassVar[bool] = False
    reversible: ClassVar[bool] = False
    has_vijp_constants: ClassVar[bool] = False
    param_names: ClassVar[tuple[str, ...]] = ()

    @classmethod
    @abc.abstractmethod
    def from_spec(cls, spec: LayerSpec, ctx: BuildContext) -> AbstractLayer:
        """Build the layer described by ``spec`` with ``ctx``'s RNG, dtype and init."""

    @property
    def _name(self) -> str:
        """The layer as error messages name it."""
        return f"layer {self.index} ({self.type_name})"

    # -- public template methods ------------------------------------------------------------
    def __call__(self, x_in: Array) -> Array:
        return self.forward(x_in)

    def forward(self, x_in: Array) -> Array:
        """``x_out = f(x_in)``."""
        return self._forward(x_in)

    def forward_with_residual(self, x_in: Array, *, pack_residuals: bool = True
                              ) -> tuple[Array, Any]:
        """Phase I: ``(x_out, res)``; ``res`` holds only what :meth:`vjp` needs (sign masks
        bit-packed when ``pack_residuals``)."""
        x_out = self._forward(x_in)
        return x_out, self._residual(x_in, x_out, pack_residuals)

    def vjp(self, res: Any, h_out: Array) -> Array:
        """Phase II: ``h_in = h_out · J`` from the residual alone."""
        return self._vjp(res, h_out)

    def fragment(self, res: Any, h_out: Array, *, block_size: int | None = None) -> Any:
        """Phase II: what :meth:`vijp` cannot recover from ``h_in``; None when J is surjective
        and no block-wise solve is asked for."""
        return self._fragment(res, h_out, block_size)

    def vijp(self, x_in: Array, h_in: Array, frag: Any, constants: Any = None) -> Array:
        """Phase III: ``h_out`` with ``h_out · J = h_in``, completed by ``frag``.

        ``constants``: what :meth:`vijp_constants` returned for these weights, when the caller
        computed it ahead (the engine does, for all layers of a run at once); None computes it.
        """
        if isinstance(frag, FullFragment):
            return frag.h_out
        if frag is None and not self.surjective:
            raise ValueError(f"{self._name}: its Jacobian is not surjective, so vijp needs the "
                             "fragment stored in Phase II")
        if self.has_vijp_constants and constants is None:
            constants = self.vijp_constants()
        return self._vijp(x_in, h_in, frag, constants)

    def vijp_constants(self) -> Any:
        """Weight-only quantities the vijp needs (``has_vijp_constants``), or None.

        # Note: [vijp constants]
        Small factorizations are slow per call on XLA's CPU backend (~2 ms for a 64 x 64
        inverse); the engine computes them for a whole run in one batched call, outside the
        Phase III scan, and passes them to :meth:`vijp`.
        """
        return None

    def param_vjp(self, x_in: Array, h_out: Array) -> dict[str, Array]:
        """``h_out · J_theta`` at ``x_in``, keyed like ``named_parameters()``."""
        return self.forward_and_param_vjp(x_in, h_out)[1]

    def forward_and_param_vjp(self, x_in: Array, h_out: Array
                              ) -> tuple[Array, dict[str, Array]]:
        """``(f(x_in), h_out · J_theta)`` with one forward pass (Phase III, fused)."""
        params = self.parameters()
        if not params:
            return self._forward(x_in), {}

        def f(p: dict[str, Array]) -> Array:
            return self.with_parameters(p)._forward(x_in)

        x_out, pullback = jax.vjp(f, params)
        (grads,) = pullback(h_out)
        return x_out, grads

    @abc.abstractmethod
    def condition(self) -> dict[str, float]:
        """Cheap condition estimates of this layer's vijp (docs/layers.md); needs concrete
        weights."""

    def check_weights(self) -> None:
        """Raise ``ValueError`` when these weights leave the vijp undefined; nothing to check
        by default. Needs concrete weights (the engine calls it outside ``jit``)."""

    # -- parameters (the JAX counterpart of ``named_parameters``) ---------------------------
    def parameters(self) -> dict[str, Array]:
        """The layer's parameter arrays keyed by name (``weight``, ``bias``, ``f.weight_in``)."""
        return {k: _get(self, k) for k in self.param_names}

    def with_parameters(self, params: dict[str, Array]) -> AbstractLayer:
        """A copy of the layer with ``params`` (same keys as :meth:`parameters`) swapped in."""
        if not self.param_names:
            return self
        names = self.param_names
        return eqx.tree_at(lambda layer: tuple(_get(layer, k) for k in names), self,
                           tuple(params[k] for k in names))

    def replace_static(self, **fields: Any) -> AbstractLayer:
        """A copy with static fields (e.g. ``index``) replaced."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = set(fields) - known
        if unknown:
            raise ValueError(f"{type(self).__name__} has no fields {sorted(unknown)}")
        new = copy.copy(self)
        for name, value in fields.items():
            object.__setattr__(new, name, value)
        return new

    # -- hooks ------------------------------------------------------------------------------
    @abc.abstractmethod
    def _forward(self, x_in: Array) -> Array:
        """The plain forward."""

    def _residual(self, x_in: Array, x_out: Array, pack_residuals: bool) -> Any:
        del x_in, x_out, pack_residuals
        return None

    @abc.abstractmethod
    def _vjp(self, res: Any, h_out: Array) -> Array:
        """``h_out · J`` from the residual."""

    def _fragment(self, res: Any, h_out: Array, block_size: int | None) -> Any:
        del res, block_size
        return None if self.surjective else FullFragment(h_out)

    def _vijp(self, x_in: Array, h_in: Array, frag: Any, constants: Any) -> Array:
        """The vijp of a surjective layer (a layer whose fragment is its whole h_out, the
        default of a non-surjective one, never gets here)."""
        raise NotImplementedError(f"{type(self).__name__} has no vijp of its own")
