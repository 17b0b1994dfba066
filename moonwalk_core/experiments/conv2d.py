"""E4 conv-2d: E2 and E3 for 2D conv nets, fragmental (ReLU) and not (leaky ReLU).

Part ``memory``: stored and peak bytes vs depth for every method; part ``max_depth``: the
deepest net under ``budget_mib`` for Backprop and Moonwalk (non-fragmental nets). Inputs are
synthetic tensors of CIFAR-10's shape per example ([3, size, size]). See ``docs/experiments.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from .. import arch, paths
from ..config import Profile
from ._common import attempt, ok_rows, prepare, sweep, worst
from .max_depth import search_depth
from .memory_scaling import memory_row, method_for

__all__ = ["run", "summarize"]

KEY = ["part", "activation", "depth", "method"]


def summarize(table: pd.DataFrame) -> dict[str, Any]:
    """Claim quantities (the package's Backprop over Moonwalk; leaky-ReLU nets unless
    prefixed ``fragmental_``): peak and stored-bytes ratios at the deepest 2D net, and the
    max depths with their ratios (a lower bound when a search hit its limit)."""
    ok = ok_rows(table)
    memory = ok[ok["part"] == "memory"] if "part" in ok else ok
    summary: dict[str, Any] = {}
    if not memory.empty:
        wide = memory.pivot_table(index=["activation", "depth"], columns="method",
                                  values=["stored_bytes", "peak_bytes"])
        if ("peak_bytes", "Moonwalk") in wide and ("peak_bytes", "Backprop") in wide:
            peak = wide[("peak_bytes", "Backprop")] / wide[("peak_bytes", "Moonwalk")]
            stored = wide[("stored_bytes", "Backprop")] / wide[("stored_bytes", "Moonwalk")]
            deepest = memory["depth"].max()
            summary.update(deepest=deepest,
                           peak_ratio_deepest=peak.get(("leaky_relu", deepest)),
                           stored_ratio_deepest=stored.get(("leaky_relu", deepest)),
                           fragmental_peak_ratio_deepest=peak.get(("relu", deepest)),
                           stored_ratio_max=worst(stored))
    depth = ok[ok["part"] == "max_depth"] if "part" in ok else ok
    if not depth.empty and "max_depth" in depth:
        at = depth.dropna(subset=["max_depth"]).set_index("method")
        if {"Backprop", "Moonwalk"} <= set(at.index):
            bp = at.loc["Backprop", "max_depth"]
            for name, key in (("Moonwalk", "moonwalk"), ("Moonwalk (auto checkpoints)", "auto")):
                if name in at.index:
                    mw = at.loc[name, "max_depth"]
                    summary.update({f"{key}_max_depth": mw,
                                    f"{key}_depth_ratio": mw / bp if bp else None,
                                    f"{key}_hit_search_limit": at.loc[name, "hit_search_limit"],
                                    f"{key}_self_check_at_max_depth":
                                        at.loc[name, "self_check_at_max_depth"]})
            summary["backprop_max_depth"] = bp
            summary["depth_ratio"] = summary.get("moonwalk_depth_ratio")
    return summary


def run(profile: Profile, backend: str = "torch", out: str | Path | None = None
        ) -> pd.DataFrame:
    """Run E4 on ``backend``; one row per configuration into ``out``."""
    out = Path(out) if out is not None else paths.result_file("conv2d", backend)
    prepare(profile, backend)
    c2 = profile.conv2d

    def make_spec(depth: int, activation: str = "leaky_relu") -> arch.ArchSpec:
        return arch.conv2d_net(depth, channels=c2.channels, size=c2.size,
                               activation=activation, patch=min(4, c2.size))

    configs: list[dict[str, Any]] = [
        {"part": "memory", "activation": a, "depth": d, "method": name}
        for a in c2.activations for d in c2.depths
        for name in ("Backprop", "Checkpointed", "Moonwalk")]
    configs += [{"part": "max_depth", "activation": "leaky_relu", "depth": None, "method": name}
                for name in ("Backprop", "Moonwalk", "Moonwalk (auto checkpoints)")]

    def row(c: Mapping[str, Any]) -> dict[str, Any]:
        def measure_one() -> dict[str, Any]:
            if c["part"] == "memory":
                return memory_row(backend, make_spec(c["depth"], c["activation"]),
                                  method_for(c["method"], None), batch=c2.batch,
                                  dtype=c2.dtype, seed=profile.seed)
            return search_depth(backend, make_spec, c["method"], budget_mib=c2.budget_mib,
                                max_depth=c2.max_depth, batch=c2.batch, dtype=c2.dtype,
                                seed=profile.seed, block_size=None)

        return {"backend": backend, "fragmental": c["activation"] == "relu",
                **attempt(measure_one)}

    return sweep(configs, row, out, key=KEY, profile=profile, section="conv2d", backend=backend,
                 summarize=summarize)
