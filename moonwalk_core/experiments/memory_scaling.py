"""E2 memory-1d (SPEC §5): stored bytes and peak memory vs depth, 1D causal conv nets.

Fragmental (ReLU) and non-fragmental (leaky ReLU) nets, every method that applies to them.
Two memory figures per row, each with its source label: ``stored_bytes`` (the package's own
accounting: autograd's saved tensors for Backprop/Checkpointed, residuals + fragments +
checkpoints for Moonwalk) and ``peak_bytes`` (:func:`moonwalk_core.measure.peak_memory`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from .. import arch, measure, methods, paths
from ..config import Profile
from ._common import attempt, backend, sweep, write_environment

__all__ = ["run", "memory_row", "STORED_SOURCE"]

STORED_SOURCE = "stored bytes (package accounting: saved tensors / residuals + fragments)"
KEY = ["activation", "depth", "method"]


def memory_row(backend_name: str, spec: arch.ArchSpec, method: methods.Method, *, batch: int,
               dtype: str, seed: int) -> dict[str, Any]:
    """Stored bytes and peak bytes of one gradient of ``method``, with their sources."""
    with warnings.catch_warnings():  # the self-check is recorded instead
        warnings.filterwarnings("ignore", message="Moonwalk")
        peak = measure.peak_memory(backend_name, spec, method, batch=batch, dtype=dtype,
                                   seed=seed)
    return {"stored_bytes": int(peak["stored_bytes"]), "stored_source": STORED_SOURCE,
            "peak_bytes": int(peak["peak_bytes"]), "peak_source": peak["source"],
            "self_check": peak.get("self_check")}


def method_for(name: str, block_size: int) -> methods.Method:
    """The methods compared on plain (non-reversible) nets."""
    return {"Backprop": methods.Backprop(), "Checkpointed": methods.Checkpointed(),
            "Moonwalk": methods.Moonwalk(block_size=block_size)}[name]


def run(profile: Profile, backend_name: str = "torch", out: str | Path | None = None
        ) -> pd.DataFrame:
    """Run E2 on ``backend_name``; one row per (activation, depth, method) into ``out``."""
    out = Path(out) if out is not None else paths.result_file("memory_scaling", backend_name)
    m = profile.memory_scaling
    configs = [{"activation": a, "depth": d, "method": name}
               for a in m.activations for d in m.depths
               for name in ("Backprop", "Checkpointed", "Moonwalk")]

    def row(c: Mapping[str, Any]) -> dict[str, Any]:
        def measure_one() -> dict[str, Any]:
            backend(backend_name, profile.threads)
            spec = arch.causal_conv_net(c["depth"], channels=m.channels, length=m.length,
                                        activation=c["activation"], patch=min(8, m.length))
            return memory_row(backend_name, spec, method_for(c["method"], m.block_size),
                              batch=m.batch, dtype=m.dtype, seed=profile.seed)

        return {"backend": backend_name, "fragmental": c["activation"] == "relu",
                **attempt(measure_one)}

    table = sweep(configs, row, out, key=KEY, settings=(profile.seed, m))
    write_environment(out, backend_name, profile.threads)
    return table
