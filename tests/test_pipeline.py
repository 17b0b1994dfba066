"""The whole pipeline: ``dvc repro`` on the tiny profile in a temporary copy of the repository
ends in a report whose claims table is complete."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from moonwalk_core import paths, report
from moonwalk_core._claims import CLAIMS

SKIP_ANYWHERE = {".venv", ".git", ".sweeps", ".hypothesis", ".pytest_cache", ".ruff_cache",
                 "__pycache__", "moonwalk_core.egg-info"}
SKIP_AT = {".dvc/cache", ".dvc/tmp", "reports", "data", "benchmarks", "docs"}


def _ignore(folder: str, names: list[str]) -> set[str]:
    """What the copy leaves out: environments, caches, and every pipeline output."""
    relative = Path(folder).relative_to(paths.ROOT)
    return {n for n in names
            if n in SKIP_ANYWHERE or (relative / n).as_posix() in SKIP_AT}


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(paths.ROOT, root, ignore=_ignore)
    for folder in ("reports/results", "reports/figures", "reports/executed", "data"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    params = root / "params.yaml"
    text = params.read_text()
    assert "\nprofile: cpu" in text
    params.write_text(text.replace("\nprofile: cpu", "\nprofile: tiny", 1))
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    return root


@pytest.mark.slow
def test_dvc_repro_on_tiny_profile_writes_a_complete_claims_table(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(root)}
    env.pop("MOONWALK_REPORTS", None)
    env.pop("MOONWALK_SWEEPS", None)
    dvc = [sys.executable, "-m", "dvc"]
    done = subprocess.run([*dvc, "repro"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    metrics = json.loads((root / "reports" / "metrics.json").read_text())
    assert set(metrics) == {c.id for c in CLAIMS}
    assert all(m["verdict"] for m in metrics.values())
    text = (root / "reports" / "report.md").read_text()
    table = [line for line in text.split("## Claims")[1].split("\n\n")[1].splitlines()]
    assert len(table) == 2 + len(CLAIMS)  # header, rule, one row per claim
    assert (root / "reports" / "report.html").exists()
    # every claim links to the rendered page of its executed notebook, stamped with this run
    assert report.check_links(text, root / "reports") == []
    executed = sorted(p.stem for p in (root / "reports" / "executed").glob("*.ipynb"))
    assert sorted(p.stem for p in (root / "reports" / "notebooks").glob("*.html")) == executed
    plots = subprocess.run([*dvc, "plots", "show", "--json"], cwd=root, env=env,
                           capture_output=True, text=True, timeout=120)
    assert plots.returncode == 0 and json.loads(plots.stdout).get("errors") is None, plots.stdout
    shown = subprocess.run([*dvc, "metrics", "show"], cwd=root, env=env, capture_output=True,
                           text=True, timeout=120)
    assert shown.returncode == 0 and "metrics.json" in shown.stdout
    again = subprocess.run([*dvc, "status"], cwd=root, env=env, capture_output=True, text=True,
                           timeout=120)
    assert "up to date" in again.stdout, again.stdout[-2000:]
