"""Stability map (part of E1, ``docs/experiments.md``): Moonwalk's gradient error vs depth.

One row per configuration (depth x leaky-ReLU slope x init x dtype x checkpoint policy) on the
1D causal conv net, with the true error against float64 Backprop on the same weights beside
Moonwalk's own self-check estimate, and what the policy stored. Backend-neutral: arrays leave
the backend as NumPy.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from typing import Any

import pandas as pd

from .. import arch, methods
from ..measure.adapter import adapter, relative_error, synthetic_batch

__all__ = ["stability_map", "COLUMNS"]

Policy = int | str | None

COLUMNS = ("depth", "slope", "init", "dtype", "policy", "error", "self_check", "stored_bytes",
           "fragment_bytes", "checkpoint_bytes", "backprop_bytes", "checkpoints",
           "negative_units", "status")
"""The table's columns; ``policy`` is "none", "auto" or "every <m>", ``status`` "ok" or why
not."""


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
        backend: "torch" or "jax" (JAX needs 64-bit mode for the float64 reference:
            :func:`moonwalk_core.measure.adapter.enable_jax_float64`).
        channels, length, batch, kernel_size: net and batch sizes.
        block_size: ``Moonwalk(block_size=...)`` (None: sequential solves; "auto" may block).
        seed: weights and data.

    Returns:
        One row per configuration with the columns :data:`COLUMNS`; a configuration that
        raises (e.g. a singular lag-0 tap) has NaN numbers and its error in ``status``.
    """
    be = adapter(backend)
    mw, loss_fn = be.mw, be.loss_fn
    rows = []
    for depth, slope, init in itertools.product(depths, slopes, inits):
        spec = arch.causal_conv_net(depth, channels=channels, length=length,
                                    kernel_size=kernel_size, negative_slope=slope,
                                    patch=min(8, length))
        x, y = synthetic_batch(be, spec, batch, dtype="float64", seed=seed)
        reference = mw.gradient(mw.build(spec, seed, "float64", init=init), loss_fn, x, y,
                                method=methods.Backprop())
        ref = {k: be.to_numpy(g) for k, g in reference.grads.items()}
        for dtype in dtypes:
            # the same seed gives the same weights in every dtype (drawn in float64), and
            # the same batch (drawn in float64, then cast)
            model = mw.build(spec, seed, dtype, init=init)
            xd, _ = synthetic_batch(be, spec, batch, dtype=dtype, seed=seed)
            backprop_bytes = mw.gradient(model, loss_fn, xd, y,
                                         method=methods.Backprop()).stored_bytes.get("total")
            for policy in policies:
                row: dict[str, Any] = {"depth": depth, "slope": slope, "init": init,
                                       "dtype": dtype, "policy": _policy_name(policy),
                                       "backprop_bytes": backprop_bytes}
                method = methods.Moonwalk(block_size=block_size, checkpoint_every=policy)
                try:
                    with warnings.catch_warnings():  # large errors are what the map measures
                        warnings.simplefilter("ignore", mw.MoonwalkAccuracyWarning)
                        result = mw.gradient(model, loss_fn, xd, y, method=method)
                except (ValueError, FloatingPointError) as e:
                    rows.append({**row, "status": f"{type(e).__name__}: {e}"})
                    continue
                stored = result.stored_bytes
                rows.append({**row, "error": relative_error(result.grads, ref)["error"],
                             "self_check": float(result.self_check),
                             "stored_bytes": stored["total"],
                             "fragment_bytes": stored.get("fragments", 0),
                             "checkpoint_bytes": stored.get("checkpoints", 0),
                             "checkpoints": sum(p.checkpoint for p in result.plan),
                             "negative_units": sum(getattr(p, "negative_units", False)
                                                   for p in result.plan),
                             "status": "ok"})
    return pd.DataFrame(rows, columns=list(COLUMNS))
