"""E1 exactness (SPEC §5): Moonwalk's gradient error against float64 Backprop.

Three parts, one table: ``network`` (depth x dtype x activation x block size on the 1D causal
conv net with well-conditioned weights), ``map`` (the stability map: leaky-ReLU slope x init x
depth x dtype, no checkpoints) and ``checkpoints`` (the worst map corner with each
``checkpoint_every`` setting). Every row records slope, init, dtype and the error (SPEC §1 (c)).
The map part runs on the torch backend only (JAX compiles every configuration anew: a map
would take minutes).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import arch, data, methods, paths
from ..config import Profile
from ._common import Backend, attempt, backend, relative_error, sweep, write_environment

__all__ = ["run", "gradient_error"]

KEY = ["part", "depth", "dtype", "activation", "slope", "init", "block_size", "checkpoint_every"]


def gradient_error(be: Backend, spec: arch.ArchSpec, *, dtype: str, init: str, seed: int,
                   batch: int, method: methods.Method) -> dict[str, Any]:
    """Error of ``method`` at ``dtype`` against Backprop in float64 on the same weights and batch.

    Returns:
        ``error`` (norm-wise, all tensors), ``max_tensor_error``, ``self_check`` and
        ``stored_bytes`` of the method.
    """
    reference_model = be.mw.build(spec, seed, "float64", init=init)
    x, y = data.synthetic_batch(spec.input_shape, spec.output_shape[0], batch,
                                dtype="float64", seed=seed + 1)
    reference = be.mw.gradient(reference_model, be.loss_fn, be.asarray(x), be.asarray(y),
                               method=methods.Backprop())
    model = reference_model
    if dtype != "float64":
        weights = {k: v.astype(dtype) for k, v in be.mw.export_weights(reference_model).items()}
        model = be.mw.load_weights(be.mw.build(spec, seed, dtype, init=init), weights)
    with warnings.catch_warnings():  # large errors are what the stability map measures
        warnings.simplefilter("ignore", be.mw.MoonwalkAccuracyWarning)
        result = be.mw.gradient(model, be.loss_fn, be.asarray(x.astype(dtype)), be.asarray(y),
                                method=method)
    self_check = result.self_check
    return {**relative_error(result.grads, reference.grads, be.to_numpy),
            "self_check": float(self_check) if self_check is not None else np.nan,
            "stored_bytes": int(result.stored_bytes.get("total", 0))}


def _configs(p: Profile, backend_name: str) -> list[dict[str, Any]]:
    e = p.exactness
    map_dtypes = e.map_dtypes if backend_name == "torch" else []
    configs = [{"part": "network", "depth": d, "dtype": t, "activation": a, "slope": 0.5,
                "init": "orthogonal", "block_size": b, "checkpoint_every": None}
               for d in e.depths for t in e.dtypes for a in e.activations for b in e.block_sizes]
    configs += [{"part": "map", "depth": d, "dtype": t, "activation": "leaky_relu", "slope": s,
                 "init": i, "block_size": None, "checkpoint_every": None}
                for t in map_dtypes for i in e.map_inits for s in e.map_slopes
                for d in e.map_depths]
    worst = {"slope": min(e.map_slopes), "init": e.map_inits[-1], "depth": max(e.map_depths)}
    configs += [{"part": "checkpoints", **worst, "dtype": t, "activation": "leaky_relu",
                 "block_size": None, "checkpoint_every": c}
                for t in e.map_dtypes for c in e.checkpoint_every]
    return configs


def run(profile: Profile, backend_name: str = "torch", out: str | Path | None = None
        ) -> pd.DataFrame:
    """Run E1 on ``backend_name``; one row per configuration into ``out``.

    Returns:
        The tidy table: the ``KEY`` columns, ``error``, ``max_tensor_error``, ``self_check``,
        ``stored_bytes``, ``status`` and ``reason``.
    """
    out = Path(out) if out is not None else paths.result_file("exactness", backend_name)
    e = profile.exactness

    def row(c: Mapping[str, Any]) -> dict[str, Any]:
        def measure() -> dict[str, Any]:
            be = backend(backend_name, profile.threads)
            spec = arch.causal_conv_net(c["depth"], channels=e.channels, length=e.length,
                                        activation=c["activation"], negative_slope=c["slope"],
                                        patch=min(8, e.length))
            method = methods.Moonwalk(block_size=c["block_size"],
                                      checkpoint_every=c["checkpoint_every"])
            return gradient_error(be, spec, dtype=c["dtype"], init=c["init"],
                                  seed=profile.seed, batch=e.batch, method=method)

        return {"backend": backend_name, **attempt(measure)}

    table = sweep(_configs(profile, backend_name), row, out, key=KEY, settings=(profile.seed, e))
    write_environment(out, backend_name, profile.threads)
    return table
