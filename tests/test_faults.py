"""Results you can trust after faults: experiment-level checks of the scratch tables (reruns,
resumes, damaged rows), peak memory independent of what ran before, NaN as failure."""

from __future__ import annotations

import dataclasses
import json
import math
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from moonwalk_core import config, measure, paths
from moonwalk_core.experiments import backends, exactness, memory_scaling

TINY = config.load_profile("tiny")
SMALL = dataclasses.replace(TINY, memory_scaling=dataclasses.replace(
    TINY.memory_scaling, depths=[2, 3], activations=["leaky_relu"]))  # 6 configurations


class Interrupted(Exception):
    """Stands for SIGINT/SIGKILL in the middle of a sweep."""


@pytest.fixture(autouse=True)
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "sweeps"
    monkeypatch.setattr(paths, "SWEEPS", folder)
    return folder


class Peaks:
    """Counts the peak measurements; with ``stop_after = n`` the (n+1)-th is interrupted."""

    def __init__(self) -> None:
        self.calls = 0
        self.stop_after = -1
        self.real = measure.peak_memory

    def __call__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.calls == self.stop_after:
            raise Interrupted
        self.calls += 1
        return self.real(*args, **kwargs)


@pytest.fixture
def peaks(monkeypatch: pytest.MonkeyPatch) -> Peaks:
    counter = Peaks()
    monkeypatch.setattr(measure, "peak_memory", counter)
    return counter


def test_a_rerun_of_a_finished_experiment_measures_again(tmp_path: Path,
                                                         peaks: Peaks) -> None:
    """`dvc repro -f` (or any rerun DVC decides on) must re-measure, not copy the last table."""
    out = tmp_path / "memory_scaling_torch.csv"
    memory_scaling.run(SMALL, "torch", out)
    assert peaks.calls == 6
    memory_scaling.run(SMALL, "torch", out)
    assert peaks.calls == 12


def test_an_interrupted_sweep_does_not_resume_under_other_threads(tmp_path: Path,
                                                                  peaks: Peaks) -> None:
    """threads 2 -> 1 after an interruption: the rows measured with 2 threads are not kept."""
    out = tmp_path / "memory_scaling_torch.csv"
    peaks.stop_after = 2
    with pytest.raises(Interrupted):
        memory_scaling.run(SMALL, "torch", out)
    peaks.stop_after = -1
    one_thread = dataclasses.replace(SMALL, threads=1)
    try:
        memory_scaling.run(one_thread, "torch", out)
    finally:
        import torch

        torch.set_num_threads(SMALL.threads)
    assert peaks.calls == 2 + 6
    env = json.loads(out.with_suffix(".env.json").read_text())
    assert env["torch_threads"] == 1


def _corrupt(path: Path, rng: random.Random) -> None:
    """Truncate the last line mid-way, duplicate a line and shuffle the rest."""
    lines = path.read_text().splitlines(keepends=True)
    lines[-1] = lines[-1][: len(lines[-1]) // 2]
    lines.append(lines[1])
    body = lines[1:]
    rng.shuffle(body)
    path.write_text("".join([lines[0], *body]))


def test_fault_injected_resume_equals_an_uninterrupted_run(tmp_path: Path, scratch: Path,
                                                           peaks: Peaks) -> None:
    """The fault-injection test at experiment level: interrupt E2, damage its scratch table
    (truncated, duplicated and reordered rows), resume: the results equal an uninterrupted
    run's, byte for byte (E2 holds no timings)."""
    clean = tmp_path / "clean" / "memory_scaling_torch.csv"
    clean.parent.mkdir()
    memory_scaling.run(SMALL, "torch", clean)
    out = tmp_path / "memory_scaling_torch.csv"
    peaks.stop_after = 6 + 4
    with pytest.raises(Interrupted):
        memory_scaling.run(SMALL, "torch", out)
    peaks.stop_after = -1
    (partial,) = [p for p in scratch.iterdir() if p.suffix in (".jsonl", ".csv")]
    _corrupt(partial, random.Random(0))
    with pytest.warns(UserWarning, match=partial.name):
        memory_scaling.run(SMALL, "torch", out)
    assert out.read_text() == clean.read_text()
    assert (json.loads(out.with_suffix(".summary.json").read_text())
            == json.loads(clean.with_suffix(".summary.json").read_text()))


_ORDER = """
import json, sys, torch
torch.set_num_threads(1)
from moonwalk_core import arch, measure, methods
peaks = {}
for depth, name in [tuple(a.split(":")) for a in sys.argv[1:]]:
    spec = arch.causal_conv_net(int(depth), channels=4, length=32, patch=8)
    method = {"Backprop": methods.Backprop(), "Moonwalk": methods.Moonwalk(block_size=8)}[name]
    peaks[f"{depth}:{name}"] = measure.peak_memory("torch", spec, method, batch=2)["peak_bytes"]
print(json.dumps(peaks))
"""


def _peaks_in_fresh_process(*configs: str) -> dict[str, int]:
    done = subprocess.run([sys.executable, "-c", _ORDER, *configs], capture_output=True,
                          text=True, check=True, timeout=300,
                          env={"PYTHONPATH": str(paths.ROOT), "PATH": "/usr/bin:/bin"})
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_peak_does_not_depend_on_what_ran_before_it_in_the_process() -> None:
    """A resumed sweep starts a fresh process: its first peak must equal an uninterrupted
    sweep's (measured: 48,172 vs 39,980 bytes for a 6-layer Moonwalk before the warm-up)."""
    first = _peaks_in_fresh_process("6:Moonwalk", "6:Backprop")
    after = _peaks_in_fresh_process("2:Backprop", "2:Moonwalk", "6:Backprop", "6:Moonwalk")
    assert first == {k: after[k] for k in first}, (first, after)


def test_nan_errors_are_failures_in_summaries_and_verdicts(tmp_path: Path) -> None:
    """pandas' max skips NaN: an experiment that produced NaN must not read as exact."""
    from moonwalk_core.experiments._common import write_summary
    from moonwalk_core.report import evaluate_claims

    table = pd.DataFrame({"part": "network", "dtype": "float64", "error": [1e-14, np.nan],
                          "checkpoint_every": None, "status": "ok", "reason": ""})
    summary = exactness.summarize(table)
    assert math.isnan(summary["max_error_float64"])
    written = write_summary(tmp_path / "exactness_torch.csv", table, summary)
    assert written["max_error_float64"] == "nan"
    text = (tmp_path / "exactness_torch.summary.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON {c}"))
    claims = {c["id"]: c for c in evaluate_claims({"exactness_torch": written},
                                                  config.load_params())}
    assert claims["exact_float64_torch"]["verdict"] == "not reproduced"
    agreement = backends.summarize(pd.DataFrame(
        {"method": ["Moonwalk", "Moonwalk"], "torch_vs_jax": [1e-15, np.nan], "status": "ok",
         "reason": ""}))
    assert math.isnan(agreement["max_torch_vs_jax"])
    assert math.isnan(agreement["max_torch_vs_jax_Moonwalk"])
