"""Stability map (SPEC §1 'Error growth', §5 E1): Moonwalk's gradient error vs depth.

One row per configuration (depth x leaky-ReLU slope x init x dtype x checkpoint policy) on the
1D causal conv net, with the true error against float64 Backprop on the same weights beside
Moonwalk's own self-check estimate, and what the policy stored. Backend-neutral: arrays leave
the backend as NumPy.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .. import arch, get_backend, methods

__all__ = ["stability_map", "COLUMNS"]

Policy = int | str | None

COLUMNS = ("depth", "slope", "init", "dtype", "policy", "error", "self_check", "stored_bytes",
           "fragment_bytes", "checkpoint_bytes", "backprop_bytes", "checkpoints",
           "negative_units", "status")
"""The table's columns; ``policy`` is "none", "auto" or "every <m>", ``status`` "ok" or why
not."""


def _adapter(backend: str) -> tuple[Any, Callable[[Any, Any], Any], Callable[[Any], Any],
                                    Callable[[Any], np.ndarray]]:
    """``(mw, cross_entropy, asarray, to_numpy)`` of one backend."""
    mw = get_backend(backend)  # type: ignore[arg-type]
    if backend == "torch":
        import torch

        def to_numpy(a: Any) -> np.ndarray:
            return a.detach().cpu().double().numpy()

        return mw, torch.nn.functional.cross_entropy, torch.from_numpy, to_numpy
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)  # the float64 reference needs it

    def cross_entropy(logits: Any, y: Any) -> Any:
        logp = jax.nn.log_softmax(logits, axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=-1))

    return mw, cross_entropy, jnp.asarray, lambda a: np.asarray(a, dtype=np.float64)


def _error(grads: dict[str, Any], ref: dict[str, np.ndarray],
           to_numpy: Callable[[Any], np.ndarray]) -> float:
    """Norm-wise relative error over all parameter tensors (SPEC §4)."""
    num = sum(float(np.sum((to_numpy(grads[k]) - r) ** 2)) for k, r in ref.items())
    den = sum(float(np.sum(r**2)) for r in ref.values())
    return float(np.sqrt(num / den)) if den > 0 else float(np.sqrt(num))


def _policy_name(policy: Policy) -> str:
    return "none" if policy is None else ("auto" if policy == "auto" else f"every {policy}")


def stability_map(depths: Sequence[int], slopes: Sequence[float],
                  inits: Sequence[str] = ("orthogonal", "default"),
                  dtypes: Sequence[str] = ("float32", "float64"),
                  policies: Sequence[Policy] = (None, 4, "auto"), backend: str = "torch", *,
                  channels: int = 8, length: int = 32, batch: int = 4, kernel_size: int = 3,
                  block_size: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Gradient error of Moonwalk vs float64 Backprop over depth x slope x init x dtype x policy.

    Args:
        depths: numbers of (causal conv + leaky ReLU) blocks of ``arch.causal_conv_net``.
        slopes: leaky-ReLU negative slopes.
        inits: "orthogonal" (well-conditioned default) and/or "default" (the framework's).
        dtypes: "float32" and/or "float64".
        policies: ``checkpoint_every`` values: None, an int m, or "auto".
        backend: "torch" or "jax".
        channels, length, batch, kernel_size: net and batch sizes.
        block_size: ``Moonwalk(block_size=...)`` (None: sequential solves; "auto" may block).
        seed: weights and data.

    Returns:
        One row per configuration with the columns :data:`COLUMNS`; a configuration that
        raises (e.g. a singular lag-0 tap) has NaN numbers and its error in ``status``.
    """
    mw, loss_fn, asarray, to_numpy = _adapter(backend)
    rng = np.random.default_rng(seed)
    rows = []
    for depth, slope, init in itertools.product(depths, slopes, inits):
        spec = arch.causal_conv_net(depth, channels=channels, length=length,
                                    kernel_size=kernel_size, negative_slope=slope,
                                    patch=min(8, length))
        x = rng.standard_normal((batch, *spec.input_shape))
        y = rng.integers(0, spec.output_shape[0], batch)
        reference = mw.gradient(mw.build(spec, seed, "float64", init=init), loss_fn,
                                asarray(x), asarray(y), method=methods.Backprop())
        ref = {k: to_numpy(g) for k, g in reference.grads.items()}
        for dtype in dtypes:
            # the same seed gives the same weights in every dtype (drawn in float64)
            model = mw.build(spec, seed, dtype, init=init)
            xd = asarray(x.astype(dtype))
            backprop_bytes = mw.gradient(model, loss_fn, xd, asarray(y),
                                         method=methods.Backprop()).stored_bytes.get("total")
            for policy in policies:
                row: dict[str, Any] = {"depth": depth, "slope": slope, "init": init,
                                       "dtype": dtype, "policy": _policy_name(policy),
                                       "backprop_bytes": backprop_bytes}
                method = methods.Moonwalk(block_size=block_size, checkpoint_every=policy)
                try:
                    with warnings.catch_warnings():  # large errors are what the map measures
                        warnings.simplefilter("ignore", mw.MoonwalkAccuracyWarning)
                        result = mw.gradient(model, loss_fn, xd, asarray(y), method=method)
                except (ValueError, FloatingPointError) as e:
                    rows.append({**row, "status": f"{type(e).__name__}: {e}"})
                    continue
                stored = result.stored_bytes
                rows.append({**row, "error": _error(result.grads, ref, to_numpy),
                             "self_check": float(result.self_check),
                             "stored_bytes": stored["total"],
                             "fragment_bytes": stored.get("fragments", 0),
                             "checkpoint_bytes": stored.get("checkpoints", 0),
                             "checkpoints": sum(p.checkpoint for p in result.plan),
                             "negative_units": sum(getattr(p, "negative_units", False)
                                                   for p in result.plan),
                             "status": "ok"})
    return pd.DataFrame(rows, columns=list(COLUMNS))
