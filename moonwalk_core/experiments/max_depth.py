"""E3 depth-1d: the deepest 1D causal conv net whose gradient fits a memory budget.

For the plain torch net under autograd (``baselines.PLAIN``, the reference), the package's
Backprop and Moonwalk, :func:`moonwalk_core.measure.max_depth_under_budget` searches the depth
whose measured peak (torch profiler, labelled by source) fits ``budget_mib``. The paper's
comparison (10 -> 22 layers) is on fragmental (ReLU) nets: the ratio of Moonwalk's depth to the
plain net's there. Leaky-ReLU (non-fragmental) nets are searched too, beyond the paper. The
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

from .. import arch, baselines, measure, paths
from ..config import Profile
from ._common import attempt, ok_rows, prepare, sweep
from .memory_scaling import PREFIX, method_for, plain_memory_row

__all__ = ["run", "summarize", "search_depth"]

KEY = ["activation", "method"]
SEARCHED = {"relu": (baselines.PLAIN, "Backprop", "Moonwalk", "Moonwalk (auto checkpoints)"),
            "leaky_relu": (baselines.PLAIN, "Moonwalk", "Moonwalk (auto checkpoints)")}


def search_depth(backend: str, make_spec: Any, method_name: str, *, budget_mib: float,
                 max_depth: int, batch: int, dtype: str, seed: int,
                 block_size: int | None) -> dict[str, Any]:
    """Max depth of ``make_spec(depth)`` under the budget, with the peaks the search measured."""
    method = None if method_name == baselines.PLAIN else method_for(method_name, block_size)
    sources: set[str] = set()
    self_checks: dict[int, float] = {}

    def peak_of_depth(depth: int) -> float:
        if method is None:
            plain = plain_memory_row(backend, make_spec(depth), batch=batch, dtype=dtype,
                                     seed=seed)
            sources.add(plain["peak_source"])
            return float(plain["peak_bytes"])
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
    """Per activation (key prefix ``fragmental_`` for ReLU, ``nonfragmental_`` for leaky ReLU):
    every method's max depth, Moonwalk's (and auto's) over the plain net's, whether the search
    hit its limit (the ratio is then a lower bound) and the self-check at the depth found."""
    ok = ok_rows(table)
    if ok.empty or "max_depth" not in ok:
        return {}
    ok = ok.dropna(subset=["max_depth"])
    summary: dict[str, Any] = {}
    for activation, prefix in PREFIX.items():
        at = ok[ok["activation"] == activation].set_index("method")
        if baselines.PLAIN not in at.index:
            continue
        plain = at.loc[baselines.PLAIN, "max_depth"]
        summary[f"{prefix}_plain_max_depth"] = plain
        if "Backprop" in at.index:
            summary[f"{prefix}_backprop_max_depth"] = at.loc["Backprop", "max_depth"]
        for name, key in (("Moonwalk", "moonwalk"), ("Moonwalk (auto checkpoints)", "auto")):
            if name not in at.index:
                continue
            depth = at.loc[name, "max_depth"]
            summary.update({f"{prefix}_{key}_max_depth": depth,
                            f"{prefix}_{key}_depth_ratio": depth / plain if plain else None,
                            f"{prefix}_{key}_hit_search_limit": at.loc[name, "hit_search_limit"],
                            f"{prefix}_{key}_self_check": at.loc[name,
                                                                 "self_check_at_max_depth"]})
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

    def row(c: Mapping[str, Any]) -> dict[str, Any]:
        def make_spec(depth: int) -> arch.ArchSpec:
            return arch.causal_conv_net(depth, channels=m.channels, length=m.length,
                                        patch=min(8, m.length), activation=c["activation"])

        def measure_one() -> dict[str, Any]:
            return search_depth(backend, make_spec, c["method"], budget_mib=m.budget_mib,
                                max_depth=m.max_depth, batch=m.batch, dtype=m.dtype,
                                seed=profile.seed, block_size=m.block_size)

        return {"backend": backend, "fragmental": c["activation"] == "relu",
                **attempt(measure_one)}

    configs = [{"activation": a, "method": name} for a, names in SEARCHED.items()
               for name in names]
    return sweep(configs, row, out, key=KEY, profile=profile, section="max_depth",
                 backend=backend, summarize=summarize)
