"""What each pipeline stage's results depend on, found from its imports.

# Note: [stage inputs]
A stage depends on every package file its code can import: the static import closure of its
notebook (or module), top-level and function-level imports alike (found by the standard
library's ``modulefinder``), plus the stage runner and the whole package of each backend the
stage selects at run time (``get_backend(name)`` imports it by name, which no static analysis
sees). The ``check`` stage writes one manifest per stage, ``reports/inputs/<stage>.json``:
those files and their hashes. Each stage depends on its manifest, so DVC reruns it exactly when
one of its files changed, and a new module is covered the moment something imports it. A
torch-only stage does not depend on the JAX backend (nothing it runs imports it). See
``docs/pipeline.md``.
"""

from __future__ import annotations

import hashlib
import json
import modulefinder
import tempfile
from pathlib import Path

from .. import paths
from ._stage import STAGES

__all__ = ["closure", "stage_files", "stage_names", "write_inputs"]

PACKAGE = "moonwalk_core"
RUNNER = f"{PACKAGE}.experiments.__main__"
MODULE_STAGES = {"data": f"{PACKAGE}.data", "render": f"{PACKAGE}.render",
                 "report": f"{PACKAGE}.report"}
"""Stages that run a module of the package rather than a notebook."""


class _PackageFinder(modulefinder.ModuleFinder):
    """A ModuleFinder that follows only the package's own modules."""

    def find_module(self, name, path, parent=None):  # type: ignore[no-untyped-def]
        if parent is None and path is None and name != PACKAGE:
            raise ImportError(name)  # a third-party or standard module: not followed
        return super().find_module(name, path, parent)


def closure(*, script: str | None = None, modules: tuple[str, ...] = ()) -> set[Path]:
    """The package files that ``script`` (Python source) and ``modules`` import, directly or
    through other package modules, at any level of a function."""
    finder = _PackageFinder(path=[str(paths.ROOT)])
    if script is not None:
        with tempfile.NamedTemporaryFile("w", suffix=".py") as f:
            f.write(script)
            f.flush()
            finder.run_script(f.name)
    for name in modules:
        finder.import_hook(name)
    return {Path(m.__file__).resolve() for name, m in finder.modules.items()
            if name.split(".")[0] == PACKAGE and m.__file__}


def _notebook_source(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


def stage_names(backends: list[str]) -> list[str]:
    """Every stage name of the pipeline for these ``backends`` (as in ``dvc.yaml``)."""
    names = ["data"]
    for name, stage in STAGES.items():
        names += [f"{name}@{b}" for b in backends] if stage.per_backend else [name]
    return [*names, "render", "report"]


def stage_files(name: str) -> list[Path]:
    """The package files stage ``name`` depends on (Note: [stage inputs])."""
    if name in MODULE_STAGES:
        found = closure(modules=(MODULE_STAGES[name],))
    else:
        experiment, _, backend = name.partition("@")
        stage = STAGES[experiment]
        notebook = paths.NOTEBOOKS / f"{stage.notebook}.ipynb"
        found = closure(script=_notebook_source(notebook), modules=(RUNNER,))
        for selected in (backend,) if stage.per_backend else stage.backends:
            found |= {p.resolve() for p in (paths.ROOT / PACKAGE / selected).rglob("*.py")}
    return sorted(found)


def _manifest(name: str) -> dict[str, object]:
    files = {p.relative_to(paths.ROOT).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in stage_files(name)}
    return {"stage": name, "files": dict(sorted(files.items()))}


def write_inputs(backends: list[str], folder: Path | None = None) -> list[Path]:
    """Write ``<folder>/<stage>.json`` (default ``reports/inputs``) for every stage."""
    folder = folder if folder is not None else paths.INPUTS
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in stage_names(backends):
        path = folder / f"{name.replace('@', '_')}.json"
        path.write_text(json.dumps(_manifest(name), indent=1) + "\n")
        written.append(path)
    return written
