"""compare_runs: two runs' E5/E6 headlines side by side, agreeing when their intervals overlap."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from moonwalk_core import compare_runs


def _runtime(ratio: float, spread: float) -> dict[str, float]:
    out = {}
    for key in ("moonwalk_time_ratio", "moonwalk_block_time_ratio", "backprop_time_ratio",
                "checkpointed_time_ratio"):
        out.update({key: ratio, f"{key}_q1": ratio - spread, f"{key}_q3": ratio + spread})
    return out


def _revnet(speedup: float, exponent: float, depths: tuple[int, ...] = (6, 60)
            ) -> dict[str, float]:
    out: dict[str, float] = {}
    for d in depths:
        out.update({f"speedup_depth_{d}": speedup * d, f"speedup_q1_depth_{d}": speedup * d * 0.9,
                    f"speedup_q3_depth_{d}": speedup * d * 1.1})
    for key in ("pure", "naive"):
        out.update({f"{key}_depth_exponent": exponent, f"{key}_depth_exponent_lo": exponent - 0.1,
                    f"{key}_depth_exponent_hi": exponent + 0.1})
    return out


def _folder(path: Path, runtime: dict, revnet: dict) -> Path:
    path.mkdir()
    (path / "runtime_torch.summary.json").write_text(json.dumps({**runtime, "rows": 3}))
    (path / "revnet_modes_torch.summary.json").write_text(json.dumps(
        {**revnet, "unavailable": []}))
    return path


def test_two_runs_within_their_spread_agree(tmp_path: Path) -> None:
    a = _folder(tmp_path / "a", _runtime(3.0, 0.5), _revnet(2.0, 1.0))
    b = _folder(tmp_path / "b", _runtime(3.4, 0.2), _revnet(2.15, 1.15))
    rows = compare_runs.compare(compare_runs.load_summaries(str(a)),
                                compare_runs.load_summaries(str(b)))
    assert len(rows) == 5 + 2 + 2
    assert all(r["agree"] is True for r in rows), rows
    floor = next(r for r in rows if "floor" in r["quantity"])
    assert floor["a"] == pytest.approx(3.0 * 3 / 5)
    assert floor["a_lo"] == pytest.approx(2.5 * 3 / 5)


def test_two_runs_apart_disagree_and_strict_fails(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    """B's block-wise ratio sits just above A's upper quartile; B's depth-60 speed-up just
    below A's lower one; every exponent interval is disjoint from A's."""
    a = _folder(tmp_path / "a", _runtime(3.0, 0.5), _revnet(2.0, 1.0))
    b_runtime = {**_runtime(3.0, 0.5), "moonwalk_block_time_ratio": 3.8,
                 "moonwalk_block_time_ratio_q1": 3.51, "moonwalk_block_time_ratio_q3": 4.0}
    b_revnet = {**_revnet(2.0, 1.25), "speedup_depth_60": 100.0,
                "speedup_q1_depth_60": 90.0, "speedup_q3_depth_60": 107.9}
    b = _folder(tmp_path / "b", b_runtime, b_revnet)
    rows = {r["quantity"]: r for r in compare_runs.compare(
        compare_runs.load_summaries(str(a)), compare_runs.load_summaries(str(b)))}
    apart = {q for q, r in rows.items() if r["agree"] is False}
    assert apart == {"Moonwalk (block-wise) / plain autograd, deepest net",
                     "Moonwalk (block-wise) over the op-count floor (5/3)",
                     "PureForward speed-up over NaiveForward, depth 60",
                     "PureForward depth exponent (time ~ depth^b)",
                     "NaiveForward depth exponent (time ~ depth^b)"}
    assert compare_runs.main([str(a), str(b)]) == 0
    assert compare_runs.main([str(a), str(b), "--strict", "--out", str(tmp_path / "t.md")]) == 1
    table = (tmp_path / "t.md").read_text()
    assert "| E6 | PureForward speed-up over NaiveForward, depth 60 | 120 [108, 132] | " \
           "100 [90, 108] | **no** |" in table
    assert "4 of 9 headlines with both intervals agree" in capsys.readouterr().out


def test_a_headline_without_interval_or_missing_is_not_judged(tmp_path: Path) -> None:
    a = _folder(tmp_path / "a", {"moonwalk_time_ratio": 3.0}, _revnet(2.0, 1.0, depths=(6,)))
    b = _folder(tmp_path / "b", _runtime(3.0, 0.5), _revnet(2.0, 1.0, depths=(6, 60)))
    rows = {r["quantity"]: r for r in compare_runs.compare(
        compare_runs.load_summaries(str(a)), compare_runs.load_summaries(str(b)))}
    assert rows["Moonwalk (sequential) / plain autograd, deepest net"]["agree"] is None
    assert rows["PureForward speed-up over NaiveForward, depth 60"]["a"] is None
    text = compare_runs.markdown(list(rows.values()), "a", "b")
    assert "3 (no interval)" in text and "| missing |" in text


def test_git_revisions_are_read_from_reports_results(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    results = repo / "reports" / "results"
    results.mkdir(parents=True)

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], check=True, text=True,
                              capture_output=True).stdout.strip()

    git("init", "-q")
    revisions = []
    for speedup in (2.0, 5.0):
        (results / "revnet_modes_torch.summary.json").write_text(json.dumps(_revnet(speedup,
                                                                                    1.0)))
        git("add", "-A")
        git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", f"run {speedup}")
        revisions.append(git("rev-parse", "HEAD"))
    a, b = (compare_runs.load_summaries(rev, repo) for rev in revisions)
    assert a["revnet_modes_torch"]["speedup_depth_6"] == pytest.approx(12.0)
    assert b["revnet_modes_torch"]["speedup_depth_6"] == pytest.approx(30.0)
    assert "runtime_torch" not in a
    with pytest.raises(ValueError, match="neither a results folder nor a git revision"):
        compare_runs.load_summaries("no-such-rev", repo)
