"""Bring a device run's archive (:mod:`moonwalk_core.experiments.run_profile`) into the report.

    python -m moonwalk_core.experiments.import_archive OUT/moonwalk-gpu-<time>.tar.gz

Checks the archive before anything is written (its ``run.json`` is a run manifest; every
member is a plain file named ``run.json``, ``results/<name>`` or ``logs/<name>``; nothing
larger than :data:`MAX_MEMBER_BYTES`), then replaces ``reports/results/gpu/`` with its
contents. The report (``python -m moonwalk_core.report``, or ``dvc repro report``) then adds
its GPU section and the ``gpu`` column of the claims table. See ``docs/gpu.md``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from .. import paths
from .run_profile import FORMAT

__all__ = ["import_archive", "DEST", "MAX_MEMBER_BYTES"]

DEST: Path = paths.RESULTS / "gpu"
MAX_MEMBER_BYTES = 64 * 2**20
_NAME = re.compile(r"^(run\.json|(results|logs)/[A-Za-z0-9_.@-]+)$")


def _check(tar: tarfile.TarFile) -> dict[str, Any]:
    """The manifest of a well-formed archive; ValueError naming what is wrong otherwise."""
    members = tar.getmembers()
    for member in members:
        if not member.isfile():
            raise ValueError(f"{member.name}: not a plain file (links and folders are refused)")
        if not _NAME.match(member.name) or ".." in member.name:
            raise ValueError(f"{member.name}: unexpected name; an archive holds run.json, "
                             "results/<file> and logs/<file> only")
        if member.size > MAX_MEMBER_BYTES:
            raise ValueError(f"{member.name}: {member.size} bytes, more than "
                             f"{MAX_MEMBER_BYTES}")
    if "run.json" not in {m.name for m in members}:
        raise ValueError("no run.json: not an archive of run_profile")
    handle = tar.extractfile("run.json")
    assert handle is not None
    try:
        manifest = json.loads(handle.read())
    except ValueError as error:
        raise ValueError(f"run.json is not JSON: {error}") from None
    found = manifest.get("format") if isinstance(manifest, dict) else None
    if found != FORMAT:
        raise ValueError(f"run.json: format {found!r}, expected {FORMAT!r}")
    for key in ("profile", "device", "versions", "precision", "started", "stages"):
        if key not in manifest:
            raise ValueError(f"run.json: missing {key!r}")
    return manifest


def import_archive(archive: str | Path, dest: str | Path = DEST) -> dict[str, Any]:
    """Check ``archive`` and replace ``dest`` with its contents; returns its manifest.

    Raises:
        ValueError: when the archive is not a well-formed run archive (``dest`` unchanged).
    """
    archive, dest = Path(archive), Path(dest)
    try:
        tar = tarfile.open(archive, "r:gz")
    except (OSError, tarfile.TarError) as error:
        raise ValueError(f"{archive}: not a readable .tar.gz ({error})") from None
    with tar:
        manifest = _check(tar)
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".gpu-import-", dir=dest.parent))
        try:
            tar.extractall(staging, filter="data")
            (staging / "archive.txt").write_text(archive.name + "\n")
            if dest.exists():
                shutil.rmtree(dest)
            staging.rename(dest)
        finally:
            if staging.exists():
                shutil.rmtree(staging)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m moonwalk_core.experiments.import_archive",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("archive", type=Path)
    parser.add_argument("--dest", type=Path, default=DEST,
                        help=f"where the results go (default {DEST})")
    args = parser.parse_args(argv)
    try:
        manifest = import_archive(args.archive, args.dest)
    except ValueError as error:
        print(f"import_archive: {error}", file=sys.stderr)
        return 2
    print(f"imported {args.archive.name} into {args.dest}: profile {manifest['profile']!r} on "
          f"{manifest['device']}, started {manifest['started']}")
    for stage in manifest["stages"]:
        print(f"  {stage['stem']}: {stage['status']}"
              + (f" ({stage['reason']})" if stage.get("reason") else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
