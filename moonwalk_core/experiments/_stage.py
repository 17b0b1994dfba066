"""Run one pipeline stage: validate, then execute its notebook with papermill under supervision.

``python -m moonwalk_core.experiments run exactness@torch`` (or, under DVC, with the name taken
from ``$DVC_STAGE``) checks ``params.yaml`` and the machine (:func:`config.validate`), then
runs ``notebooks/01_exactness.ipynb`` with papermill, passing the profile and backend as
papermill parameters: no parameter text ever reaches a shell.

# Note: [supervised papermill]
The notebook's kernel must import the package of the checkout being run, and must not outlive
the stage. The runner puts this checkout first on the kernel's ``PYTHONPATH`` and sets
``MOONWALK_CHECKOUT``, which :mod:`moonwalk_core.paths` checks on import. It starts papermill
in a session of its own and stops papermill, the kernel and anything they started when it gets
SIGTERM, SIGINT or SIGHUP, or when the DVC process that started it disappears (DVC killed);
papermill itself dies with the runner (``PR_SET_PDEATHSIG``), and the kernel exits when
papermill does. The result lock of each sweep is the last line of defence against a second
writer. See ``docs/pipeline.md``.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .. import config, paths

__all__ = ["Stage", "STAGES", "parse_stage", "run_stage"]


@dataclass(frozen=True)
class Stage:
    """One experiment stage of ``dvc.yaml``: its notebook, and whether it runs per backend."""

    notebook: str
    per_backend: bool = False
    backends: tuple[str, ...] = ("torch",)
    """The backends the stage imports (for a per-backend stage: the matrix item's)."""

    def executed(self, backend: str) -> str:
        """Name of the executed copy in ``reports/executed``."""
        return f"{self.notebook}_{backend}.ipynb" if self.per_backend else f"{self.notebook}.ipynb"


STAGES: dict[str, Stage] = {
    "exactness": Stage("01_exactness", per_backend=True),
    "memory_scaling": Stage("02_memory_scaling", per_backend=True),
    "max_depth": Stage("03_max_depth"),
    "conv2d": Stage("04_conv2d"),
    "runtime": Stage("05_runtime"),
    "revnet_modes": Stage("06_revnet_modes"),
    "training": Stage("07_training"),
    "backends": Stage("08_backends", backends=("torch", "jax")),
}
"""Every notebook stage, by name (per-backend stages are named ``<name>@<backend>``)."""

CHECKOUT_ENV = "MOONWALK_CHECKOUT"


def parse_stage(name: str, backends: list[str]) -> tuple[str, Stage, str]:
    """``(experiment, stage, backend)`` of a stage name such as ``exactness@torch``.

    DVC's address of a stage run from a subfolder (``../dvc.yaml:exactness@torch``) works too.

    Raises:
        ValueError: for an unknown stage, or a backend not listed in ``params.yaml``.
    """
    experiment, _, backend = name.rpartition(":")[2].partition("@")
    if experiment not in STAGES:
        raise ValueError(f"stage {name!r} is not a notebook stage; known: {sorted(STAGES)}")
    stage = STAGES[experiment]
    if stage.per_backend:
        if backend not in backends:
            raise ValueError(f"stage {name!r}: backend {backend!r} is not listed in params.yaml "
                             f"`backends` ({backends}); name it as {experiment}@<backend>")
    elif backend:
        raise ValueError(f"stage {name!r}: {experiment} does not run per backend; "
                         f"name it {experiment!r}")
    return experiment, stage, backend or "torch"


def _stat(pid: int) -> tuple[str, int, int] | None:
    """``(state, parent pid, start time)`` of a process from /proc, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[1]), int(fields[19])


def _dvc_process() -> tuple[int, int | None]:
    """The process this stage belongs to: the nearest ancestor without ``DVC_STAGE`` in its
    environment (DVC itself, when DVC started us through a shell), else our parent."""
    pid = os.getppid()
    if "DVC_STAGE" in os.environ:
        for _ in range(8):
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes()
            except OSError:
                break
            if b"DVC_STAGE=" not in environ:
                break
            stat = _stat(pid)
            if stat is None or stat[1] <= 1:
                break
            pid = stat[1]
    stat = _stat(pid)
    return pid, None if stat is None else stat[2]


def _alive(pid: int, started: int | None) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X") and (started is None
                                                                or stat[2] == started)


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                children.setdefault(stat[1], []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _stop_tree(root: int, grace_s: float = 5.0) -> None:
    """SIGTERM ``root`` and everything it started (collected first: orphans get new parents),
    then SIGKILL whatever is still there after ``grace_s``."""
    pids = [root, *_descendants(root)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(_alive(p, None) for p in pids):
            time.sleep(0.1)
        if not any(_alive(p, None) for p in pids):
            return


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _supervise(command: list[str], env: dict[str, str]) -> int:
    """Run ``command`` and its children as Note: [supervised papermill] says; its exit code."""
    watched = _dvc_process()
    parent = os.getppid()
    child = subprocess.Popen(command, env=env, start_new_session=True,
                             preexec_fn=_die_with_parent)  # safe: no other threads yet
    stopped: list[str] = []
    stoppers: list[threading.Thread] = []
    lock = threading.Lock()

    def stop(why: str) -> None:
        with lock:
            if stopped:
                return
            stopped.append(why)
        _stop_tree(child.pid)

    def on_signal(signum: int, frame: object) -> None:
        del frame
        stopper = threading.Thread(target=stop, args=(signal.Signals(signum).name,),
                                   daemon=True)
        stoppers.append(stopper)
        stopper.start()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)

    def watch() -> None:
        while child.poll() is None:
            if os.getppid() != parent or not _alive(*watched):
                stop(f"the process that started this stage (pid {watched[0]}) exited")
                return
            time.sleep(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    code = child.wait()
    for thread in [*stoppers, watcher]:  # let a stop finish: the kernel may still be exiting
        thread.join(timeout=15)
    if stopped:
        print(f"moonwalk: stage stopped ({stopped[0]}); papermill and its kernel were stopped",
              file=sys.stderr)
        return 128 - code if code < 0 else (code or 1)
    return code


def run_stage(name: str, *, log_level: str = "WARNING") -> int:
    """Validate, then run stage ``name``'s notebook under supervision; its exit code.

    Raises:
        ValueError: for a bad stage name or parameter (before anything runs).
    """
    profile = config.validate()
    params = config.load_params()
    experiment, stage, backend = parse_stage(name, params["backends"])
    source = paths.NOTEBOOKS / f"{stage.notebook}.ipynb"
    executed = paths.EXECUTED / stage.executed(backend)
    executed.parent.mkdir(parents=True, exist_ok=True)
    paths.RESULTS.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(paths.ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env[CHECKOUT_ENV] = str(paths.ROOT)
    command = [sys.executable, "-m", "papermill", "--log-level", log_level,
               "--cwd", str(paths.NOTEBOOKS), "-p", "profile", profile.name,
               "-p", "backend", backend, str(source), str(executed)]
    print(f"moonwalk: {name}: {experiment} on {backend}, profile {profile.name!r}",
          file=sys.stderr)
    return _supervise(command, env)
