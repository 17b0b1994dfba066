"""AbstractLayer: the JAX form of :class:`moonwalk_core.interface.Layer`.

Layers are Equinox modules (abstract/final: ``AbstractLayer`` -> ``Linear``, ``CausalConv1d``,
...); ``__call__`` is the plain forward. Public methods check their arguments and call private
hooks; concrete layers override only the hooks (``_forward``, ``_residual``, ``_vjp``,
``_fragment``, ``_vijp``). Everything is pure and ``jit``-able. The math and the contract
identities are in :mod:`moonwalk_core.interface`.
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

from ..arch import LayerSpec
from ._containers import FullFragment

__all__ = ["AbstractLayer", "BuildContext"]


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


def _get(obj: Any, dotted: str) -> Any:
    for name in dotted.split("."):
        obj = getattr(obj, name)
    return obj


class AbstractLayer(eqx.Module):
    """A Moonwalk layer: an Equinox module whose ``__call__`` is the plain forward.

    Attributes:
        surjective: whether J is surjective for every input (class default; a layer whose
            surjectivity depends on its shapes overrides it with a property).
        index: position in the model, for error messages (-1 when standalone).
    """

    index: int = eqx.field(static=True, default=-1, kw_only=True)
    surjective: ClassVar[bool] = True
    type_name: ClassVar[str] = "layer"
    param_names: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_spec(cls, spec: LayerSpec, ctx: BuildContext) -> AbstractLayer:
        """Build the layer described by ``spec`` with ``ctx``'s RNG, dtype and init."""
        raise NotImplementedError

    # -- public template methods ------------------------------------------------------------
    def __call__(self, x_in: Array) -> Array:
        return self.forward(x_in)

    def forward(self, x_in: Array) -> Array:
        """``x_out = f(x_in)``."""
        return self._forward(x_in)

    def forward_with_residual(self, x_in: Array) -> tuple[Array, Any]:
        """Phase I: ``(x_out, res)``; ``res`` holds only what :meth:`vjp` needs."""
        x_out = self._forward(x_in)
        return x_out, self._residual(x_in, x_out)

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
            raise ValueError(f"layer {self.index} ({self.type_name}): its Jacobian is not "
                             "surjective, so vijp needs the fragment stored in Phase II")
        if constants is not None:
            return self._vijp_with_constants(x_in, h_in, frag, constants)
        return self._vijp(x_in, h_in, frag)

    def vijp_constants(self) -> Any:
        """Weight-only quantities the vijp needs (e.g. an inverse), or None.

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

    def condition(self) -> dict[str, float]:
        """Cheap condition estimates of this layer's vijp (empty when trivially exact)."""
        return {}

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
        """A copy with static fields (``index``, ``pack_residuals``) replaced; unknown names are
        ignored, so the engine can ask every layer for the same change."""
        new = copy.copy(self)
        for name, value in fields.items():
            if name in {f.name for f in dataclasses.fields(self)}:
                object.__setattr__(new, name, value)
        return new

    # -- hooks ------------------------------------------------------------------------------
    def _forward(self, x_in: Array) -> Array:
        raise NotImplementedError

    def _residual(self, x_in: Array, x_out: Array) -> Any:
        del x_in, x_out
        return None

    def _vjp(self, res: Any, h_out: Array) -> Array:
        raise NotImplementedError

    def _fragment(self, res: Any, h_out: Array, block_size: int | None) -> Any:
        del res, block_size
        return None if self.surjective else FullFragment(h_out)

    def _vijp(self, x_in: Array, h_in: Array, frag: Any) -> Array:
        raise NotImplementedError

    def _vijp_with_constants(self, x_in: Array, h_in: Array, frag: Any, constants: Any
                             ) -> Array:
        del constants
        return self._vijp(x_in, h_in, frag)
