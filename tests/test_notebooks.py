"""Notebooks stay thin: no def/class, short cells, literal parameters, paired sources.

The slow test executes every notebook with papermill on the tiny profile (torch backend) with
reports written to a temporary folder.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest

from moonwalk_core import paths

NOTEBOOKS = sorted(paths.NOTEBOOKS.glob("[0-9][0-9]_*.py"))
MAX_CELL_LINES = 15


def _code_cells(path: Path) -> list[str]:
    return [c.source for c in jupytext.read(path).cells if c.cell_type == "code"]


def test_there_is_a_notebook_per_experiment() -> None:
    assert len(NOTEBOOKS) == 8
    assert all(p.with_suffix(".ipynb").exists() for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_thin(path: Path) -> None:
    for source in _code_cells(path):
        assert len(source.strip().splitlines()) <= MAX_CELL_LINES, f"{path.name}: long cell"
        for node in ast.walk(ast.parse(source)):
            assert not isinstance(node, ast.FunctionDef | ast.ClassDef | ast.Lambda
                                  | ast.For | ast.While), f"{path.name}: {type(node).__name__}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_holds_cpu_profile_literals(path: Path) -> None:
    cells = [c for c in jupytext.read(path).cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"
    values = {}
    for node in ast.parse(cells[0].source).body:
        assert isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        values[node.targets[0].id] = node.value.value  # type: ignore[attr-defined]
    assert values.get("profile") == "cpu"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_ipynb_and_py_pair_have_the_same_sources_and_no_outputs(path: Path) -> None:
    py, ipynb = jupytext.read(path), jupytext.read(path.with_suffix(".ipynb"))
    assert [(c.cell_type, c.source) for c in py.cells] == \
        [(c.cell_type, c.source) for c in ipynb.cells]
    raw = json.loads(path.with_suffix(".ipynb").read_text())
    assert raw["metadata"]["kernelspec"]["name"] == "python3"
    for cell in raw["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_on_the_tiny_profile(path: Path, tmp_path: Path) -> None:
    if path.stem == "07_training" and not (paths.DATA / "mnist1d.npz").exists():
        subprocess.run([sys.executable, "-m", "moonwalk_core.data", "--profile", "tiny"],
                       check=True, cwd=paths.ROOT)
    (tmp_path / "reports" / "results").mkdir(parents=True)
    env = {**os.environ, "MOONWALK_REPORTS": str(tmp_path / "reports"),
           "MOONWALK_SWEEPS": str(tmp_path / "sweeps"),
           "PYTHONPATH": f"{paths.ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run(
        [sys.executable, "-m", "papermill", "--log-level", "WARNING", "--cwd",
         str(paths.NOTEBOOKS), "-p", "profile", "tiny", "-p", "backend", "torch",
         str(path.with_suffix(".ipynb")), str(tmp_path / "executed.ipynb")],
        env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert list((tmp_path / "reports" / "results").glob("*.summary.json"))
    # every cell that draws a figure leaves the image in the executed notebook (the pages show it)
    executed = json.loads((tmp_path / "executed.ipynb").read_text())
    for cell in executed["cells"]:
        last_line = "".join(cell["source"]).strip().split("\n")[-1]
        if cell["cell_type"] == "code" and last_line.startswith("plotting."):
            assert any("image/png" in o.get("data", {}) for o in cell["outputs"]), last_line
