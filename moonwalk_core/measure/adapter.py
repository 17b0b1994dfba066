"""One backend adapter for the harness: experiments, measurements and benchmarks use it.

A :class:`Backend` is a backend seen through NumPy: its module, a cross-entropy loss and array
conversions. Everything the harness needs twice lives here once: the norm-wise gradient error
(:func:`relative_error`), JAX's cross-entropy (:func:`jax_cross_entropy`) and the synthetic
batch of a network (:func:`synthetic_batch`). Nothing here changes global state on its own:
float64 in JAX and torch's thread count are explicit calls (:func:`enable_jax_float64`,
:func:`set_threads`). See ``docs/measurement.md``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import data, get_backend
from ..arch import ArchSpec

__all__ = ["Backend", "Unavailable", "adapter", "classes_of", "enable_jax_float64",
           "jax_cross_entropy", "relative_error", "set_threads", "synthetic_batch", "to_numpy"]


class Unavailable(Exception):
    """A backend lacks a piece an experiment needs (the framework itself, or a capability).

    The harness raises it explicitly where it checks for the piece; a result row then says
    ``status="unavailable"`` with the reason, and every other exception stays a crash.
    """


def to_numpy(array: Any) -> np.ndarray:
    """A float64 NumPy copy of a torch tensor, a JAX array, a NumPy array or a scalar."""
    if hasattr(array, "detach"):
        array = array.detach().cpu()
        if array.is_floating_point() or array.is_complex():
            array = array.double()
    return np.asarray(array, dtype=np.float64)


def jax_cross_entropy(logits: Any, y: Any) -> Any:
    """Mean cross-entropy of ``logits`` (batch, classes) against class indices ``y`` (JAX)."""
    import jax
    import jax.numpy as jnp

    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=-1))


@dataclass(frozen=True)
class Backend:
    """One backend seen through NumPy: its module, a cross-entropy loss and array conversion."""

    name: str
    mw: Any
    loss_fn: Callable[[Any, Any], Any]
    asarray: Callable[[np.ndarray], Any]

    def to_numpy(self, array: Any) -> np.ndarray:
        """A float64 NumPy copy of a backend array (or scalar)."""
        return to_numpy(array)


def _framework(name: str) -> Any:
    """Import the framework behind backend ``name``; :class:`Unavailable` when it is missing."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise Unavailable(f"the {name} backend needs the `{name}` package: {error}") from error


def adapter(name: str) -> Backend:
    """The adapter of backend ``name`` ("torch" or "jax"). Changes no global setting.

    Raises:
        ValueError: for another name.
        Unavailable: when the framework is not installed.
    """
    if name == "torch":
        torch = _framework("torch")
        return Backend("torch", get_backend("torch"), torch.nn.functional.cross_entropy,
                       torch.from_numpy)
    if name == "jax":
        jnp = _framework("jax").numpy
        return Backend("jax", get_backend("jax"), jax_cross_entropy, jnp.asarray)
    raise ValueError(f"backend={name!r} is not supported; use 'torch' or 'jax'")


def enable_jax_float64() -> None:
    """Turn on JAX's 64-bit mode (float64 references, int64 labels); float32 arrays stay
    float32. A process-wide JAX setting: experiments call it once, before building models."""
    import jax

    jax.config.update("jax_enable_x64", True)


def set_threads(threads: int) -> None:
    """Fix torch's intra-op thread count (timings and the recorded environment use it).

    JAX's CPU thread pool cannot be resized after start; it is recorded, not set.
    """
    import torch

    torch.set_num_threads(int(threads))


def classes_of(spec: ArchSpec) -> int:
    """The number of classes of a network that ends in ``[classes]`` features.

    Raises:
        ValueError: when the output is not one vector per example.
    """
    out = spec.output_shape
    if len(out) != 1:
        raise ValueError(f"spec output shape {list(out)} is not [classes]; end the network with "
                         "'flatten' and 'linear' so cross-entropy applies")
    return out[0]


def synthetic_batch(be: Backend, spec: ArchSpec, batch: int, *, dtype: str, seed: int,
                    device: str | None = None) -> tuple[Any, Any]:
    """``(x, y)`` as ``be``'s arrays: :func:`moonwalk_core.data.synthetic_batch` of the
    network's input shape and classes (standard-normal inputs, uniform labels) from ``seed``.

    ``device``: a torch device, or a JAX platform ("cpu", "gpu"); None keeps the default.
    """
    x, y = data.synthetic_batch(spec.input_shape, classes_of(spec), batch, dtype=dtype,
                                seed=seed)
    xa, ya = be.asarray(x), be.asarray(y)
    if device is None:
        return xa, ya
    if be.name == "torch":
        return xa.to(device), ya.to(device)
    import jax

    target = jax.devices(device)[0]
    return jax.device_put(xa, target), jax.device_put(ya, target)


def relative_error(grads: Mapping[str, Any], reference: Mapping[str, Any],
                   convert: Callable[[Any], np.ndarray] = to_numpy) -> dict[str, float]:
    """Norm-wise relative error of ``grads`` against ``reference``, in float64.

    ``error`` is ``||g - g_ref|| / ||g_ref||`` over all tensors together (the protocol's
    gradient error, ``docs/measurement.md``); ``max_tensor_error`` the same per tensor, worst
    one. A reference of norm 0 gives the absolute error. NaN anywhere gives NaN.

    Raises:
        KeyError: when ``grads`` lacks a tensor of ``reference``.
    """
    diff2 = ref2 = 0.0
    worst = 0.0
    for key, g_ref in reference.items():
        a, b = convert(grads[key]), convert(g_ref)
        d, r = float(np.linalg.norm(a - b)), float(np.linalg.norm(b))
        diff2, ref2 = diff2 + d * d, ref2 + r * r
        one = d / r if r > 0 else d
        worst = float("nan") if np.isnan(one) or np.isnan(worst) else max(worst, one)
    return {"error": (diff2 ** 0.5) / (ref2 ** 0.5) if ref2 > 0 else diff2 ** 0.5,
            "max_tensor_error": worst}
