"""Stages run through the supervised runner: no parameter text in a shell, the checkout's own
package in the kernel, and no papermill or kernel left behind when DVC is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from moonwalk_core import paths
from moonwalk_core.experiments._stage import STAGES, parse_stage

from .repo_copy import copy_repo, dvc, environment, probe_notebook

DVC_STAGES = yaml.safe_load((paths.ROOT / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("name", sorted(DVC_STAGES))
def test_stage_commands_paste_no_parameter_text_into_the_shell(name: str) -> None:
    """A profile named `tiny; touch x #` used to run `touch x` before any validator."""
    command = DVC_STAGES[name]["cmd"]
    assert "${" not in command, f"stage {name}: {command!r} interpolates parameters"


def test_every_notebook_stage_runs_through_the_runner() -> None:
    runner = "python -m moonwalk_core.experiments run"
    assert {n for n, s in DVC_STAGES.items() if s["cmd"] == runner} == set(STAGES)


@pytest.mark.parametrize(("name", "message"), [
    ("exactness@tensorflow", "backend 'tensorflow' is not listed"),
    ("exactness", "backend '' is not listed"),
    ("runtime@torch", "does not run per backend"),
    ("exactness@torch; touch x #", "backend 'torch; touch x #' is not listed"),
    ("nonsense", "not a notebook stage"),
])
def test_stage_names_are_checked(name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_stage(name, ["torch", "jax"])


def test_stage_names_as_dvc_writes_them() -> None:
    assert parse_stage("exactness@jax", ["torch", "jax"])[::2] == ("exactness", "jax")
    assert parse_stage("../dvc.yaml:runtime", ["torch"])[::2] == ("runtime", "torch")
    assert parse_stage("backends", ["torch"])[1] is STAGES["backends"]


def test_the_runner_refuses_a_bad_stage_before_anything_runs() -> None:
    done = subprocess.run([sys.executable, "-m", "moonwalk_core.experiments", "run", "nonsense"],
                          cwd=paths.ROOT, capture_output=True, text=True, timeout=120,
                          env=environment(PYTHONPATH=str(paths.ROOT)))
    assert done.returncode == 2 and "not a notebook stage" in done.stderr


def _decoy(tmp_path: Path) -> Path:
    """A `moonwalk_core` elsewhere on the path, as an editable install of another checkout."""
    decoy = tmp_path / "decoy"
    (decoy / "moonwalk_core").mkdir(parents=True)
    (decoy / "moonwalk_core" / "__init__.py").write_text("")
    return decoy


@pytest.mark.slow
def test_the_kernel_imports_the_checkout_being_run(tmp_path: Path) -> None:
    """`dvc exp run --temp` and a second clone sharing one environment must each run their own
    package, not the one the environment points at."""
    root = copy_repo(tmp_path)
    probe_notebook(root)
    probe = tmp_path / "probe.json"
    env = environment(PYTHONPATH=str(_decoy(tmp_path)), MOONWALK_TEST_PROBE=str(probe))
    done = dvc(root, "repro", "backends", env=env)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    module = Path(json.loads(probe.read_text())["module"])
    assert module == root / "moonwalk_core" / "__init__.py"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@contextmanager
def _sleeping_stage(tmp_path: Path, command: list[str]) -> Iterator[tuple[subprocess.Popen,
                                                                         int, int]]:
    """Start ``command`` in a copy whose E8 notebook sleeps; yield it with the kernel's and
    papermill's pids once the kernel runs; kill whatever is left afterwards."""
    root = copy_repo(tmp_path)
    probe_notebook(root)
    probe = tmp_path / "probe.json"
    env = environment(MOONWALK_TEST_PROBE=str(probe), MOONWALK_TEST_SLEEP="300")
    process = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    kernel = papermill = 0
    try:
        deadline = time.monotonic() + 300
        while not probe.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert probe.exists(), "the probe notebook never started"
        time.sleep(0.5)
        started = json.loads(probe.read_text())
        kernel, papermill = started["pid"], started["ppid"]
        assert _alive(kernel) and _alive(papermill)
        yield process, kernel, papermill
    finally:
        for pid in (kernel, papermill):
            if pid and _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if process.poll() is None:
            process.kill()
        process.communicate()


@pytest.mark.slow
def test_killing_dvc_stops_papermill_and_its_kernel(tmp_path: Path) -> None:
    """Killing only the dvc process used to leave papermill and the kernel writing results
    beside the next run."""
    command = [sys.executable, "-m", "dvc", "repro", "backends"]
    with _sleeping_stage(tmp_path, command) as (dvc_process, kernel, papermill):
        dvc_process.send_signal(signal.SIGKILL)
        dvc_process.wait()
        deadline = time.monotonic() + 20
        while (_alive(kernel) or _alive(papermill)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(papermill), "papermill outlived dvc"
        assert not _alive(kernel), "the kernel outlived dvc"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_runner_stops_papermill_and_its_kernel(tmp_path: Path,
                                                               sig: signal.Signals) -> None:
    command = [sys.executable, "-m", "moonwalk_core.experiments", "run", "backends"]
    with _sleeping_stage(tmp_path, command) as (runner, kernel, papermill):
        runner.send_signal(sig)
        _, err = runner.communicate(timeout=60)
        assert runner.returncode != 0 and "papermill and its kernel were stopped" in err
        assert not _alive(papermill) and not _alive(kernel)
