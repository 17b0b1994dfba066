"""Model container, ``build`` from an architecture description, weight export and import."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from .. import arch as arch_module
from .._registry import DTYPE_NAMES, Registry, check_build_options
from .._validation import check_weight_values
from ..arch import ArchSpec
from ._base import AbstractLayer, BuildContext

__all__ = ["MoonwalkModel", "build", "export_weights", "load_weights", "register", "LAYER_CLASSES",
           "REGISTRY"]

REGISTRY = Registry("jax")
LAYER_CLASSES: dict[str, dict[str | None, type]] = REGISTRY.classes
"""``{type_name: {variant: class}}``: what ``build`` can make (``moonwalk_core.arch.VARIANTS``)."""
DTYPES = {"float32": jnp.float32, "float64": jnp.float64, "bfloat16": jnp.bfloat16}


def register(cls: type[AbstractLayer]) -> type[AbstractLayer]:
    """Make ``cls`` buildable from architecture entries of type ``cls.type_name`` and variant
    ``cls.variant``."""
    return REGISTRY.register(cls)


class _SpecRef:
    """Hashable, content-compared holder of an :class:`ArchSpec` (a static pytree field must be
    hashable for ``jit``'s cache; the spec holds dicts)."""

    def __init__(self, spec: ArchSpec | None) -> None:
        self.spec = spec
        self.key = None if spec is None else json.dumps(spec.to_dict(), sort_keys=True)

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _SpecRef) and other.key == self.key


class MoonwalkModel(eqx.Module):
    """A chain of Moonwalk layers; ``__call__`` is the plain forward (``jax.grad`` works)."""

    layers: tuple[AbstractLayer, ...]
    _spec: _SpecRef = eqx.field(static=True)

    def __init__(self, layers: list[AbstractLayer] | tuple[AbstractLayer, ...],
                 spec: ArchSpec | None = None) -> None:
        self.layers = tuple(layer.replace_static(index=i) for i, layer in enumerate(layers))
        self._spec = _SpecRef(spec)

    @property
    def spec(self) -> ArchSpec | None:
        return self._spec.spec

    def __call__(self, x: Array) -> Array:
        for layer in self.layers:
            x = layer(x)
        return x

    def __iter__(self) -> Iterator[AbstractLayer]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def dtype(self) -> jnp.dtype:
        leaves = jax.tree_util.tree_leaves(self.parameters())
        return leaves[0].dtype if leaves else jnp.dtype(jnp.float32)

    def parameters(self) -> dict[str, Array]:
        """Every parameter array, keyed ``layers.{i}.{name}`` like torch's ``named_parameters``."""
        return {f"layers.{i}.{k}": v for i, layer in enumerate(self.layers)
                for k, v in layer.parameters().items()}

    def with_parameters(self, params: Mapping[str, Array]) -> MoonwalkModel:
        """A copy of the model with ``params`` (keys as :meth:`parameters`) swapped in."""
        layers = []
        for i, layer in enumerate(self.layers):
            own = {k: params[f"layers.{i}.{k}"] for k in layer.param_names}
            layers.append(layer.with_parameters(own) if own else layer)
        return eqx.tree_at(lambda m: m.layers, self, tuple(layers))


def _dtype(dtype: Any) -> jnp.dtype:
    if isinstance(dtype, str):
        check_build_options("orthogonal", dtype)
        return jnp.dtype(DTYPES[dtype])
    d = jnp.dtype(dtype)
    if d not in {jnp.dtype(v) for v in DTYPES.values()}:
        raise ValueError(f"dtype={dtype} is not supported; use one of {DTYPE_NAMES}")
    return d


def build(spec: ArchSpec | Mapping[str, Any] | str | Path, seed: int = 0,
          dtype: Any = "float32", *, device: str | None = None,
          init: Literal["orthogonal", "default"] = "orthogonal") -> MoonwalkModel:
    """Build the model an architecture describes.

    Args:
        spec: an :class:`ArchSpec`, or anything :func:`moonwalk_core.arch.load` accepts.
        seed: seeds the weights (NumPy's generator, drawn in float64: the same numbers for every
            dtype and device; not the same numbers as the torch backend's ``build``, so compare
            backends through :func:`export_weights` / :func:`load_weights`).
        dtype: "float32", "float64" (needs ``jax_enable_x64``) or "bfloat16"
            (docs/method.md, 'bfloat16').
        device: a JAX platform ("cpu", "gpu"); None keeps JAX's default device.
        init: "orthogonal" (default; well-conditioned: orthogonal dense weights, orthogonal
            lag-0 conv taps with small other taps) or "default" (torch's default init
            distribution, badly conditioned for Moonwalk: docs/method.md, 'Error growth').
    """
    if not isinstance(spec, ArchSpec):
        spec = arch_module.load(spec)
    check_build_options(init)
    dt = _dtype(dtype)
    if dt == jnp.float64 and not jax.config.jax_enable_x64:
        raise ValueError("dtype='float64' needs jax.config.update('jax_enable_x64', True)")
    ctx = BuildContext(np.random.default_rng(seed), dt, init)
    layers = [REGISTRY.lookup(ls).from_spec(ls, ctx) for ls in spec.layers]
    model = MoonwalkModel(layers, spec)
    if device is not None:
        model = jax.device_put(model, jax.devices(device)[0])
    return model


def export_weights(model: MoonwalkModel) -> dict[str, np.ndarray]:
    """All parameters as NumPy arrays, keyed like ``named_parameters()`` (both backends)."""
    return {k: np.array(v) for k, v in model.parameters().items()}


def load_weights(model: MoonwalkModel, weights: Mapping[str, Any]) -> MoonwalkModel:
    """Return a new model with ``weights`` (NumPy arrays, keys as :func:`export_weights`).

    Every key, shape and dtype is checked before anything is converted.

    Raises:
        ValueError: on a missing or unexpected key, a shape mismatch or a value that is not
            floating point.
    """
    params = model.parameters()
    values = {k: np.asarray(v) for k, v in weights.items()}
    check_weight_values({k: tuple(p.shape) for k, p in params.items()},
                        {k: (v.shape, str(v.dtype), bool(jnp.issubdtype(v.dtype, jnp.floating)))
                         for k, v in values.items()})
    new = {name: jax.device_put(jnp.asarray(values[name], dtype=p.dtype), p.sharding)
           for name, p in params.items()}
    return model.with_parameters(new)
