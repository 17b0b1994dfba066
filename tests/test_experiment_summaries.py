"""The claim quantities the experiments compute from their tables (synthetic tables, no timing).

Each summary is checked against a table whose answer is known: the fitted depth exponents of
E6, the checkpointing frontier of E5, E2's like-for-like memory ratios and E7's gaps.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from moonwalk_core.experiments import memory_scaling, revnet_modes, runtime, training


def _revnet_table(naive_power: float, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for depth in (6, 12, 24, 60):
        for method, power, scale in (("PureForward", 1.0, 0.01), ("NaiveForward", naive_power,
                                                                   0.002)):
            times = scale * depth**power * np.exp(rng.normal(0, 0.02, 3))
            rows.append({"depth": depth, "method": method, "status": "ok",
                         "median_s": float(np.median(times)), "min_s": float(times.min()),
                         "times_s": " ".join(f"{t:.6g}" for t in times),
                         "ratio_to_baseline": 0.2 * depth, "ratio_q1": 0.19 * depth,
                         "ratio_q3": 0.21 * depth, "error": 1e-7,
                         "calls_per_sample": 1 + 60 // depth,
                         "min_sample_s": float(times.min()) * (1 + 60 // depth)})
    return pd.DataFrame(rows)


def test_depth_exponents_are_fitted_on_log_log_with_an_interval() -> None:
    table = _revnet_table(2.0)
    pure = revnet_modes.depth_exponent(table, "PureForward")
    naive = revnet_modes.depth_exponent(table, "NaiveForward")
    assert pure is not None and naive is not None
    assert pure[1] < 1.0 < pure[2] and abs(pure[0] - 1.0) < 0.05
    assert naive[1] < 2.0 < naive[2] and abs(naive[0] - 2.0) < 0.05
    summary = revnet_modes.summarize(table)
    assert summary["speedup_depth_60"] == pytest.approx(12.0)
    assert summary["speedup_q1_depth_6"] == pytest.approx(0.19 * 6)
    assert summary["shortest_forward_mode_call_s"] == pytest.approx(table["min_s"].min())
    assert summary["shortest_sample_s"] == pytest.approx(table["min_sample_s"].min())
    assert summary["shortest_sample_s"] != pytest.approx(table["min_s"].min())
    assert summary["calls_per_sample_max"] == 11
    assert revnet_modes.depth_exponent(table[table["depth"] < 24], "PureForward") is None


def _pareto(moonwalk_peak: float, moonwalk_time: float) -> pd.DataFrame:
    rows = [{"part": "pareto", "method": "Plain autograd", "median_s": 1.0, "peak_bytes": 100.0},
            {"part": "pareto", "method": "checkpoint (1 seg)", "median_s": 1.3,
             "peak_bytes": 30.0},
            {"part": "pareto", "method": "checkpoint (4 seg)", "median_s": 1.2,
             "peak_bytes": 40.0},
            {"part": "pareto", "method": "Moonwalk (block 8)", "median_s": moonwalk_time,
             "peak_bytes": moonwalk_peak}]
    return pd.DataFrame(rows).assign(status="ok", depth=4, block_size=None)


def test_the_frontier_compares_moonwalk_with_checkpointing_no_slower_than_it() -> None:
    below = runtime.frontier_summary(_pareto(20.0, 1.25))
    assert below["frontier_peak_ratio"] == pytest.approx(40.0 / 20.0)
    assert below["moonwalk_below_frontier"] == 1
    above = runtime.frontier_summary(_pareto(50.0, 1.25))
    assert above["frontier_peak_ratio"] == pytest.approx(40.0 / 50.0)
    assert above["moonwalk_below_frontier"] == 0
    # slower than every checkpointing point: against the least peak of all
    slow = runtime.frontier_summary(_pareto(20.0, 5.0))
    assert slow["frontier_peak_ratio"] == pytest.approx(30.0 / 20.0)


def test_memory_claims_divide_matching_quantities_per_activation() -> None:
    rows = []
    for activation, mw in (("relu", 40.0), ("leaky_relu", 10.0)):
        for method, peak, step, stored in (("Plain autograd", 100.0, 200.0, None),
                                           ("Backprop", 110.0, 210.0, 90.0),
                                           ("Moonwalk", mw, mw + 100.0, mw / 2)):
            rows.append({"activation": activation, "depth": 8, "method": method,
                         "peak_bytes": peak, "step_peak_bytes": step, "stored_bytes": stored,
                         "status": "ok"})
    rows += [{"activation": "relu", "depth": 8, "method": memory_scaling.SEGMENTS + str(k),
              "peak_bytes": peak, "status": "ok"} for k, peak in ((1, 60.0), (2, 50.0))]
    summary = memory_scaling.summarize(pd.DataFrame(rows))
    assert summary["fragmental_checkpoint_min_peak_ratio"] == pytest.approx(50 / 40)
    assert summary["fragmental_plain_peak_ratio"] == pytest.approx(100 / 40)
    assert summary["fragmental_plain_step_peak_ratio"] == pytest.approx(200 / 140)
    assert summary["fragmental_backprop_peak_ratio"] == pytest.approx(110 / 40)
    assert summary["fragmental_stored_ratio"] == pytest.approx(90 / 20)
    assert summary["nonfragmental_plain_peak_ratio"] == pytest.approx(100 / 10)


def test_training_gap_of_the_paper_setting_is_the_relu_runs_worst() -> None:
    rows = [{"dataset": d, "activation": a, "method": m, "epoch": 1, "status": "ok",
             "test_accuracy": acc, "self_check_max": 0.0}
            for d, a, m, acc in [("mnist1d", "relu", "Backprop", 0.80),
                                 ("mnist1d", "relu", "Moonwalk", 0.70),
                                 ("digits", "relu", "Backprop", 0.90),
                                 ("digits", "relu", "Moonwalk", 0.95),
                                 ("digits", "leaky_relu", "Backprop", 0.90),
                                 ("digits", "leaky_relu", "Moonwalk", 0.70)]]
    summary = training.summarize(pd.DataFrame(rows))
    assert summary["accuracy_gap"] == pytest.approx(0.10)
    assert summary["nonfragmental_accuracy_gap"] == pytest.approx(0.20)
    assert summary["digits_relu_moonwalk_accuracy"] == pytest.approx(0.95)


def test_time_rounds_takes_the_median_of_per_round_ratios(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """Each round's ratio divides by the reference's time in the same round: a round where
    the whole machine was slow does not tilt the ratio (the ratio of medians would: 1.5)."""
    rounds = iter([{"a": 1.0, "b": 2.0}, {"a": 2.0, "b": 4.0}, {"a": 3.0, "b": 3.0}])

    def fake(fns: dict, **kwargs: object) -> pd.DataFrame:
        times = next(rounds)
        return pd.DataFrame({"method": list(fns), "median_s": [times[n] for n in fns]})

    monkeypatch.setattr(runtime.measure, "time_interleaved", fake)
    rows = {r["method"]: r for r in runtime.time_rounds({"a": lambda: 0, "b": lambda: 0},
                                                        repeats=3, warmup=0, baseline="a")}
    assert rows["b"]["ratio_to_baseline"] == pytest.approx(2.0)
    assert rows["b"]["median_s"] == pytest.approx(3.0)
    assert rows["b"]["ratio_q1"] == pytest.approx(1.5)
    assert rows["b"]["times_s"] == "2 4 3"


class _FakeClock:
    """A clock that only moves when a fake gradient runs: call ``i`` of function ``k`` takes
    ``durations[k][i]`` seconds (the last one repeats); ``time_interleaved`` reads it too."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, durations: dict[str, list[float]]
                 ) -> None:
        self.now, self.durations, self.calls = 0.0, durations, {k: 0 for k in durations}
        monkeypatch.setattr(runtime, "_clock", lambda: self.now)
        monkeypatch.setattr(runtime.measure, "time_interleaved", self.time_interleaved)

    def fn(self, key: str):
        def call() -> None:
            times = self.durations[key]
            self.now += times[min(self.calls[key], len(times) - 1)]
            self.calls[key] += 1
        return call

    def time_interleaved(self, fns: dict, **kwargs: object) -> pd.DataFrame:
        rows = []
        for name, fn in fns.items():
            start = self.now
            fn()
            rows.append({"method": name, "median_s": self.now - start})
        return pd.DataFrame(rows)


def test_time_rounds_repeats_short_calls_until_a_sample_is_long_enough(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A sample lasts at least ``min_sample_s`` however the call's speed varies (slow first
    call, a slow spell, then fast again); times are per call, ratios per round."""
    clock = _FakeClock(monkeypatch, {"fast": [0.5, 0.25, 2**-6], "slow": [0.375]})
    rows = {r["method"]: r for r in runtime.time_rounds(
        {"fast": clock.fn("fast"), "slow": clock.fn("slow")}, repeats=3, warmup=0,
        baseline="slow", min_sample_s=2**-4)}
    fast = rows["fast"]
    # untimed first call (0.5); sample 1: 0.25 alone; samples 2 and 3: four calls of 1/64
    assert clock.calls["fast"] == 1 + 1 + 4 + 4
    assert fast["times_s"] == "0.25 0.015625 0.015625"
    assert fast["calls_per_sample"] == 1
    assert fast["min_sample_s"] == 2**-4
    assert fast["ratio_q1"] == pytest.approx(2**-6 / 0.375)
    assert rows["slow"]["calls_per_sample"] == 1 and rows["slow"]["median_s"] == 0.375
    without = {r["method"]: r for r in runtime.time_rounds(
        {"fast": clock.fn("fast")}, repeats=2, warmup=0, baseline="fast")}
    assert without["fast"]["min_sample_s"] == 2**-6  # one call a sample
    clock = _FakeClock(monkeypatch, {"f": [2**-6]})
    (warm,) = runtime.time_rounds({"f": clock.fn("f")}, repeats=2, warmup=1, baseline="f",
                                  min_sample_s=2**-4)
    assert warm["calls_per_sample"] == 4 and warm["times_s"] == "0.015625 0.015625"


def test_conv2d_summary_keeps_its_claim_keys() -> None:
    from moonwalk_core.experiments import conv2d

    rows = [{"part": "memory", "activation": a, "depth": 4, "method": m, "status": "ok",
             "peak_bytes": p, "stored_bytes": p} for a in ("relu", "leaky_relu")
            for m, p in (("Backprop", 100.0), ("Moonwalk", 25.0 if a == "leaky_relu" else 50.0))]
    rows += [{"part": "max_depth", "activation": "leaky_relu", "method": m, "status": "ok",
              "max_depth": d, "hit_search_limit": False, "self_check_at_max_depth": 0.0}
             for m, d in (("Backprop", 4), ("Moonwalk", 12), ("Moonwalk (auto checkpoints)", 10))]
    summary = conv2d.summarize(pd.DataFrame(rows))
    assert summary["peak_ratio_deepest"] == pytest.approx(4.0)
    assert summary["fragmental_peak_ratio_deepest"] == pytest.approx(2.0)
    assert summary["auto_depth_ratio"] == pytest.approx(2.5)
    assert summary["depth_ratio"] == pytest.approx(3.0)
