"""The report: every claim has a row, verdicts follow params.yaml, and no number is unsourced."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from moonwalk_core import report
from moonwalk_core._claims import CLAIMS
from moonwalk_core.config import load_params

SUMMARIES = {
    "exactness_torch": {"max_error_float64": 3.1e-16, "max_error_float32": 2.2e-7,
                        "auto_checkpoint_error_float64": 4.0e-13},
    "memory_scaling_torch": {"fragmental_plain_peak_ratio": 1.05,
                             "fragmental_plain_step_peak_ratio": 1.2,
                             "fragmental_stored_ratio": 5.5,
                             "nonfragmental_plain_peak_ratio": 9.8},
    "max_depth_torch": {"fragmental_moonwalk_depth_ratio": 0.5,
                        "nonfragmental_moonwalk_depth_ratio": 11.3},
    "runtime_torch": {"moonwalk_block_time_ratio": 1.3},
    "revnet_modes_torch": {"speedup_depth_6": 30.5, "shortest_sample_s": 0.12},
    "training_torch": {"accuracy_gap": 0.004},
}


@pytest.fixture
def results(tmp_path: Path) -> Path:
    folder = tmp_path / "results"
    folder.mkdir()
    for stem, summary in SUMMARIES.items():
        (folder / f"{stem}.summary.json").write_text(json.dumps(
            {**summary, "rows": 4, "rows_ok": 4, "unavailable": []}))
        (folder / f"{stem}.env.json").write_text(json.dumps({"torch": "2.13.0", "threads": 2}))
    (folder / "backends.summary.json").write_text(json.dumps(
        {"rows": 2, "rows_ok": 0, "unavailable": ["NotImplementedError: no JAX backend"]}))
    pd.DataFrame({"method": ["Backprop", "Moonwalk"], "max_depth": [10, 5],
                  "budget_bytes": [2**20, 2**20], "status": ["ok", "ok"],
                  "peak_source": ["torch profiler memory events (CPU allocator)"] * 2}
                 ).to_csv(folder / "max_depth_torch.csv", index=False)
    return folder


def _claims(results: Path) -> dict[str, dict]:
    summaries, _ = report._load(results)
    return {c["id"]: c for c in report.evaluate_claims(summaries, load_params())}


def test_verdicts_follow_the_rule_in_params_yaml(results: Path) -> None:
    claims = _claims(results)
    assert claims["exact_float64_torch"]["verdict"] == "reproduced"
    assert claims["memory_peak_ratio_1d"]["verdict"] == "direction reproduced, smaller factor"
    assert claims["memory_stored_ratio_best"]["verdict"] == "reproduced"
    assert claims["depth_ratio_1d"]["verdict"] == "not reproduced"
    assert claims["runtime_ratio"]["verdict"] == "reproduced"
    assert claims["pure_vs_naive_small"]["verdict"] == "reproduced"
    assert claims["pure_vs_naive_large"]["verdict"] == "not measured on this profile"
    assert claims["backends_agree"]["verdict"] == "unavailable"
    assert claims["memory_peak_ratio_2d"]["verdict"] == "not run"
    ratio = claims["memory_peak_ratio_1d"]["ratio"]
    assert ratio == pytest.approx(1.05 / load_params()["paper"]["memory_ratio"])
    # a large factor on non-fragmental nets is beyond the paper: never set against its figure
    leaky = claims["depth_ratio_1d_leaky"]
    assert leaky["setting"] == "beyond the paper" and leaky["ratio"] is None
    assert claims["depth_ratio_1d"]["setting"] == "paper's setting"



@pytest.mark.parametrize(("shortest", "flagged"), [(0.049, True), (0.05, False), (None, True)])
def test_a_timing_claim_with_a_short_sample_is_flagged(results: Path, shortest: float | None,
                                                       flagged: bool) -> None:
    """E6's speed-ups are flagged when a timed sample lasted under the rule's
    ``min_timed_sample_s`` (or the summary does not say how long its shortest one was)."""
    path = results / "revnet_modes_torch.summary.json"
    summary = {k: v for k, v in json.loads(path.read_text()).items() if k != "shortest_sample_s"}
    path.write_text(json.dumps(summary if shortest is None
                               else {**summary, "shortest_sample_s": shortest}))
    verdict = _claims(results)["pure_vs_naive_small"]["verdict"]
    assert verdict.startswith("reproduced")
    assert ("flagged" in verdict) is flagged, verdict
    assert "flagged" not in _claims(results)["runtime_ratio"]["verdict"]

def test_paper_rows_compare_like_with_like() -> None:
    """A claim set against a paper figure measures the paper's setting: fragmental (ReLU)
    nets for memory and depth, against the plain framework net; every other row is marked as
    beyond the paper and gets no ours / paper ratio."""
    for claim in CLAIMS:
        if claim.scope == "beyond":
            assert claim.paper_key is None, claim.id
        if claim.paper_key and claim.experiment in ("E2", "E3"):
            assert claim.key.startswith("fragmental_"), claim.id
        if claim.paper_key and claim.experiment in ("E3", "E5"):
            assert "plain" in claim.text.lower(), claim.id
        if "leaky" in claim.text.lower() or re.search(r"\bauto\b", claim.text):
            assert claim.scope == "beyond", claim.id


def test_report_labels_the_whole_step_peak_apart_from_the_activation_peak(
        results: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    out.mkdir()
    report.build_report(results, out)
    text = (out / "report.md").read_text()
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines()
            if line.startswith("| Plain autograd / Moonwalk")}
    step = [r for r in rows if "whole training step" in r]
    activation = [r for r in rows if "activation peak" in r]
    assert step and activation and not set(step) & set(activation)
    assert "## Differences from the paper" in text


def test_report_has_a_row_per_claim_and_only_sourced_numbers(results: Path,
                                                             tmp_path: Path) -> None:
    out = tmp_path / "reports"
    out.mkdir()
    metrics = report.build_report(results, out)
    text = (out / "report.md").read_text()
    assert set(metrics) == {c.id for c in CLAIMS}
    for claim in CLAIMS:
        assert claim.text in text
    assert report.unsourced_numbers(text, results) == []
    assert "<table>" in (out / "report.html").read_text()
    assert (out / "figures" / "max_depth.png").exists()
    assert "torch profiler memory events (CPU allocator)" in text


def test_a_number_no_result_file_produced_is_caught(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    out.mkdir()
    report.build_report(results, out)
    text = (out / "report.md").read_text()
    planted = text.replace("## Claims", "## Claims\n\nMoonwalk is 3.7× faster.")
    assert report.unsourced_numbers(planted, results) == ["3.7"]


def test_fmt_writes_integers_plainly_and_floats_to_three_digits() -> None:
    assert report.fmt(12.0) == "12"
    assert report.fmt(1.23456e-7) == "1.23e-07"
    assert report.fmt(None) == "—"
    assert report.fmt(float("nan")) == "—"
