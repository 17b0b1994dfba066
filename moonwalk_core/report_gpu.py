"""The report's GPU part: a device run imported under ``reports/results/gpu/``.

:mod:`moonwalk_core.experiments.import_archive` puts a run of
:mod:`moonwalk_core.experiments.run_profile` there (``run.json``, ``results/``). The report
then gains a ``gpu`` column in the claims table (our figure from that run and its verdict by
the same rule) and a GPU section: what ran where (device, versions, float32 precision flags,
dates), each stage's status (finished, stopped at the budget, skipped, failed) and the claim
quantities. Numbers come from those files only; :func:`files` lists them for the report's
unsourced-number check. The report's number format and claim evaluation are passed in (this
module does not import the report). See ``docs/gpu.md``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["GpuRun", "load", "claims_cells", "label", "section", "files", "FOLDER"]

Fmt = Callable[[Any], str]

FOLDER = "gpu"
"""Subfolder of ``reports/results`` that holds an imported device run."""


@dataclass(frozen=True)
class GpuRun:
    """An imported device run: its manifest, claim summaries and environments."""

    folder: Path
    manifest: dict[str, Any]
    summaries: dict[str, dict[str, Any]]
    envs: dict[str, dict[str, Any]]
    archive: str


def load(results: Path) -> GpuRun | None:
    """The run imported under ``results/gpu`` (None when there is none)."""
    folder = results / FOLDER
    if not (folder / "run.json").exists():
        return None
    manifest = json.loads((folder / "run.json").read_text())
    found = folder / "results"
    summaries = {p.name.removesuffix(".summary.json"): json.loads(p.read_text())
                 for p in sorted(found.glob("*.summary.json"))}
    envs = {p.name.removesuffix(".env.json"): json.loads(p.read_text())
            for p in sorted(found.glob("*.env.json"))}
    archive = folder / "archive.txt"
    return GpuRun(folder, manifest, summaries, envs,
                  archive.read_text().strip() if archive.exists() else "unknown archive")


def _stage_status(run: GpuRun) -> dict[str, dict[str, Any]]:
    return {s["stem"]: s for s in run.manifest.get("stages", [])}


def claims_cells(run: GpuRun, claims: list[dict[str, Any]], evaluated: list[dict[str, Any]],
                 fmt: Fmt) -> dict[str, str]:
    """Claim id -> the ``gpu`` cell: our figure on the device and its verdict, or why the
    device run has none (stage stopped at the budget, skipped, failed, not in the run).

    ``evaluated``: the report's claim rows computed from ``run.summaries``."""
    on_gpu = {row["id"]: row for row in evaluated}
    stages = _stage_status(run)
    cells = {}
    for claim in claims:
        row = on_gpu[claim["id"]]
        stage = stages.get(claim["result"])
        if row["verdict"] != "not run":
            cells[claim["id"]] = (f"{fmt(row['ours'])} ({row['verdict']})"
                                  if row["ours"] is not None else row["verdict"])
        elif stage is None:
            cells[claim["id"]] = "not in the device run"
        else:
            cells[claim["id"]] = {"partial": "stopped at the budget", "stopped":
                                  "stopped at the budget", "skipped": "skipped",
                                  "failed": "failed"}.get(stage["status"], stage["status"])
    return cells


def _flags(precision: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in precision.items())


def label(run: GpuRun) -> str:
    """One line naming what the ``gpu`` column was measured on."""
    m = run.manifest
    versions = m.get("versions", {})
    cuda = m.get("devices", {}).get("torch", {}).get("cuda")
    parts = [f"`{m['device']}`", f"torch `{versions.get('torch')}`",
             f"JAX `{versions.get('jax')}`"]
    if cuda:
        parts.append(f"CUDA `{cuda}`")
    return (f"The **gpu** column: profile `{m['profile']}` measured on {', '.join(parts)}; "
            f"float32 precision `{_flags(m.get('precision', {}))}`; started "
            f"`{m['started']}` (archive `{run.archive}`, imported into "
            f"`reports/results/gpu/`; section *GPU run* below).")


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def section(run: GpuRun, fmt: Fmt) -> list[str]:
    """The GPU section's markdown lines."""
    m = run.manifest
    devices = m.get("devices", {})
    out = ["## GPU run", "",
           f"Measured by `python -m moonwalk_core.experiments.run_profile --profile "
           f"{m['profile']}` (no DVC: a short device slot) and imported with "
           "`python -m moonwalk_core.experiments.import_archive`.", "",
           _table(["", "value"], [
               ["profile", f"`{m['profile']}` (device setting `{m.get('device_setting')}`)"],
               ["device (torch)", f"`{devices.get('torch', {}).get('device', m['device'])}`"],
               ["device (JAX)", f"`{devices.get('jax', {}).get('device')}`"],
               ["versions", "`" + ", ".join(f"{k} {v}" for k, v in
                                           m.get("versions", {}).items()) + "`"],
               ["float32 precision", f"`{_flags(m.get('precision', {}))}`"],
               ["code", f"commit `{m.get('commit')}`, sources `{m.get('sources')}`"],
               ["started / finished", f"`{m['started']}` / `{m.get('finished')}`"],
               ["budget", f"{fmt(m.get('budget_s'))} s, used {fmt(m.get('elapsed_s'))} s"],
               ["archive", f"`{run.archive}`"]]), "",
           "### Stages", "",
           _table(["stage", "status", "seconds", "rows", "note"],
                  [[f"`{s['stem']}`", s["status"], fmt(s.get("seconds")), fmt(s.get("rows")),
                    s.get("reason", "")] for s in m.get("stages", [])]), ""]
    for stem, summary in run.summaries.items():
        items = [[k, fmt(v) if not isinstance(v, str) else v] for k, v in summary.items()
                 if k != "unavailable"]
        out += [f"`gpu/{stem}`:", "", _table(["quantity", "value"], items), ""]
        out += [f"- unavailable: {reason}" for reason in summary.get("unavailable", [])]
        out += [""]
    return out


def files(results: Path, suffix: str) -> list[Path]:
    """The imported run's files ending in ``suffix`` ("json", "csv"), for the report's
    unsourced-number check."""
    return sorted((results / FOLDER).rglob(f"*.{suffix}"))
