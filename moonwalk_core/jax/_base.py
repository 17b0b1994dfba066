"""AbstractLayer: the JAX form of :class:`moonwalk_core.interface.Layer`.

Layers are Equinox modules (abstract/final: ``AbstractLayer`` -> ``Linear``, ``CausalConv1d``,
...); ``__call__`` is the plain forward. The template methods are
:class:`moonwalk_core._layer.LayerTemplate`'s (both backends share them); concrete layers
override only the hooks and state their capabilities as class attributes. Everything but
``condition`` and ``check_weights`` (host-side, on concrete weights) is pure and ``jit``-able.
docs/layers.md tabulates the layers.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from .._layer import LayerTemplate

__all__ = ["AbstractLayer", "BuildContext", "ChoosesFinalClass", "host"]


def host(a: Array) -> np.ndarray:
    """``a`` as a NumPy array on the host, in its own dtype (one explicit device-to-host copy;
    the backend-neutral condition numerics take it from here). Needs a concrete array.
    bfloat16 arrives as float32 (exactly), which NumPy's linear algebra accepts."""
    out = np.asarray(jax.device_get(a))
    return out.astype(np.float32) if out.dtype == jnp.bfloat16 else out


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


class AbstractLayer(LayerTemplate, eqx.Module):
    """A Moonwalk layer: an Equinox module whose ``__call__`` is the plain forward.

    The contract's template methods and capabilities come from
    :class:`~moonwalk_core._layer.LayerTemplate`; this class adds the JAX parts: ``param_names``
    (the dotted names of the layer's parameter arrays), ``parameters()``, ``with_parameters()``,
    the parameter vjp by ``jax.vjp``, and ``replace_static``.

    Attributes:
        index: position in the model, for error messages (-1 when standalone).
    """

    index: int = eqx.field(static=True, default=-1, kw_only=True)
    param_names: ClassVar[tuple[str, ...]] = ()

    def __call__(self, x_in: Array) -> Array:
        return self.forward(x_in)

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
