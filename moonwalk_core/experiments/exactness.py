"""E1 exactness: Moonwalk's gradient error against float64 Backprop (``docs/experiments.md``).

Three parts, one table: ``network`` (depth x dtype x activation x block size on the 1D causal
conv net with well-conditioned weights), ``map`` (the stability map: leaky-ReLU slope x init x
depth x dtype, no checkpoints) and ``checkpoints`` (the worst map corner with each
``checkpoint_every`` setting). Every row records slope, init, dtype and the error.
The map and checkpoint rows come from :func:`stability.stability_map`, one configuration at a
time (so the sweep resumes). The map part runs on the torch backend only (JAX compiles every
configuration anew: a map would take minutes).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import arch, methods, paths
from ..config import Profile
from ..measure.adapter import Backend, relative_error, synthetic_batch
from . import stability
from ._common import adapter, attempt, ok_rows, prepare, sweep, worst

__all__ = ["run", "summarize", "gradient_error"]

KEY = ["part", "depth", "dtype", "activation", "slope", "init", "block_size", "checkpoint_every"]


def gradient_error(be: Backend, spec: arch.ArchSpec, *, dtype: str, init: str, seed: int,
                   batch: int, method: methods.Method) -> dict[str, Any]:
    """Error of ``method`` at ``dtype`` against Backprop in float64 on the same weights and batch.

    Returns:
        ``error`` (norm-wise, all tensors), ``max_tensor_error``, ``self_check`` and
        ``stored_bytes`` of the method.
    """
    reference_model = be.mw.build(spec, seed, "float64", init=init)
    x, y = synthetic_batch(be, spec, batch, dtype="float64", seed=seed + 1)
    reference = be.mw.gradient(reference_model, be.loss_fn, x, y, method=methods.Backprop())
    model = reference_model
    if dtype != "float64":
        weights = {k: v.astype(dtype) for k, v in be.mw.export_weights(reference_model).items()}
        model = be.mw.load_weights(be.mw.build(spec, seed, dtype, init=init), weights)
    with warnings.catch_warnings():  # large errors are what the stability map measures
        warnings.simplefilter("ignore", be.mw.MoonwalkAccuracyWarning)
        x, y = synthetic_batch(be, spec, batch, dtype=dtype, seed=seed + 1)  # x cast to dtype
        result = be.mw.gradient(model, be.loss_fn, x, y, method=method)
    self_check = result.self_check
    return {**relative_error(result.grads, reference.grads),
            "self_check": float(self_check) if self_check is not None else np.nan,
            "stored_bytes": int(result.stored_bytes.get("total", 0))}


def _configs(p: Profile, backend: str) -> list[dict[str, Any]]:
    e = p.exactness
    map_dtypes = e.map_dtypes if backend == "torch" else []
    configs = [{"part": "network", "depth": d, "dtype": t, "activation": a, "slope": 0.5,
                "init": "orthogonal", "block_size": b, "checkpoint_every": None}
               for d in e.depths for t in e.dtypes for a in e.activations for b in e.block_sizes]
    configs += [{"part": "map", "depth": d, "dtype": t, "activation": "leaky_relu", "slope": s,
                 "init": i, "block_size": None, "checkpoint_every": None}
                for t in map_dtypes for i in e.map_inits for s in e.map_slopes
                for d in e.map_depths]
    corner = {"slope": min(e.map_slopes), "init": e.map_inits[-1], "depth": max(e.map_depths)}
    configs += [{"part": "checkpoints", **corner, "dtype": t, "activation": "leaky_relu",
                 "block_size": None, "checkpoint_every": c}
                for t in e.map_dtypes for c in e.checkpoint_every]
    return configs


def summarize(table: pd.DataFrame) -> dict[str, Any]:
    """Claim quantities: worst network error per dtype, worst map error, best checkpointed.

    A NaN error is a failure: the worst of a set holding NaN is NaN."""
    ok = ok_rows(table)
    if ok.empty or "error" not in ok:
        return {}
    net, ckpt = ok[ok["part"] == "network"], ok[ok["part"] == "checkpoints"]
    f64 = ckpt[ckpt["dtype"] == "float64"]
    with_ckpt = f64[f64["checkpoint_every"].notna() & (f64["checkpoint_every"] != "")]
    return {"max_error_float64": worst(net.loc[net["dtype"] == "float64", "error"]),
            "max_error_float32": worst(net.loc[net["dtype"] == "float32", "error"]),
            "map_worst_error_float64": worst(ok.loc[(ok["part"] == "map")
                                                   & (ok["dtype"] == "float64"), "error"]),
            "no_checkpoint_error_float64": worst(f64.loc[f64["checkpoint_every"].isna(), "error"]),
            "checkpoint_best_error_float64": (None if with_ckpt.empty
                                              else float(with_ckpt["error"].min())),
            "auto_checkpoint_error_float64": worst(f64.loc[f64["checkpoint_every"].astype(str)
                                                          == "auto", "error"])}


def run(profile: Profile, backend: str = "torch", out: str | Path | None = None
        ) -> pd.DataFrame:
    """Run E1 on ``backend``; one row per configuration into ``out``.

    Returns:
        The tidy table: the ``KEY`` columns, ``error``, ``max_tensor_error``, ``self_check``,
        ``stored_bytes``, ``status`` and ``reason``.
    """
    out = Path(out) if out is not None else paths.result_file("exactness", backend)
    prepare(profile, backend)
    e = profile.exactness

    def _map_row(c: Mapping[str, Any]) -> dict[str, Any]:
        """One configuration of :func:`stability.stability_map` (the stability helper's)."""
        table = stability.stability_map([c["depth"]], [c["slope"]], [c["init"]], [c["dtype"]],
                                        [c["checkpoint_every"]], backend, channels=e.channels,
                                        length=e.length, batch=e.batch, seed=profile.seed)
        (found,) = table.to_dict("records")
        if found["status"] != "ok":
            raise ValueError(f"stability_map: {found['status']}")
        return {k: found[k] for k in ("error", "self_check", "stored_bytes", "checkpoints")}

    def row(c: Mapping[str, Any]) -> dict[str, Any]:
        def measure() -> dict[str, Any]:
            be = adapter(backend)
            spec = arch.causal_conv_net(c["depth"], channels=e.channels, length=e.length,
                                        activation=c["activation"], negative_slope=c["slope"],
                                        patch=min(8, e.length))
            if c["part"] != "network":
                return _map_row(c)
            method = methods.Moonwalk(block_size=c["block_size"],
                                      checkpoint_every=c["checkpoint_every"])
            return gradient_error(be, spec, dtype=c["dtype"], init=c["init"],
                                  seed=profile.seed, batch=e.batch, method=method)

        return {"backend": backend, **attempt(measure)}

    return sweep(_configs(profile, backend), row, out, key=KEY, profile=profile,
                 section="exactness", backend=backend, summarize=summarize)
