"""The dry planner: its bytes fit, its gradient counts and its replayed depth searches."""

from __future__ import annotations

import math
from typing import Any

import pytest

from moonwalk_core import config, measure
from moonwalk_core.experiments import plan


@pytest.fixture(autouse=True)
def _fresh_caches() -> Any:
    plan._bytes_model.cache_clear()
    plan._launches_per_layer.cache_clear()
    yield
    plan._bytes_model.cache_clear()
    plan._launches_per_layer.cache_clear()


def test_the_bytes_fit_recovers_a_bilinear_peak(monkeypatch: pytest.MonkeyPatch) -> None:
    from moonwalk_core import arch

    def layers(spec: Any) -> int:
        return len(spec.to_dict()["layers"])

    extra = layers(arch.causal_conv_net(2, channels=4, length=16)) - 2 * 2  # conv + activation

    def peak_memory(backend: str, spec: Any, method: Any, *, batch: int,
                    device: str) -> dict[str, Any]:
        depth = (layers(spec) - extra) // 2
        return {"peak_bytes": 1000 + 70 * depth + 300 * batch + 11 * depth * batch}

    monkeypatch.setattr(plan.measure, "peak_memory", peak_memory)
    assert plan._bytes_model("conv1d", ("relu", 4, 16), "Backprop") == (1000, 70, 300, 11)


def test_the_plan_counts_each_sweep_and_replays_the_depth_search(
        monkeypatch: pytest.MonkeyPatch) -> None:
    coefficients = {"Backprop": (1e3, 0.0, 0.0, 2e3), "Moonwalk": (1e3, 0.0, 0.0, 5e2),
                    "Moonwalk (auto)": (1e3, 0.0, 0.0, 5e2), "Checkpointed": (1e3, 0.0, 0.0, 1e3)}
    monkeypatch.setattr(plan, "_bytes_model", lambda family, key, method: coefficients.get(
        method, (1e3, 0.0, 0.0, 1e3)))
    monkeypatch.setattr(plan, "_launches_per_layer", lambda *args: 10.0)
    profile = config.load_profile("tiny")
    rows = {r["stage"]: r for r in plan.plan(profile, plan.H200, ("torch",))}
    m = profile.memory_scaling
    assert rows["memory_scaling_torch"]["gradients"] == 2 * 3 * len(m.activations) * len(m.depths)
    d = profile.max_depth
    budget = d.budget_mib * 2**20
    expect = {name: min(d.max_depth, math.floor((budget - c[0]) / (c[3] * d.batch)))
              for name, c in coefficients.items() if name != "Checkpointed"}
    evaluations = sum(len(measure.max_depth_under_budget(
        lambda depth, c=c: c[0] + c[3] * depth * d.batch, budget, hi=d.max_depth)[1])
        for name, c in coefficients.items() if name != "Checkpointed")
    assert rows["max_depth_torch"]["gradients"] == 2 * evaluations  # warm-up + measured
    note = rows["max_depth_torch"]["note"]
    for name, depth in expect.items():
        assert f"leaky_relu {name} {depth}" in note, note
    t = profile.training
    steps = t.epochs * math.ceil(0.8 * t.num_samples / t.batch)
    layer = 2.0 * t.batch * 40 * t.channels**2 * 3
    moved = 3 * t.batch * t.channels * 40 * 4
    one = sum(cost * t.depth * (layer / plan.H200.flops32 + moved / plan.H200.bandwidth)
              + 10.0 * t.depth * plan.H200.launch_s for cost in (3, 5))
    assert rows["training_torch"]["seconds"] == pytest.approx(steps * one, abs=0.05)
    assert rows["training_torch"]["peak_from"] == "analytical"
