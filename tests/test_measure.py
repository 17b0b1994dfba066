"""Measurement layer: known allocations, method orderings, max-depth search, timing table."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
import torch

from moonwalk_core import arch, methods
from moonwalk_core.measure import (
    max_depth_under_budget,
    peak_memory,
    peak_rss_fresh_process,
    time_interleaved,
)
from moonwalk_core.torch._peak import SOURCES, peak_of_call

MIB = 2**20
# The CPU allocator aligns sizes to 64 bytes and the profiler sees every allocation, so a known
# allocation must come back exact up to a few alignment pads; 1 KiB is far below one tensor.
ALLOC_TOL = 1024


def _known_allocations() -> torch.Tensor:
    a = torch.ones(MIB, dtype=torch.float32)  # 4 MiB live
    b = torch.ones(MIB // 2, dtype=torch.float64)  # + 4 MiB: peak 8 MiB
    del a  # 4 MiB live
    c = torch.ones(MIB // 4, dtype=torch.float32)  # 5 MiB live, below the peak
    return b.sum() + c.sum()


def test_known_allocation_peak_is_exact_on_cpu() -> None:
    peak, source, result = peak_of_call(_known_allocations, "cpu")
    assert source == SOURCES["cpu"]
    assert float(result) == pytest.approx(MIB // 2 + MIB // 4)
    assert abs(peak - 8 * MIB) <= ALLOC_TOL, f"measured {peak} B, expected {8 * MIB} B"


def test_memory_existing_before_the_call_is_not_counted() -> None:
    big = torch.ones(4 * MIB)  # 16 MiB allocated outside the measured call
    peak, _, _ = peak_of_call(lambda: big.add_(1).sum(), "cpu")
    assert peak <= ALLOC_TOL, f"an in-place update allocated {peak} B"


@pytest.mark.gpu
def test_known_allocation_peak_is_exact_on_cuda() -> None:
    def fn() -> torch.Tensor:
        a = torch.ones(MIB, device="cuda")
        b = torch.ones(MIB, device="cuda")
        del a
        return b.sum()

    peak, source, _ = peak_of_call(fn, "cuda")
    assert source == SOURCES["cuda"]
    # the caching allocator rounds blocks to 512 B; the sum's output is one small block
    assert abs(peak - 8 * MIB) <= ALLOC_TOL, f"measured {peak} B, expected {8 * MIB} B"


def test_unknown_device_is_rejected() -> None:
    with pytest.raises(ValueError, match="device='meta'"):
        peak_of_call(lambda: None, "meta")


REFERENCE_1D = arch.causal_conv_net(6, channels=16, length=128, kernel_size=3)


def test_backprop_peak_exceeds_moonwalk_peak_side_by_side() -> None:
    kwargs = dict(batch=8, dtype="float64")
    bp = peak_memory("torch", REFERENCE_1D, methods.Backprop(), **kwargs)
    mw = peak_memory("torch", REFERENCE_1D, methods.Moonwalk(), **kwargs)
    assert bp["source"] == mw["source"] == "torch profiler memory events (CPU allocator)"
    assert bp["stored_bytes"] > mw["stored_bytes"] > 0
    assert bp["peak_bytes"] > mw["peak_bytes"] > 0, (bp, mw)
    # a peak holds at least what the method stores between phases
    assert bp["peak_bytes"] >= bp["stored_bytes"]


def test_fresh_process_rss_agrees_with_the_allocator_peak() -> None:
    spec = arch.causal_conv_net(2, channels=16, length=256)
    rss = peak_rss_fresh_process("torch", spec.to_dict(), methods.Backprop(), batch=64)
    alloc = peak_memory("torch", spec, methods.Backprop(), batch=64)
    assert rss["source"] == "peak RSS added, fresh process"
    # Two independent sources for the same ~8 MiB peak: they differ by page rounding, small
    # heap blocks below the mmap threshold and per-process library state; 10% + 1 MiB bounds it
    # (measured: 8.13 vs 8.22 MiB).
    gap = abs(rss["peak_rss_added_bytes"] - alloc["peak_bytes"])
    assert gap <= 0.1 * alloc["peak_bytes"] + MIB, (rss, alloc)


def test_jax_peak_is_xlas_compiled_memory() -> None:
    pytest.importorskip("jax")
    spec = arch.causal_conv_net(2, channels=8, length=64)
    out = peak_memory("jax", spec, methods.Moonwalk(), batch=4)
    assert out["source"] == "XLA compiled memory analysis (temp bytes)"
    assert out["peak_bytes"] > 0 and out["stored_bytes"] > 0


def _brute_force(peaks: dict[int, float], budget: float, lo: int, hi: int) -> int:
    fitting = [d for d in range(lo, hi + 1) if peaks[d] <= budget]
    return max(fitting) if fitting and fitting[0] == lo else 0


@pytest.mark.parametrize("budget", [99.0, 107.0, 113.0, 500.0, 1234.5, 10_000.0, 1e9])
@pytest.mark.parametrize(("lo", "hi"), [(1, 1024), (3, 50)])
def test_max_depth_search_matches_brute_force_on_a_monotone_model(
        budget: float, lo: int, hi: int) -> None:
    peaks = {d: 100.0 + 7.0 * d for d in range(lo, hi + 1)}  # weights + 7 bytes per layer
    depth, evaluations = max_depth_under_budget(peaks.__getitem__, budget, lo=lo, hi=hi)
    assert depth == _brute_force(peaks, budget, lo, hi)
    assert all(peaks[d] == p for d, p in evaluations)
    assert len(evaluations) <= 2 * hi.bit_length() + 2  # logarithmic, not a scan


def test_max_depth_is_zero_when_the_smallest_depth_does_not_fit() -> None:
    depth, evaluations = max_depth_under_budget(lambda d: 10.0 * d, 5.0, lo=1)
    assert (depth, evaluations) == (0, [(1, 10.0)])


def test_time_interleaved_runs_methods_round_robin_and_reports_ratios() -> None:
    calls: list[str] = []
    fns = {name: (lambda n=name: calls.append(n)) for name in ("Backprop", "Moonwalk")}
    table = time_interleaved(fns, repeats=3, warmup=1)
    assert calls == ["Backprop", "Moonwalk"] * 4
    assert list(table.columns) == ["method", "median_s", "min_s", "max_s", "repeats",
                                   "ratio_to_baseline", "threads", "device"]
    row = table.set_index("method").loc["Backprop"]
    assert row["ratio_to_baseline"] == pytest.approx(1.0)
    assert row["min_s"] <= row["median_s"] <= row["max_s"]
    assert row["threads"] == torch.get_num_threads() and row["device"] == "cpu"


def test_time_interleaved_rejects_a_missing_baseline() -> None:
    with pytest.raises(ValueError, match="baseline='Backprop'"):
        time_interleaved({"Moonwalk": lambda: None})


@pytest.mark.slow
def test_gpu_check_smallest_runs_on_cpu_and_writes_its_json(tmp_path: Path) -> None:
    gpu_check = importlib.import_module("benchmarks.gpu_check")
    out = tmp_path / "check.json"
    # 4 MiB budget, Backprop at 3 layers: a few seconds of tiny gradients
    report = gpu_check.main(["--smallest", "--budget-gb", str(4 / 1024), "--target-depth", "3",
                             "--max-depth", "4", "--repeats", "1", "--families", "conv1d",
                             "--out", str(out)])
    assert json.loads(out.read_text())["families"].keys() == report["families"].keys()
    fam = report["families"]["conv1d"]
    assert fam["errors"] == {}, fam["errors"]
    assert fam["exactness"]["Moonwalk_float64"]["rel_error_vs_float64_backprop"] < 1e-10
    peaks = fam["at_depth"]["methods"]
    assert peaks["Backprop"]["total_peak_bytes"] > peaks["Moonwalk(block_size=32)"][
        "total_peak_bytes"]
    counted = fam["launches"]["methods"]
    assert counted["Backprop"]["host_syncs"] == 0
    assert counted["Moonwalk(block_size=32)"]["aten_launches_ratio_to_backprop"] > 1
