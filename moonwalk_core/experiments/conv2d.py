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
from ._common import attempt, prepare, sweep
from .max_depth import depth_ratio, search_depth
from .memory_scaling import memory_ratios, memory_row, method_for

__all__ = ["run", "summarize"]

KEY = ["part", "activation", "depth", "method"]


def summarize(table: pd.DataFrame) -> dict[str, Any]:
    """Claim quantities: memory ratios at the deepest 2D net and the max-depth ratio."""
    memory = table[table["part"] == "memory"] if "part" in table else table
    depth = table[table["part"] == "max_depth"] if "part" in table else table
    return {**memory_ratios(memory), **depth_ratio(depth)}


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
