"""E3 depth-1d: the deepest 1D causal conv net whose gradient fits a memory budget.

For Backprop and Moonwalk, :func:`moonwalk_core.measure.max_depth_under_budget` searches the
depth whose measured peak (:func:`moonwalk_core.measure.peak_memory`, labelled by source) fits
``budget_mib``. The paper's comparison is the ratio of the two depths (10 -> 22 layers). The
self-check at the depth found is recorded: a depth whose gradient is inaccurate is not usable,
so Moonwalk with ``checkpoint_every="auto"`` (which keeps deep nets accurate) is searched too.
See ``docs/experiments.md``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from .. import arch, measure, paths
from ..config import Profile
from ._common import attempt, ok_rows, prepare, sweep
from .memory_scaling import method_for

__all__ = ["run", "summarize", "search_depth"]

KEY = ["method"]


def search_depth(backend: str, make_spec: Any, method_name: str, *, budget_mib: float,
                 max_depth: int, batch: int, dtype: str, seed: int,
                 block_size: int | None) -> dict[str, Any]:
    """Max depth of ``make_spec(depth)`` under the budget, with the peaks the search measured."""
    method = method_for(method_name, block_size)
    sources: set[str] = set()
    self_checks: dict[int, float] = {}

    def peak_of_depth(depth: int) -> float:
        with warnings.catch_warnings():  # the self-check is recorded instead
            warnings.filterwarnings("ignore", message="Moonwalk")
            peak = measure.peak_memory(backend, make_spec(depth), method, batch=batch,
                                       dtype=dtype, seed=seed)
        sources.add(peak["source"])
        self_checks[depth] = peak.get("self_check")
        return float(peak["peak_bytes"])

    depth, evaluations = measure.max_depth_under_budget(peak_of_depth, budget_mib * 2**20,
                                                        hi=max_depth)
    return {"max_depth": depth, "self_check_at_max_depth": self_checks.get(depth),
            "budget_bytes": int(budget_mib * 2**20),
            "hit_search_limit": depth == max_depth, "evaluations": len(evaluations),
            "peaks": json.dumps([[d, int(p) if p < 2**63 else None] for d, p in evaluations]),
            "peak_source": "; ".join(sorted(sources))}


def depth_ratio(table: pd.DataFrame) -> dict[str, Any]:
    """Max depths of Backprop and Moonwalk and their ratio (a lower bound when Moonwalk hit
    the search limit)."""
    ok = ok_rows(table)
    if ok.empty or "max_depth" not in ok:
        return {}
    ok = ok.dropna(subset=["max_depth"]).set_index("method")
    if not {"Backprop", "Moonwalk"} <= set(ok.index):
        return {}
    bp, mw = ok.loc["Backprop", "max_depth"], ok.loc["Moonwalk", "max_depth"]
    summary = {"backprop_max_depth": bp, "moonwalk_max_depth": mw,
               "depth_ratio": mw / bp if bp else None,
               "moonwalk_hit_search_limit": ok.loc["Moonwalk", "hit_search_limit"],
               "moonwalk_self_check_at_max_depth": ok.loc["Moonwalk",
                                                          "self_check_at_max_depth"]}
    auto = "Moonwalk (auto checkpoints)"
    if auto in ok.index:
        depth = ok.loc[auto, "max_depth"]
        summary.update(auto_max_depth=depth, auto_depth_ratio=depth / bp if bp else None,
                       auto_hit_search_limit=ok.loc[auto, "hit_search_limit"],
                       auto_self_check_at_max_depth=ok.loc[auto, "self_check_at_max_depth"])
    return summary


def summarize(table: pd.DataFrame) -> dict[str, Any]:
    """Claim quantities: the two max depths and their ratio."""
    return depth_ratio(table)


def run(profile: Profile, backend: str = "torch", out: str | Path | None = None
        ) -> pd.DataFrame:
    """Run E3 on ``backend``: one row per method (Backprop, Moonwalk) into ``out``."""
    out = Path(out) if out is not None else paths.result_file("max_depth", backend)
    prepare(profile, backend)
    m = profile.max_depth

    def make_spec(depth: int) -> arch.ArchSpec:
        return arch.causal_conv_net(depth, channels=m.channels, length=m.length,
                                    patch=min(8, m.length))

    def row(c: Mapping[str, Any]) -> dict[str, Any]:
        def measure_one() -> dict[str, Any]:
            return search_depth(backend, make_spec, c["method"], budget_mib=m.budget_mib,
                                max_depth=m.max_depth, batch=m.batch, dtype=m.dtype,
                                seed=profile.seed, block_size=m.block_size)

        return {"backend": backend, **attempt(measure_one)}

    configs = [{"method": name}
               for name in ("Backprop", "Moonwalk", "Moonwalk (auto checkpoints)")]
    return sweep(configs, row, out, key=KEY, profile=profile, section="max_depth",
                 backend=backend, summarize=summarize)
