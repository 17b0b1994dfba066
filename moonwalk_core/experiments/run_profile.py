"""Every experiment of a profile in one short device slot: no DVC, papermill or notebooks.

    python -m moonwalk_core.experiments.run_profile --profile gpu --out OUT --budget-s 480

For a borrowed GPU machine with a fixed image (torch, JAX, NumPy, pandas; no DVC, papermill or
mnist1d), a time limit and a few files brought back. It:

1. checks the device first (``device: cuda`` without ``torch.cuda.is_available()`` stops here);
2. runs each experiment (``STAGE_ORDER``: the paper's headline figures first) in a fresh child
   process (a crash or a hang costs one stage, and JAX's preallocation is off so torch and JAX
   share the GPU), the same ``run`` functions the pipeline's notebooks call;
3. keeps every finished configuration: the sweeps append each one to a scratch table as it
   finishes (``_runner.py``), so a stage stopped at the budget still yields its finished rows
   (``<stem>.partial.csv``);
4. stops at ``--budget-s``: a running stage is stopped (SIGTERM, then SIGKILL), the stages not
   started are marked ``skipped``;
5. writes one archive ``OUT/moonwalk-<profile>-<UTC time>.tar.gz`` (results, per-stage logs,
   ``run.json``: device, versions, precision flags, dates, each stage's status), rewritten
   after every stage so that even a killed runner leaves the stages it finished, and a copy of
   ``run.json`` beside it.

``python -m moonwalk_core.experiments.import_archive ARCHIVE`` brings the archive into
``reports/results/gpu/`` for the report. See ``docs/gpu.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import importlib
import json
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

FORMAT = "moonwalk-gpu-run/1"
STAGE_ORDER: tuple[tuple[str, str], ...] = (
    ("memory_scaling", "torch"), ("max_depth", "torch"), ("runtime", "torch"),
    ("revnet_modes", "torch"), ("conv2d", "torch"), ("exactness", "torch"),
    ("training", "torch"), ("backends", "torch"), ("memory_scaling", "jax"),
    ("exactness", "jax"),
)
"""(experiment, backend) in the order they run: the paper's headline claims first."""
BACKEND_STAGES = {"exactness", "memory_scaling"}  # result stem carries the backend
STOP_GRACE_S = 10.0
MIN_STAGE_S = 5.0  # a stage is not started with less time than this left

__all__ = ["run_profile", "stage_stem", "FORMAT", "STAGE_ORDER"]


def stage_stem(experiment: str, backend: str) -> str:
    """The result file stem of a stage (as ``reports/results`` names it)."""
    if experiment == "backends":
        return "backends"
    return f"{experiment}_{backend}"


def _utc() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _git_commit() -> str | None:
    try:
        found = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                               timeout=10, cwd=Path(__file__).resolve().parents[2])
    except (OSError, subprocess.SubprocessError):
        return None
    return found.stdout.strip() or None if found.returncode == 0 else None


def _salvage(stem: str, sweeps: Path, results: Path) -> int:
    """Rows of an unfinished sweep's scratch tables (checked lines only) into
    ``<stem>.partial.csv``; returns how many configurations they hold."""
    import pandas as pd

    from ._runner import _parse

    rows, configs = [], 0
    for table in sorted(sweeps.glob(f"{stem}-*.jsonl")):
        for line in table.read_text(errors="replace").splitlines(keepends=True):
            record = _parse(line)
            if record is not None and record.get("kind") == "record":
                configs += 1
                rows += record["rows"]
    if rows:
        pd.DataFrame(rows).to_csv(results / f"{stem}.partial.csv", index=False)
    return configs


def _pack(work: Path, out: Path, archive: Path) -> None:
    """Write the archive (temporary name, then rename) and the copy of ``run.json``."""
    tmp = archive.with_name(f".{archive.name}.tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        tar.add(work / "run.json", arcname="run.json")
        for folder in ("results", "logs"):
            for path in sorted((work / folder).glob("*")):
                if path.is_file():
                    tar.add(path, arcname=f"{folder}/{path.name}")
    os.replace(tmp, archive)
    (out / "run.json").write_text((work / "run.json").read_text())


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the child's process group, SIGKILL after the grace period."""
    for sig, wait in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _run_stage(experiment: str, backend: str, args: argparse.Namespace, work: Path,
               deadline: float) -> dict[str, Any]:
    """Run one stage in a child process until it ends or the deadline; its manifest entry."""
    stem = stage_stem(experiment, backend)
    log = work / "logs" / f"{stem}.log"
    env = {**os.environ, "MOONWALK_SWEEPS": str(work / "sweeps"),
           "XLA_PYTHON_CLIENT_PREALLOCATE": "false", "TQDM_MININTERVAL": "5",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]),
                                                       os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "moonwalk_core.experiments.run_profile", "--child",
               experiment, backend, "--profile", args.profile, "--device", args.device,
               "--work", str(work)]
    if args.params:
        command += ["--params", str(args.params)]
    start = time.monotonic()
    with open(log, "wb") as f:
        proc = subprocess.Popen(command, stdout=f, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        try:
            code = proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            stopped = False
        except subprocess.TimeoutExpired:
            _stop(proc)
            code, stopped = proc.returncode, True
    seconds = round(time.monotonic() - start, 1)
    entry: dict[str, Any] = {"experiment": experiment, "backend": backend, "stem": stem,
                             "seconds": seconds}
    csv = work / "results" / f"{stem}.csv"
    if code == 0 and not stopped and csv.exists():
        import pandas as pd

        table = pd.read_csv(csv)
        ok = int((table["status"] == "ok").sum()) if "status" in table else len(table)
        return {**entry, "status": "ok", "rows": len(table), "rows_ok": ok, "reason": ""}
    configs = _salvage(stem, work / "sweeps", work / "results")
    tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
    if stopped:
        reason = (f"stopped at the budget ({args.budget_s:g} s) after {seconds:g} s; "
                  f"{configs} configuration(s) finished, kept in {stem}.partial.csv")
        return {**entry, "status": "partial" if configs else "stopped", "rows": None,
                "configs_finished": configs, "reason": reason}
    reason = f"exit code {code}: " + " / ".join(line.strip() for line in tail)[-400:]
    return {**entry, "status": "failed", "configs_finished": configs, "reason": reason}


def _data_problem(experiment: str) -> str | None:
    """Why the training stage cannot run here (its MNIST-1D file is missing and cannot be
    made), or None."""
    if experiment != "training":
        return None
    from .. import data

    if data.MNIST1D_FILE.exists():
        return None
    try:
        importlib.import_module("mnist1d")
    except ImportError:
        return (f"skipped: {data.MNIST1D_FILE.name} is missing and the mnist1d package is not "
                "installed; make it where mnist1d is (`python -m moonwalk_core.data`, with this "
                "profile selected) and bring data/mnist1d.npz along")
    return None


def _environment(device: str) -> dict[str, Any]:
    from ..measure.adapter import use_device
    from ..measure.device import device_record, use_ieee_float32
    from ._common import _source_hash, _versions

    use_device(device)
    record: dict[str, Any] = {"torch": device_record("torch")}
    try:
        importlib.import_module("jax")
        record["jax"] = device_record("jax")
    except (ImportError, RuntimeError) as error:
        record["jax"] = {"device": f"unavailable ({type(error).__name__}: {error})"[:200]}
    return {"device": record["torch"]["device"], "devices": record,
            "precision": use_ieee_float32(), "versions": _versions(), "sources": _source_hash(),
            "commit": _git_commit()}


def run_profile(args: argparse.Namespace) -> dict[str, Any]:
    """Run every stage of ``args.profile`` under ``args.budget_s``; the manifest written."""
    from .. import config

    started, clock = _utc(), time.monotonic()
    deadline = clock + args.budget_s
    profile = config.load_profile(args.profile, args.params)
    setting = args.device or profile.device
    device = config.resolve_device(setting)  # "cuda" without CUDA: a clear ValueError
    args.device = device
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="moonwalk-run-"))
    for folder in ("results", "logs", "sweeps"):
        (work / folder).mkdir(parents=True, exist_ok=True)
    archive = out / f"moonwalk-{profile.name}-{started.replace(':', '')}.tar.gz"
    only = set(args.only.split(",")) if args.only else None
    backends = args.backends.split(",")
    manifest: dict[str, Any] = {
        "format": FORMAT, "profile": profile.name, "device_setting": setting,
        "budget_s": args.budget_s, "started": started, "finished": None,
        "settings": json.loads(json.dumps(dataclasses.asdict(profile), default=str)),
        **_environment(device), "stages": []}
    print(f"moonwalk run_profile: profile {profile.name!r} on {manifest['device']} "
          f"({device}); budget {args.budget_s:g} s; work folder {work}", flush=True)
    stages = [(e, b) for e, b in STAGE_ORDER if b in backends or e == "backends"]
    stages = [(e, b) for e, b in stages
              if only is None or e in only or stage_stem(e, b) in only
              or f"{e}@{b}" in only]
    for number, (experiment, backend) in enumerate(stages, start=1):
        left = deadline - time.monotonic()
        problem = _data_problem(experiment)
        if problem:
            entry = {"experiment": experiment, "backend": backend,
                     "stem": stage_stem(experiment, backend), "status": "skipped",
                     "reason": problem}
        elif left < max(args.min_stage_s, 0.1):
            entry = {"experiment": experiment, "backend": backend,
                     "stem": stage_stem(experiment, backend), "status": "skipped",
                     "reason": f"skipped: the budget of {args.budget_s:g} s was spent"}
        else:
            entry = _run_stage(experiment, backend, args, work, deadline)
        manifest["stages"].append(entry)
        manifest["elapsed_s"] = round(time.monotonic() - clock, 1)
        (work / "run.json").write_text(json.dumps(manifest, indent=1) + "\n")
        _pack(work, out, archive)
        print(f"[{number}/{len(stages)}] {entry['stem']}: {entry['status']}"
              + (f" in {entry['seconds']:g} s" if "seconds" in entry else "")
              + (f" ({entry['reason']})" if entry.get("reason") else "")
              + f"; {max(deadline - time.monotonic(), 0):.0f} s of the budget left", flush=True)
    manifest["finished"] = _utc()
    manifest["elapsed_s"] = round(time.monotonic() - clock, 1)
    (work / "run.json").write_text(json.dumps(manifest, indent=1) + "\n")
    _pack(work, out, archive)
    print(f"archive: {archive}", flush=True)
    return manifest


def _child(experiment: str, backend: str, args: argparse.Namespace) -> int:
    """One stage in this (fresh) process: the experiment's ``run`` into the work folder."""
    from .. import config

    profile = config.load_profile(args.profile, args.params)
    profile = dataclasses.replace(profile, device=args.device)
    if experiment == "training":
        from .. import data

        if not data.MNIST1D_FILE.exists():
            data.generate_mnist1d(profile.training.num_samples, seed=42)
    module = importlib.import_module(f"moonwalk_core.experiments.{experiment}")
    out = Path(args.work) / "results" / f"{stage_stem(experiment, backend)}.csv"
    module.run(profile, backend, out=out)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m moonwalk_core.experiments.run_profile",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="gpu", help="a profile of params.yaml")
    parser.add_argument("--out", type=Path, help="where the archive and run.json go")
    parser.add_argument("--budget-s", type=float, default=480.0,
                        help="stop after this many seconds (default 480)")
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], default=None,
                        help="override the profile's device")
    parser.add_argument("--only", default="",
                        help="comma-separated stages, e.g. max_depth,memory_scaling@torch")
    parser.add_argument("--backends", default="torch,jax")
    parser.add_argument("--min-stage-s", type=float, default=MIN_STAGE_S,
                        help="start no stage with less of the budget left (default %(default)s)")
    parser.add_argument("--work", type=Path, default=None,
                        help="working folder (default: a new temporary folder)")
    parser.add_argument("--params", type=Path, default=None, help="params.yaml to read")
    parser.add_argument("--child", nargs=2, metavar=("EXPERIMENT", "BACKEND"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    # before JAX starts a GPU client here (it would take most of the device's memory) or in a
    # child: torch and JAX share the device
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if args.child:
        return _child(*args.child, args)
    if args.out is None:
        parser.error("--out is required")
    try:
        manifest = run_profile(args)
    except ValueError as error:
        print(f"moonwalk run_profile: {error}", file=sys.stderr)
        return 2
    failed = [s["stem"] for s in manifest["stages"] if s["status"] == "failed"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
