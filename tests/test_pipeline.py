"""The whole pipeline: ``dvc repro`` on the tiny profile in a temporary copy of the repository
(run as a user would: no PYTHONPATH) ends in a report whose claims table is complete; a forced
rerun measures again; a bad parameter stops the pipeline before any stage loses its outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from moonwalk_core import report
from moonwalk_core._claims import CLAIMS

from .repo_copy import copy_repo, dvc


@pytest.mark.slow
def test_dvc_repro_on_tiny_profile_writes_a_complete_claims_table(tmp_path: Path) -> None:
    root = copy_repo(tmp_path)
    done = dvc(root, "repro")
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
    plots = dvc(root, "plots", "show", "--json", timeout=120)
    assert plots.returncode == 0 and json.loads(plots.stdout).get("errors") is None, plots.stdout
    shown = dvc(root, "metrics", "show", timeout=120)
    assert shown.returncode == 0 and "metrics.json" in shown.stdout
    again = dvc(root, "status", timeout=120)
    assert "up to date" in again.stdout, again.stdout[-2000:]
    assert not list((root / ".sweeps").glob("*.jsonl"))  # every sweep finished

    # `dvc repro -f` means measure again (it used to copy the last table back, byte for byte)
    runtime = root / "reports" / "results" / "runtime_torch.csv"
    before = pd.read_csv(runtime)
    forced = dvc(root, "repro", "-f", "-s", "runtime")
    assert forced.returncode == 0, (forced.stdout + forced.stderr)[-3000:]
    after = pd.read_csv(runtime)
    assert list(after.columns) == list(before.columns) and len(after) == len(before)
    assert not after["min_s"].equals(before["min_s"]), "the forced rerun measured nothing"

    # a bad parameter stops `check` first: no stage's outputs are deleted before that
    params = root / "params.yaml"
    text = params.read_text()
    params.write_text(text.replace("      repeats: 2\n", "      repeats: .nan\n", 1))
    bad = dvc(root, "repro")
    assert bad.returncode != 0
    assert "profiles.tiny.runtime.repeats" in bad.stdout + bad.stderr
    assert runtime.exists() and (root / "reports" / "executed" / "05_runtime.ipynb").exists()
    params.write_text(text)


@pytest.mark.slow
def test_parameter_text_never_reaches_a_shell(tmp_path: Path) -> None:
    """A profile named `tiny; touch pwned #` (with a profile of that name, so that DVC resolves
    every parameter) used to run `touch pwned` from the data stage's command."""
    root = copy_repo(tmp_path)
    path = root / "params.yaml"
    original = yaml.safe_load(path.read_text())
    evil = "tiny; touch pwned #"
    by_profile = {**original, "profile": evil,
                  "profiles": {**original["profiles"], evil: original["profiles"]["tiny"]}}
    by_backend = {**original, "backends": ["torch; touch pwned #"]}
    for params in (by_profile, by_backend):
        path.write_text(yaml.safe_dump(params))
        done = dvc(root, "repro", timeout=300)
        assert not list(root.rglob("pwned*")), "parameter text ran in a shell"
        assert done.returncode != 0
        assert "is not a plain name" in done.stdout + done.stderr
