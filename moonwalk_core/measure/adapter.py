"""One backend adapter for the harness: experiments, measurements and benchmarks use it.

A :class:`Backend` is a backend seen through NumPy: its module, a cross-entropy loss and array
conversions, all on one device. Everything the harness needs twice lives here once: the
norm-wise gradient error (:func:`relative_error`), JAX's cross-entropy
(:func:`jax_cross_entropy`) and the synthetic batch of a network (:func:`synthetic_batch`).
Nothing here changes global state on its own: float64 in JAX, torch's thread count and the
measurement device are explicit calls (:func:`enable_jax_float64`, :func:`set_threads`,
:func:`use_device`). See ``docs/measurement.md`` and ``docs/gpu.md``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import data, get_backend
from ..arch import ArchSpec

__all__ = ["Backend", "Unavailable", "adapter", "classes_of", "current_device",
           "enable_jax_float64", "jax_cross_entropy", "jax_platform", "relative_error",
           "set_threads", "synthetic_batch", "to_numpy", "use_device"]

# Note: [measurement device]
# The device every model, batch, peak and timing of the harness lives on. Experiments do not pass
# it around: ``experiments._common.prepare`` sets it once per run from the profile's ``device``
# (like the thread count), and every adapter, ``peak_memory`` and ``time_interleaved`` call
# without an explicit device uses it. torch names it ("cpu", "cuda", "cuda:1"); JAX gets the
# matching platform (:func:`jax_platform`).
_DEVICE = "cpu"


def use_device(device: str) -> str:
    """Make ``device`` ("cpu", "cuda" or "cuda:<n>") the harness's device; returns it.

    Raises:
        ValueError: for another name ("auto" is resolved first: ``config.resolve_device``).
    """
    global _DEVICE
    kind, _, index = device.partition(":")
    if kind not in ("cpu", "cuda") or (index and (kind == "cpu" or not index.isdigit())):
        raise ValueError(f"device={device!r}: use 'cpu', 'cuda' or 'cuda:<n>' (resolve 'auto' "
                         "with moonwalk_core.config.resolve_device first)")
    _DEVICE = device
    return device


def current_device() -> str:
    """The harness's device (Note: [measurement device]); "cpu" unless :func:`use_device`."""
    return _DEVICE


def jax_platform(device: str) -> str:
    """The JAX platform of a torch device name: "cpu" -> "cpu", "cuda[:n]" -> "gpu"."""
    return "gpu" if device.startswith("cuda") else "cpu"


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


class _OnDevice:
    """A backend module whose ``build`` places the model on one device (unless the call names
    a device itself); every other attribute is the module's own."""

    def __init__(self, module: Any, device: Any) -> None:
        self._module, self._device = module, device

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)

    def build(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("device", self._device)
        return self._module.build(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<{self._module.__name__} on {self._device}>"


@dataclass(frozen=True)
class Backend:
    """One backend seen through NumPy, on one device: its module (``mw``, whose ``build``
    places models on ``device``), a cross-entropy loss and array conversion (``asarray``
    places arrays on ``device``)."""

    name: str
    mw: Any
    loss_fn: Callable[[Any, Any], Any]
    asarray: Callable[[np.ndarray], Any]
    device: str = "cpu"

    def to_numpy(self, array: Any) -> np.ndarray:
        """A float64 NumPy copy of a backend array (or scalar)."""
        return to_numpy(array)


def _framework(name: str) -> Any:
    """Import the framework behind backend ``name``; :class:`Unavailable` when it is missing."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise Unavailable(f"the {name} backend needs the `{name}` package: {error}") from error


def adapter(name: str, device: str | None = None) -> Backend:
    """The adapter of backend ``name`` ("torch" or "jax") on ``device`` (a torch device name;
    None: :func:`current_device`). Changes no global setting.

    Raises:
        ValueError: for another name.
        Unavailable: when the framework is not installed, or has no such device.
    """
    device = current_device() if device is None else device
    if name == "torch":
        torch = _framework("torch")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise Unavailable(f"device {device!r}: torch {torch.__version__} sees no CUDA device")
        return Backend("torch", _OnDevice(get_backend("torch"), device),
                       torch.nn.functional.cross_entropy,
                       lambda a: torch.from_numpy(a).to(device), device)
    if name == "jax":
        jax = _framework("jax")
        platform = jax_platform(device)
        try:
            target = jax.devices(platform)[0]
        except RuntimeError as error:
            raise Unavailable(f"device {device!r}: JAX has no {platform!r} device "
                              f"({error})") from error
        return Backend("jax", _OnDevice(get_backend("jax"), platform), jax_cross_entropy,
                       lambda a: jax.device_put(np.asarray(a), target), device)
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

    ``device``: a torch device, or a JAX platform ("cpu", "gpu"); None: ``be.device``.
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
