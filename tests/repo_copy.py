"""A temporary copy of the repository to run DVC in (no environments, caches or outputs)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from moonwalk_core import paths

SKIP_ANYWHERE = {".venv", ".git", ".sweeps", ".hypothesis", ".pytest_cache", ".ruff_cache",
                 "__pycache__", "moonwalk_core.egg-info", ".ipynb_checkpoints"}
SKIP_AT = {".dvc/cache", ".dvc/tmp", "reports", "data", "benchmarks", "docs"}


def _ignore(folder: str, names: list[str]) -> set[str]:
    """What the copy leaves out: environments, caches, and every pipeline output."""
    relative = Path(folder).relative_to(paths.ROOT)
    return {n for n in names
            if n in SKIP_ANYWHERE or (relative / n).as_posix() in SKIP_AT}


def copy_repo(tmp_path: Path, profile: str = "tiny") -> Path:
    """The repository copied to ``tmp_path/repo`` with ``profile`` selected, as a git repo."""
    root = tmp_path / "repo"
    shutil.copytree(paths.ROOT, root, ignore=_ignore)
    for folder in ("reports/results", "reports/figures", "reports/executed", "data"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for kept in ("reports/.gitignore", "reports/results/.gitignore",
                 "reports/executed/.gitignore"):
        if (paths.ROOT / kept).exists():
            shutil.copyfile(paths.ROOT / kept, root / kept)
    params = root / "params.yaml"
    text = params.read_text()
    assert "\nprofile: cpu" in text
    params.write_text(text.replace("\nprofile: cpu", f"\nprofile: {profile}", 1))
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    return root


def environment(**extra: str) -> dict[str, str]:
    """The environment a user has: this interpreter's folder first on PATH, and nothing that
    points Python at a checkout (no PYTHONPATH, no MOONWALK_* overrides)."""
    env = {k: v for k, v in os.environ.items()
           if k != "PYTHONPATH" and not k.startswith("MOONWALK_") and not k.startswith("DVC_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env.update(extra)
    return env


def dvc(root: Path, *args: str, env: dict[str, str] | None = None,
        timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """``dvc <args>`` in ``root``."""
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root,
                          env=env if env is not None else environment(), capture_output=True,
                          text=True, timeout=timeout)


PROBE = '''\
import json, os, time, pathlib
import moonwalk_core
probe = pathlib.Path(os.environ["MOONWALK_TEST_PROBE"])
probe.write_text(json.dumps({"pid": os.getpid(), "ppid": os.getppid(),
                             "module": moonwalk_core.__file__}))
time.sleep(float(os.environ.get("MOONWALK_TEST_SLEEP", "0")))
results = pathlib.Path("../reports/results")
for name in ("backends.csv", "backends.env.json", "backends.summary.json"):
    (results / name).write_text("{}\\n" if name.endswith(".json") else "x\\n1\\n")
'''


def probe_notebook(root: Path, stage_notebook: str = "08_backends") -> None:
    """Replace a stage's notebook by a probe: it records its kernel's pid and where
    ``moonwalk_core`` came from (``$MOONWALK_TEST_PROBE``), sleeps ``$MOONWALK_TEST_SLEEP``
    seconds, then writes the E8 stage's outputs."""
    cell = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": []}
    notebook = {
        "cells": [{**cell, "metadata": {"tags": ["parameters"]},
                   "source": 'profile = "cpu"\nbackend = "torch"\n'},
                  {**cell, "source": PROBE}],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                    "name": "python3"}},
        "nbformat": 4, "nbformat_minor": 5}
    (root / "notebooks" / f"{stage_notebook}.ipynb").write_text(json.dumps(notebook))
