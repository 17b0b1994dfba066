"""E8 backends: torch and JAX on the same weights give the same gradients.

The torch model's weights are exported and loaded into the JAX model; both compute the
gradient of the same batch with each method. Rows: the relative difference of the two
backends' gradients, each backend's error against its own float64 Backprop, and each
backend's memory accounting (stored bytes; XLA's compiled temporary bytes for JAX). See
``docs/experiments.md``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from .. import arch, data, methods, paths
from ..config import Profile
from ..measure.adapter import classes_of, relative_error
from ._common import adapter, attempt, ok_rows, prepare, sweep, worst

__all__ = ["run", "summarize", "compare_backends"]

KEY = ["depth", "method"]


def compare_backends(spec: arch.ArchSpec, method: methods.Method, *, batch: int, dtype: str,
                     seed: int) -> dict[str, Any]:
    """Gradients of ``method`` in both backends from identical weights and batch.

    JAX must be in 64-bit mode for a float64 comparison
    (:func:`moonwalk_core.measure.adapter.enable_jax_float64`; :func:`run` turns it on)."""
    pt, jx = adapter("torch"), adapter("jax")
    torch_model = pt.mw.build(spec, seed, dtype)
    weights = pt.mw.export_weights(torch_model)
    jax_model = jx.mw.load_weights(jx.mw.build(spec, seed, dtype), weights)
    x, y = data.synthetic_batch(spec.input_shape, classes_of(spec), batch, dtype=dtype,
                                seed=seed + 1)
    with warnings.catch_warnings():  # the errors are measured
        warnings.filterwarnings("ignore", message="Moonwalk")
        r_pt = pt.mw.gradient(torch_model, pt.loss_fn, pt.asarray(x), pt.asarray(y),
                              method=method)
        r_jx = jx.mw.gradient(jax_model, jx.loss_fn, jx.asarray(x), jx.asarray(y),
                              method=method)
    ref = pt.mw.gradient(torch_model, pt.loss_fn, pt.asarray(x), pt.asarray(y),
                         method=methods.Backprop())
    grads_jx = {k: jx.to_numpy(v) for k, v in r_jx.grads.items()}
    grads_pt = {k: pt.to_numpy(v) for k, v in r_pt.grads.items()}
    memory = jx.mw.compiled_memory(jax_model, jx.loss_fn, jx.asarray(x), jx.asarray(y),
                                   method=method)
    return {"torch_vs_jax": relative_error(grads_jx, grads_pt)["error"],
            "torch_error": relative_error(grads_pt, ref.grads)["error"],
            "jax_error": relative_error(grads_jx, ref.grads)["error"],
            "loss_difference": abs(float(r_pt.loss) - float(r_jx.loss)),
            "torch_stored_bytes": int(r_pt.stored_bytes.get("total", 0)),
            "jax_stored_bytes": int(r_jx.stored_bytes.get("total", 0)),
            "jax_compiled_temp_bytes": int(memory["temp_bytes"]),
            "jax_memory_source": memory["source"]}


def summarize(table: pd.DataFrame) -> dict[str, Any]:
    """Claim quantities: the largest torch-vs-JAX gradient difference, overall and per method."""
    ok = ok_rows(table)
    if ok.empty:
        return {}
    per_method = {m: worst(group) for m, group in ok.groupby("method")["torch_vs_jax"]}
    return {"max_torch_vs_jax": worst(ok["torch_vs_jax"]),
            **{f"max_torch_vs_jax_{m}": v for m, v in per_method.items()}}


def run(profile: Profile, backend: str = "torch", out: str | Path | None = None
        ) -> pd.DataFrame:
    """Run E8 (both backends; ``backend`` is recorded only); rows per (depth, method)."""
    out = Path(out) if out is not None else paths.result_file("backends")
    prepare(profile, "torch")  # threads; E8 runs both backends in this process
    prepare(profile, "jax")  # the comparison is in float64
    b = profile.backends
    candidates = {"Backprop": methods.Backprop(), "Checkpointed": methods.Checkpointed(),
                  "Moonwalk": methods.Moonwalk()}
    configs = [{"depth": d, "method": m} for d in b.depths for m in candidates]

    def row(c: Mapping[str, Any]) -> dict[str, Any]:
        def measure_one() -> dict[str, Any]:
            spec = arch.causal_conv_net(c["depth"], channels=b.channels, length=b.length,
                                        patch=min(8, b.length))
            return compare_backends(spec, candidates[c["method"]], batch=b.batch,
                                    dtype=b.dtype, seed=profile.seed)

        return {"dtype": b.dtype, **attempt(measure_one)}

    return sweep(configs, row, out, key=KEY, profile=profile, section="backends",
                 backend=backend, summarize=summarize)
