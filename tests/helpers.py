"""Tolerances, norm-wise comparisons and the batches and losses the tests share (both backends)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from moonwalk_core import arch, get_backend

# Norm-wise relative error allowed between Moonwalk and the float64 autodiff oracle, by dtype.
# float64: round-off of well-conditioned layers (docs/method.md). float32: single-precision
# round-off amplified by the condition numbers of the default (orthogonal) init over a few
# layers.
RTOL = {"float64": 1e-10, "float32": 1e-4}
BACKENDS = ["torch", "jax"]


def to_numpy(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu()
        if a.is_floating_point():  # NumPy has no bfloat16
            a = a.double()
    return np.asarray(a, dtype=np.float64)


def rel_error(a: Any, b: Any) -> float:
    a, b = to_numpy(a), to_numpy(b)
    ref = float(np.linalg.norm(b))
    diff = float(np.linalg.norm(a - b))
    return diff / ref if ref > 0 else diff


def grads_rel_error(grads: Mapping[str, Any], ref: Mapping[str, Any]) -> float:
    """Overall norm-wise relative error of a gradient dict against a reference dict."""
    assert set(grads) == set(ref), f"keys differ: {sorted(set(grads) ^ set(ref))}"
    num = sum(float(np.linalg.norm(to_numpy(grads[k]) - to_numpy(ref[k]))) ** 2 for k in ref)
    den = sum(float(np.linalg.norm(to_numpy(ref[k]))) ** 2 for k in ref)
    return (num / den) ** 0.5 if den > 0 else num**0.5


def assert_rel_close(a: Any, b: Any, dtype: str, what: str = "") -> float:
    err = rel_error(a, b)
    assert err < RTOL[dtype], f"{what}: relative error {err:.3e} >= {RTOL[dtype]:.0e} ({dtype})"
    return err


def assert_grads_close(grads: Mapping[str, Any], ref: Mapping[str, Any], dtype: str,
                       what: str = "") -> float:
    err = grads_rel_error(grads, ref)
    assert err < RTOL[dtype], f"{what}: gradient error {err:.3e} >= {RTOL[dtype]:.0e} ({dtype})"
    return err


def jax_cross_entropy(logits: Any, y: Any) -> Any:
    """Mean cross-entropy of integer labels, in JAX (torch's ``F.cross_entropy``)."""
    import jax
    import jax.numpy as jnp

    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def cross_entropy(backend: str) -> Any:
    """The backend's cross-entropy loss ``loss_fn(logits, y)``."""
    if backend == "torch":
        import torch.nn.functional as F

        return F.cross_entropy
    return jax_cross_entropy


def batch(backend: str, spec: arch.ArchSpec, size: int, dtype: str = "float64",
          seed: int = 0) -> tuple[Any, Any]:
    """``(x, y)``: standard-normal inputs and labels in ``[0, classes)``, the same numbers in
    both backends."""
    x = get_backend(backend).random_input((size, *spec.input_shape), dtype=dtype, seed=seed)
    labels = np.random.default_rng(seed + 1).integers(0, spec.output_shape[0], size)
    if backend == "torch":
        import torch

        return x, torch.as_tensor(labels)
    import jax.numpy as jnp

    return x, jnp.asarray(labels)
