"""Every path the pipeline reads or writes, from one place (showyourwork's ``paths.py``).

``MOONWALK_REPORTS`` and ``MOONWALK_SWEEPS`` (environment) move the reports folder and the
sweep scratch folder elsewhere, e.g. for tests that execute the notebooks. Paths follow the
project copy that holds the working directory (see :func:`_root`). A pipeline stage also sets
``MOONWALK_CHECKOUT`` to the checkout it runs, and importing the package's code from any other
checkout then fails (see ``docs/pipeline.md``).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ROOT", "PARAMS", "DATA", "REPORTS", "RESULTS", "FIGURES", "EXECUTED", "SWEEPS",
           "NOTEBOOKS", "INPUTS", "result_file"]


def _root() -> Path:
    """The nearest folder at or above the working directory holding this project's
    ``dvc.yaml``, ``params.yaml`` and ``moonwalk_core/``; else the package's parent folder.

    The working directory decides because a queued DVC experiment (``dvc exp run --queue``)
    runs its stages in its own copy of the repository (under ``.dvc/tmp/exps``) while Python
    imports the installed package: its parameters and results must be the copy's.
    """
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if all((folder / name).exists() for name in ("dvc.yaml", "params.yaml", "moonwalk_core")):
            return folder
    return Path(__file__).resolve().parent.parent


ROOT: Path = _root()
"""The repository root (the folder holding ``params.yaml`` and ``dvc.yaml``)."""

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent
_CHECKOUT = os.environ.get("MOONWALK_CHECKOUT")
if _CHECKOUT and Path(_CHECKOUT).resolve() != _PACKAGE_ROOT:
    raise ImportError(f"moonwalk_core was imported from {_PACKAGE_ROOT}, but this pipeline stage "
                      f"runs the checkout {_CHECKOUT}: another checkout's code would compute its "
                      f"results. Put {_CHECKOUT} first on PYTHONPATH (the stage runner, "
                      "`python -m moonwalk_core.experiments run`, does).")
PARAMS: Path = ROOT / "params.yaml"
DATA: Path = ROOT / "data"
NOTEBOOKS: Path = ROOT / "notebooks"
REPORTS: Path = Path(os.environ.get("MOONWALK_REPORTS", ROOT / "reports"))
RESULTS: Path = REPORTS / "results"
FIGURES: Path = REPORTS / "figures"
EXECUTED: Path = REPORTS / "executed"
SWEEPS: Path = Path(os.environ.get("MOONWALK_SWEEPS", ROOT / ".sweeps"))
"""Scratch tables of unfinished sweeps, kept across interrupted runs (ignored by git and DVC)."""
INPUTS: Path = REPORTS / "inputs"
"""What each stage's results depend on, written by the pipeline's ``check`` stage."""


def result_file(experiment: str, backend: str | None = None, suffix: str = "csv") -> Path:
    """``reports/results/<experiment>[_<backend>].<suffix>``."""
    name = experiment if backend is None else f"{experiment}_{backend}"
    return RESULTS / f"{name}.{suffix}"
