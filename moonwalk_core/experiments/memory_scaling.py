"""E2 memory-1d: stored bytes and peak memory vs depth, 1D causal conv nets.

Fragmental (ReLU) and non-fragmental (leaky ReLU) nets, every method that applies to them.
Two memory figures per row, each with its source label: ``stored_bytes`` (the package's own
accounting: autograd's saved tensors for Backprop/Checkpointed, residuals + fragments +
checkpoints for Moonwalk) and ``peak_bytes`` (:func:`moonwalk_core.measure.peak_memory`).
See ``docs/experiments.md`` and ``docs/measurement.md``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from .. import arch, measure, methods, paths
from ..config import Profile
from ._common import attempt, ok_rows, prepare, sweep, worst

__all__ = ["run", "summarize", "memory_row", "STORED_SOURCE"]

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


def method_for(name: str, block_size: int) -> methods.Method:
    """The methods compared on plain (non-reversible) nets."""
    return {"Backprop": methods.Backprop(), "Checkpointed": methods.Checkpointed(),
            "Moonwalk": methods.Moonwalk(block_size=block_size),
            "Moonwalk (auto checkpoints)": methods.Moonwalk(block_size=block_size,
                                                            checkpoint_every="auto"),
            }[name]


def memory_ratios(table: pd.DataFrame, activation: str = "leaky_relu") -> dict[str, Any]:
    """Backprop over Moonwalk (stored and peak bytes) at the deepest net of ``activation``,
    and the largest stored-bytes ratio over all nets."""
    ok = ok_rows(table)
    if ok.empty:
        return {}
    wide = ok.pivot_table(index=["activation", "depth"], columns="method",
                          values=["stored_bytes", "peak_bytes"])
    if ("stored_bytes", "Moonwalk") not in wide or ("stored_bytes", "Backprop") not in wide:
        return {}
    stored = wide[("stored_bytes", "Backprop")] / wide[("stored_bytes", "Moonwalk")]
    peak = wide[("peak_bytes", "Backprop")] / wide[("peak_bytes", "Moonwalk")]
    deepest = ok.loc[ok["activation"] == activation, "depth"].max()
    return {"deepest": deepest, "stored_ratio_deepest": stored.get((activation, deepest)),
            "peak_ratio_deepest": peak.get((activation, deepest)),
            "stored_ratio_max": worst(stored),
            "fragmental_stored_ratio_deepest": stored.get(("relu", deepest))}


def summarize(table: pd.DataFrame) -> dict[str, Any]:
    """Claim quantities: Backprop / Moonwalk memory at the deepest net, and the best ratio."""
    return memory_ratios(table)


def run(profile: Profile, backend: str = "torch", out: str | Path | None = None
        ) -> pd.DataFrame:
    """Run E2 on ``backend``; one row per (activation, depth, method) into ``out``."""
    out = Path(out) if out is not None else paths.result_file("memory_scaling", backend)
    prepare(profile, backend)
    m = profile.memory_scaling
    configs = [{"activation": a, "depth": d, "method": name}
               for a in m.activations for d in m.depths
               for name in ("Backprop", "Checkpointed", "Moonwalk")]

    def row(c: Mapping[str, Any]) -> dict[str, Any]:
        def measure_one() -> dict[str, Any]:
            spec = arch.causal_conv_net(c["depth"], channels=m.channels, length=m.length,
                                        activation=c["activation"], patch=min(8, m.length))
            return memory_row(backend, spec, method_for(c["method"], m.block_size),
                              batch=m.batch, dtype=m.dtype, seed=profile.seed)

        return {"backend": backend, "fragmental": c["activation"] == "relu",
                **attempt(measure_one)}

    return sweep(configs, row, out, key=KEY, profile=profile, section="memory_scaling",
                 backend=backend, summarize=summarize)
