"""Sweeps on several workers through DVC's experiment queue: two tiny-profile training runs
queued with ``dvc exp run --queue -S ...``, run by ``dvc queue start --jobs 2``, both collected
by ``dvc exp show`` (in a temporary copy of the repository, as README "Sweeps" documents)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from moonwalk_core import paths

SKIP = {".venv", ".git", ".sweeps", ".hypothesis", ".pytest_cache", ".ruff_cache", "__pycache__",
        "moonwalk_core.egg-info", "benchmarks", "docs", "examples"}
SKIP_AT = {".dvc/cache", ".dvc/tmp", "reports", "data"}
RATES = (0.01, 0.05)
PARAM = "profiles.tiny.training.learning_rate"


def _ignore(folder: str, names: list[str]) -> set[str]:
    relative = Path(folder).relative_to(paths.ROOT)
    return {n for n in names if n in SKIP or (relative / n).as_posix() in SKIP_AT}


def _repo(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A committed copy of the repository on the tiny profile, without any pipeline output."""
    root = tmp_path / "repo"
    shutil.copytree(paths.ROOT, root, ignore=_ignore)
    for folder in ("reports/results", "reports/figures", "reports/executed", "data"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("\nprofile: cpu", "\nprofile: tiny", 1))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(root), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for var in ("MOONWALK_REPORTS", "MOONWALK_SWEEPS"):
        env.pop(var, None)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "base"]):
        subprocess.run(cmd, cwd=root, env=env, check=True)
    return root, env


def _dvc(root: Path, env: dict[str, str], *args: str, timeout: float = 120
         ) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"dvc {' '.join(args)}:\n{(done.stdout + done.stderr)[-4000:]}"
    return done


def _experiments(shown: list[dict]) -> list[dict]:
    """The experiments (not the baseline) in ``dvc exp show --json`` output."""
    out = []
    for commit in shown:
        for exp in commit.get("experiments") or []:
            for revision in exp.get("revs", []):
                data = revision.get("data") or {}
                if revision.get("name") or data.get("rev") != "workspace":
                    out.append({"name": revision.get("name"), "status": data.get("status"),
                                "params": data.get("params", {}),
                                "metrics": data.get("metrics", {})})
    return out


@pytest.mark.slow
def test_two_queued_experiments_run_on_two_workers_and_both_come_back(tmp_path: Path) -> None:
    root, env = _repo(tmp_path)
    for rate in RATES:
        _dvc(root, env, "exp", "run", "training", "--queue", "-n", f"lr-{rate}",
             "-S", f"{PARAM}={rate}")
    _dvc(root, env, "queue", "start", "--jobs", "2")
    deadline = time.monotonic() + 900
    try:
        while True:
            status = _dvc(root, env, "queue", "status").stdout
            if "Queued" not in status and "Running" not in status:
                break
            assert time.monotonic() < deadline, status
            time.sleep(5)
    finally:
        subprocess.run([sys.executable, "-m", "dvc", "queue", "stop", "--kill"], cwd=root,
                       env=env, capture_output=True, timeout=60)
    assert "Failed" not in status, _dvc(root, env, "queue", "logs", "lr-0.01").stdout[-4000:]
    shown = _dvc(root, env, "exp", "show", "--json").stdout
    print(_dvc(root, env, "exp", "show", "--no-pager", "--md", "--only-changed").stdout)
    experiments = _experiments(json.loads(shown))
    assert sorted(e["name"] for e in experiments) == [f"lr-{r}" for r in RATES], experiments
    for exp in experiments:
        rate = float(exp["name"].removeprefix("lr-"))
        params = exp["params"]["params.yaml"]["data"]
        assert params["profiles"]["tiny"]["training"]["learning_rate"] == rate
        summary = exp["metrics"]["reports/results/training_torch.summary.json"]["data"]
        assert summary, exp
    accuracies = [json.dumps(e["metrics"]) for e in experiments]
    assert accuracies[0] != accuracies[1]  # two different runs, not one result shown twice
