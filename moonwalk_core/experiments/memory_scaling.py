"""E2 memory-1d: stored bytes and peak memory vs depth, 1D causal conv nets.

Fragmental (ReLU: the paper's setting) and non-fragmental (leaky ReLU: beyond the paper) nets,
the plain framework net (``baselines.PLAIN``: plain torch modules under autograd, or the plain
``lax.conv`` net under ``jax.grad``; the reference of the claims' ratios) and the package's
methods. Memory figures per row, each with its source label: ``stored_bytes`` (the package's
own accounting: autograd's saved tensors for Backprop/Checkpointed, residuals + fragments +
checkpoints for Moonwalk; none for the plain net), ``peak_bytes`` (what one gradient adds:
:func:`moonwalk_core.measure.peak_memory`, or the same source for the plain net) and, torch
only, ``step_peak_bytes``: the peak of two whole training steps from scratch (weights,
gradients, Adam state, activations; :func:`moonwalk_core.baselines.torch_step_peak`).
See ``docs/experiments.md`` and ``docs/measurement.md``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from .. import arch, baselines, measure, methods, paths
from ..config import Profile
from ..measure.adapter import synthetic_batch
from ._common import adapter, attempt, ok_rows, prepare, sweep, worst

__all__ = ["run", "summarize", "memory_row", "plain_memory_row", "step_peak", "STORED_SOURCE"]

STORED_SOURCE = "stored bytes (package accounting: saved tensors / residuals + fragments)"
KEY = ["activation", "depth", "method"]


def memory_row(backend: str, spec: arch.ArchSpec, method: methods.Method, *, batch: int,
               dtype: str, seed: int) -> dict[str, Any]:
    """Stored bytes and peak bytes of one gradient of ``method``, with their sources."""
    with warnings.catch_warnings():  # the self-check is recorded instead
        warnings.filterwarnings("ignore", message="Moonwalk")
        peak = measure.peak_memory(backend, spec, method, batch=batch, dtype=dtype,
                                   seed=seed)
    return {"stored_bytes": int(peak["stored_bytes"]), "stored_source": STORED_SOURCE,
            "peak_bytes": int(peak["peak_bytes"]), "peak_source": peak["source"],
            "self_check": peak.get("self_check")}


def plain_memory_row(backend: str, spec: arch.ArchSpec, *, batch: int, dtype: str,
                     seed: int, segments: int | None = None) -> dict[str, Any]:
    """Peak bytes of one gradient of the plain framework net with the package's weights (the
    same source as :func:`memory_row`'s peak); ``segments``: the framework's checkpointing
    (``checkpoint_sequential`` / ``jax.checkpoint``) with that many segments."""
    be = adapter(backend)
    model = be.mw.build(spec, seed, dtype)
    x, y = synthetic_batch(be, spec, batch, dtype=dtype, seed=seed + 1)
    if backend == "torch":
        peak = baselines.torch_peak(baselines.torch_plain_gradient(model, be.loss_fn, x, y,
                                                                   segments=segments))
        source = "torch profiler memory events (CPU allocator)"
    else:
        memory = baselines.jax_plain_memory(model, be.loss_fn, x, y, segments=segments)
        peak, source = memory["temp_bytes"], memory["source"]
    return {"peak_bytes": int(peak), "peak_source": source}


def step_peak(spec: arch.ArchSpec, method_name: str, *, batch: int, dtype: str, block_size: int,
              seed: int) -> dict[str, Any]:
    """Peak of two whole training steps (torch, Adam) with ``method_name``'s gradients."""
    import torch

    be = adapter("torch")
    x, y = synthetic_batch(be, spec, batch, dtype=dtype, seed=seed + 1)
    if method_name == baselines.PLAIN:
        def build() -> Any:
            return be.mw.to_module(be.mw.build(spec, seed, dtype))

        def step(model: torch.nn.Module, x: Any, y: Any) -> None:
            be.loss_fn(model(x), y).backward()
    else:
        method = method_for(method_name, block_size)

        def build() -> Any:
            return be.mw.build(spec, seed, dtype)

        def step(model: Any, x: Any, y: Any) -> None:
            be.mw.backward(model, be.loss_fn, x, y, method=method)

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Moonwalk")
        peak = baselines.torch_step_peak(build, step, x, y)
    return {"step_peak_bytes": peak, "step_peak_source": baselines.STEP_SOURCE}


def method_for(name: str, block_size: int) -> methods.Method:
    """The methods compared on plain (non-reversible) nets."""
    return {"Backprop": methods.Backprop(), "Checkpointed": methods.Checkpointed(),
            "Moonwalk": methods.Moonwalk(block_size=block_size),
            "Moonwalk (auto checkpoints)": methods.Moonwalk(block_size=block_size,
                                                            checkpoint_every="auto"),
            }[name]


SEGMENTS = "framework checkpoint, segments="
"""Method label prefix of ``checkpoint_sequential`` (torch) / ``jax.checkpoint`` (JAX) rows."""
PREFIX = {"relu": "fragmental", "leaky_relu": "nonfragmental"}
"""Summary-key prefix per activation: ReLU is the paper's (fragmental) setting."""


def memory_ratios(table: pd.DataFrame) -> dict[str, Any]:
    """Per activation, at its deepest net: the plain net's and the package Backprop's peak
    over Moonwalk's (one gradient; and, torch, a whole training step), the stored-bytes ratio,
    the peaks in MiB; and the largest stored-bytes ratio over all nets."""
    ok = ok_rows(table)
    if ok.empty:
        return {}
    values = [c for c in ("stored_bytes", "peak_bytes", "step_peak_bytes") if c in ok]
    wide = ok.pivot_table(index=["activation", "depth"], columns="method", values=values)
    if ("peak_bytes", "Moonwalk") not in wide:
        return {}
    summary: dict[str, Any] = {"deepest": ok["depth"].max()}
    for activation, prefix in PREFIX.items():
        if activation not in set(ok["activation"]):
            continue
        deepest = ok.loc[ok["activation"] == activation, "depth"].max()
        at = wide.loc[(activation, deepest)]

        def get(column: str, method: str, at: pd.Series = at) -> float | None:
            value = at.get((column, method))
            return None if value is None or pd.isna(value) else float(value)

        mw = get("peak_bytes", "Moonwalk")
        for key, method in (("plain", baselines.PLAIN), ("backprop", "Backprop")):
            other = get("peak_bytes", method)
            summary[f"{prefix}_{key}_peak_ratio"] = other / mw if other and mw else None
            step, mw_step = get("step_peak_bytes", method), get("step_peak_bytes", "Moonwalk")
            summary[f"{prefix}_{key}_step_peak_ratio"] = (step / mw_step if step and mw_step
                                                          else None)
        summary[f"{prefix}_stored_ratio"] = (get("stored_bytes", "Backprop") or 0) / (
            get("stored_bytes", "Moonwalk") or float("nan"))
        segments = [v for (column, method), v in at.items()
                    if column == "peak_bytes" and method.startswith(SEGMENTS) and pd.notna(v)]
        if segments and mw:
            summary[f"{prefix}_checkpoint_min_peak_ratio"] = min(segments) / mw
        for method, key in ((baselines.PLAIN, "plain"), ("Moonwalk", "moonwalk")):
            peak, step = get("peak_bytes", method), get("step_peak_bytes", method)
            summary[f"{prefix}_{key}_peak_mib"] = None if peak is None else peak / 2**20
            summary[f"{prefix}_{key}_step_peak_mib"] = None if step is None else step / 2**20
    if ("stored_bytes", "Backprop") in wide:
        summary["stored_ratio_max"] = worst(wide[("stored_bytes", "Backprop")]
                                            / wide[("stored_bytes", "Moonwalk")])
    return summary


def summarize(table: pd.DataFrame) -> dict[str, Any]:
    """Claim quantities: memory ratios to Moonwalk at the deepest fragmental (paper) and
    non-fragmental (beyond the paper) net."""
    return memory_ratios(table)


def run(profile: Profile, backend: str = "torch", out: str | Path | None = None
        ) -> pd.DataFrame:
    """Run E2 on ``backend``; one row per (activation, depth, method) into ``out``."""
    out = Path(out) if out is not None else paths.result_file("memory_scaling", backend)
    prepare(profile, backend)
    m = profile.memory_scaling
    configs = [{"activation": a, "depth": d, "method": name}
               for a in m.activations for d in m.depths
               for name in (baselines.PLAIN, "Backprop", "Checkpointed", "Moonwalk")]
    # the framework's own checkpointing at every segment count, deepest net of each activation
    configs += [{"activation": a, "depth": max(m.depths), "method": SEGMENTS + str(s)}
                for a in m.activations for s in baselines.segment_counts(max(m.depths))]

    def row(c: Mapping[str, Any]) -> dict[str, Any]:
        def measure_one() -> dict[str, Any]:
            spec = arch.causal_conv_net(c["depth"], channels=m.channels, length=m.length,
                                        activation=c["activation"], patch=min(8, m.length))
            options = {"batch": m.batch, "dtype": m.dtype, "seed": profile.seed}
            if c["method"] == baselines.PLAIN:
                measured = plain_memory_row(backend, spec, **options)
            elif c["method"].startswith(SEGMENTS):
                segments = int(c["method"].removeprefix(SEGMENTS))
                return {**plain_memory_row(backend, spec, segments=segments, **options),
                        "segments": segments}
            else:
                measured = memory_row(backend, spec, method_for(c["method"], m.block_size),
                                      **options)
            if backend == "torch" and c["method"] != "Checkpointed":
                measured.update(step_peak(spec, c["method"], block_size=m.block_size,
                                          **options))
            return measured

        return {"backend": backend, "fragmental": c["activation"] == "relu",
                **attempt(measure_one)}

    return sweep(configs, row, out, key=KEY, profile=profile, section="memory_scaling",
                 backend=backend, summarize=summarize)
