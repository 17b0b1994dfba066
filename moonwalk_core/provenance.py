"""Which run produced the report and the notebook pages: run identifier, code state, DVC record.

Three facts, each from where it is honest to take it:

- **Run identifier**: a content hash of the run's outputs that the pages and the report are built
  from (``reports/results/*.csv|json`` and ``reports/executed/*.ipynb``). The render stage stamps
  it into every page, the report stage into the report; equal identifiers mean the page shows
  the very notebook whose results the report quotes.
- **Code state**: the git commit and whether the tree is clean, read when the report is written.
  The pipeline's own outputs (``reports/``, ``dvc.lock``) do not count as changes.
- **Stage record**: ``dvc.lock`` holds, for each stage, the hash of every dependency and output
  *as it was when that stage ran*. Recomputing those hashes now (with DVC's own hashing) tells
  whether each stage measured exactly the code, parameters and outputs in this tree, so a report
  built from stages of different code says so instead of taking the current commit's name.

See ``docs/artifacts.md``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import paths

__all__ = ["CodeState", "StageCheck", "run_id", "run_files", "code_state", "check_stages",
           "notebook_times", "utc", "utc_now", "PIPELINE_OUTPUTS", "CONSUMERS"]

PIPELINE_OUTPUTS: tuple[str, ...] = ("reports/", "dvc.lock")
"""Paths a pipeline run rewrites: changes there do not make the code tree dirty."""

CONSUMERS: tuple[str, ...] = ("render", "report")
"""Stages that only read the run (they are not checked against dvc.lock while they run)."""


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def run_files(results: Path = paths.RESULTS, executed: Path = paths.EXECUTED
              ) -> list[tuple[str, Path]]:
    """The outputs that identify a run, by label: result tables, summaries, environments
    (``results/<name>``) and executed notebooks (``executed/<name>``)."""
    found = [(f"results/{f.name}", f) for f in [*results.glob("*.csv"), *results.glob("*.json")]]
    found += [(f"executed/{f.name}", f) for f in executed.glob("*.ipynb")]
    return sorted((label, f) for label, f in found if f.is_file())


def run_id(results: Path = paths.RESULTS, executed: Path = paths.EXECUTED) -> str:
    """12 hex digits naming a run by the content of :func:`run_files` (labels and md5s).

    Raises:
        FileNotFoundError: if there is no result file or executed notebook at all.
    """
    files = run_files(results, executed)
    if not files:
        raise FileNotFoundError(f"no results in {results} nor executed notebooks in {executed}:"
                                " run dvc repro first")
    h = hashlib.sha256()
    for label, f in files:
        h.update(f"{label} {_md5(f)}\n".encode())
    return h.hexdigest()[:12]


@dataclass(frozen=True)
class CodeState:
    """The git state of the checkout: ``commit`` is None outside git or before a first commit."""

    commit: str | None
    changed: tuple[str, ...] = ()

    @property
    def dirty(self) -> bool:
        """Uncommitted changes outside the pipeline's own outputs."""
        return bool(self.changed)

    def as_dict(self) -> dict[str, Any]:
        return {"commit": self.commit, "dirty": self.dirty, "changed": list(self.changed)}


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                              timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def code_state(root: Path = paths.ROOT) -> CodeState:
    """HEAD's commit and the paths changed since it (tracked or untracked, not ignored), less
    the pipeline's outputs and ``.gitignore`` files."""
    head = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain=v1", "--untracked-files=all", "--", ".")
    changed = []
    for line in (status or "").splitlines():
        path = line[3:].split(" -> ")[-1].strip('"')
        if Path(path).name == ".gitignore":
            continue  # DVC adds its outputs to .gitignore files as it runs
        if not any(path == p or path.startswith(p) for p in PIPELINE_OUTPUTS):
            changed.append(path)
    return CodeState(head.strip() if head else None, tuple(sorted(changed)))


@dataclass(frozen=True)
class StageCheck:
    """One stage of ``dvc.lock`` against the tree: what no longer matches its record."""

    stage: str
    deps: tuple[str, ...] = ()
    params: tuple[str, ...] = ()
    outs: tuple[str, ...] = ()
    missing: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not (self.deps or self.params or self.outs or self.missing)

    def describe(self) -> str:
        parts = [f"{label}: " + ", ".join(f"`{item}`" for item in items) for label, items in
                 (("code changed since it ran", self.deps), ("parameters changed", self.params),
                  ("outputs differ from the ones it wrote", self.outs),
                  ("missing", self.missing)) if items]
        return f"`{self.stage}`: " + "; ".join(parts)


def _dvc_hash(root: Path, path: str) -> str | None:
    """The md5 DVC records for a file or a directory (``<md5>.dir``); None if absent."""
    from dvc_data.hashfile.build import build
    from dvc_data.hashfile.db import HashFileDB
    from dvc_objects.fs.local import LocalFileSystem

    target = root / path
    if not target.exists():
        return None
    if target.is_file():
        return _md5(target)
    fs = LocalFileSystem()
    odb = HashFileDB(fs, tempfile.gettempdir())  # dry run: nothing is written there
    _, _, obj = build(odb, str(target), fs, "md5", dry_run=True, ignore=_dvcignore(root, fs))
    return obj.hash_info.value


def _dvcignore(root: Path, fs: Any) -> Any:
    from dvc.ignore import DvcIgnoreFilter

    return DvcIgnoreFilter(fs, str(root))


# A YAML 1.2 float that PyYAML (YAML 1.1) reads as a string: DVC writes ``1e-10`` into dvc.lock
# for the ``1.0e-10`` of params.yaml, and the two must compare equal.
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)[eE][-+]?[0-9]+")


def _flatten(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(f"{prefix}.{k}" if prefix else str(k), v))
        return out
    if isinstance(value, list):
        return {prefix: [_flatten("", v) for v in value]}
    if isinstance(value, str) and _FLOAT.fullmatch(value):
        return {prefix: float(value)}
    return {prefix: value}


def _param(params: Mapping[str, Any], key: str) -> Any:
    value: Any = params
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def check_stages(root: Path = paths.ROOT, skip: Iterable[str] = CONSUMERS) -> list[StageCheck]:
    """Every stage of ``dvc.lock`` (but ``skip``), its recorded hashes recomputed now.

    Returns an empty list when there is no ``dvc.lock`` (nothing was recorded).
    """
    lock_path = root / "dvc.lock"
    if not lock_path.exists():
        return []
    lock = yaml.safe_load(lock_path.read_text()) or {}
    params_files: dict[str, Any] = {}
    hashes: dict[str, str | None] = {}  # stages share most dependencies: hash each path once
    checks = []
    for name, stage in (lock.get("stages") or {}).items():
        if name in set(skip):
            continue
        changed: dict[str, list[str]] = {"deps": [], "outs": [], "missing": [], "params": []}
        for kind in ("deps", "outs"):
            for entry in stage.get(kind, []):
                if entry["path"] not in hashes:
                    hashes[entry["path"]] = _dvc_hash(root, entry["path"])
                now = hashes[entry["path"]]
                if now is None:
                    changed["missing"].append(entry["path"])
                elif now != entry.get("md5"):
                    changed[kind].append(entry["path"])
        for file, recorded in (stage.get("params") or {}).items():
            if file not in params_files:
                p = root / file
                params_files[file] = yaml.safe_load(p.read_text()) if p.exists() else {}
            for key, value in recorded.items():
                if _flatten("", _param(params_files[file], key)) != _flatten("", value):
                    changed["params"].append(key)
        checks.append(StageCheck(name, *(tuple(changed[k])
                                         for k in ("deps", "params", "outs", "missing"))))
    return checks


def notebook_times(executed: Path) -> tuple[str | None, str | None]:
    """Earliest start and latest end of the executed notebooks (papermill's own record, UTC)."""
    starts, ends = [], []
    for path in executed.glob("*.ipynb"):
        meta = json.loads(path.read_text()).get("metadata", {}).get("papermill", {})
        if meta.get("start_time"):
            starts.append(utc(meta["start_time"]))
        if meta.get("end_time"):
            ends.append(utc(meta["end_time"]))
    return (min(starts) if starts else None, max(ends) if ends else None)


def utc(stamp: str) -> str:
    """An ISO time stamp (naive: UTC) as the report writes times: ``YYYY-MM-DD HH:MM UTC``."""
    when = dt.datetime.fromisoformat(stamp)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def utc_now() -> str:
    """The current time as the report writes it."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
