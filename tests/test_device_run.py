"""The device path tested on the CPU: the ``device`` setting reaches every experiment, and a
short-slot run (runner -> archive -> import -> report) works in a Python without DVC,
papermill, jupytext or mnist1d, stopping at its budget. See docs/gpu.md."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from moonwalk_core import config, paths, report
from moonwalk_core.experiments import import_archive as importer
from moonwalk_core.measure import adapter

BLOCKED = ("dvc", "papermill", "jupytext", "nbformat", "mnist1d")
SITE = f"""
import importlib.abc, sys
class _Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ImportError(f"{{name}} is not installed on this image (test)")
        return None
sys.meta_path.insert(0, _Blocked())
"""


def _device_image(tmp_path: Path) -> dict[str, str]:
    """The environment of a bare device image: no venv bin on PATH (so no `dvc`), and the
    pipeline-only packages refused at import."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITE)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(PATH="/usr/bin:/bin", PYTHONPATH=f"{site}{os.pathsep}{paths.ROOT}",
               OMP_NUM_THREADS="1", MOONWALK_SWEEPS=str(tmp_path / "unused-sweeps"))
    return env


def _run(tmp_path: Path, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = _device_image(tmp_path)
    probe = subprocess.run([sys.executable, "-c", "import dvc"], env=env, capture_output=True,
                           text=True)
    assert probe.returncode != 0 and "not installed on this image" in probe.stderr
    assert subprocess.run(["sh", "-c", "command -v dvc"], env=env).returncode != 0
    return subprocess.run([sys.executable, "-m", "moonwalk_core.experiments.run_profile",
                           "--profile", "tiny", "--device", "cpu", "--out", str(out),
                           "--work", str(tmp_path / "work"), *args],
                          env=env, capture_output=True, text=True, timeout=300,
                          cwd=paths.ROOT)


def test_runner_archive_import_report_on_the_cpu(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = _run(tmp_path, out, "--only", "memory_scaling@torch", "--budget-s", "300")
    assert done.returncode == 0, done.stdout + done.stderr
    archives = list(out.glob("moonwalk-tiny-*.tar.gz"))
    assert len(archives) == 1 and {p.name for p in out.iterdir()} == {archives[0].name,
                                                                       "run.json"}
    results = tmp_path / "results"
    manifest = importer.import_archive(archives[0], results / "gpu")
    (stage,) = manifest["stages"]
    assert stage["stem"] == "memory_scaling_torch" and stage["status"] == "ok"
    assert manifest["device"].startswith("cpu") and manifest["precision"][
        "torch.backends.cudnn.allow_tf32"] is False
    env = json.loads((results / "gpu" / "results" / "memory_scaling_torch.env.json").read_text())
    assert env["device_setting"] == "cpu"
    assert env["precision"]["torch.backends.cudnn.allow_tf32"] is False

    # beside the pipeline's own (cpu profile) results
    (results / "memory_scaling_torch.summary.json").write_text(json.dumps(
        {"fragmental_plain_peak_ratio": 1.25, "rows": 3, "rows_ok": 3, "unavailable": []}))
    reports = tmp_path / "reports"
    reports.mkdir()
    report.build_report(results, reports)
    text = (reports / "report.md").read_text()
    claims = text.split("## Claims", 1)[1].split("\n\n")[1].splitlines()
    assert "| gpu |" in claims[0]
    row = next(line for line in claims
               if "activation peak (what one gradient adds), deepest ReLU 1D net (torch)" in line)
    header = [c.strip() for c in claims[0].strip().strip("|").split("|")]
    cells = [c.strip() for c in row.strip().strip("|").split("|")]
    ours, gpu = cells[header.index("ours")], cells[header.index("gpu")]
    assert ours == "1.25"  # ours, from the pipeline's results
    assert "(" in gpu and gpu[0].isdigit() and gpu != "1.25", row
    exact = next(line for line in claims if "(float64, torch)" in line)
    assert "not in the device run" in exact
    assert "## GPU run" in text and "`memory_scaling_torch` | ok" in text
    assert "The **gpu** column: profile `tiny` measured on `cpu" in text
    assert report.unsourced_numbers(text, results) == []


def test_runner_stops_at_the_budget_and_marks_what_it_skipped(tmp_path: Path) -> None:
    out = tmp_path / "out"
    # a max_depth search far longer than the budget on any machine (thousands of layers under a
    # large budget): it starts (whatever the start-up took of the budget, as long as some is
    # left) and is stopped
    params = yaml.safe_load((paths.ROOT / "params.yaml").read_text())
    params["profiles"]["tiny"]["max_depth"].update(budget_mib=512, channels=32, length=1024,
                                                   max_depth=100_000)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    done = _run(tmp_path, out, "--only", "max_depth,backends", "--budget-s", "20",
                "--min-stage-s", "0", "--params", str(tmp_path / "params.yaml"))
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = json.loads((out / "run.json").read_text())
    first, second = manifest["stages"]
    assert first["stem"] == "max_depth_torch" and first["status"] in ("partial", "stopped")
    assert "stopped at the budget" in first["reason"]
    assert second == {"experiment": "backends", "backend": "torch", "stem": "backends",
                      "status": "skipped",
                      "reason": "skipped: the budget of 20 s was spent"}
    assert manifest["elapsed_s"] < 20 + 15  # the stop's grace period at most
    (archive,) = out.glob("*.tar.gz")
    with tarfile.open(archive) as tar:
        assert "run.json" in tar.getnames() and "logs/max_depth_torch.log" in tar.getnames()


def test_runner_refuses_cuda_without_a_device(tmp_path: Path) -> None:
    done = _run(tmp_path, tmp_path / "out", "--device", "cuda", "--budget-s", "60")
    assert done.returncode == 2 and "no CUDA device is visible" in done.stderr
    assert not (tmp_path / "out").exists()


def _archive(path: Path, members: dict[str, bytes], *, link: str | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo(link)
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
    return path


@pytest.mark.parametrize(("members", "link", "message"), [
    ({"results/x.csv": b"a\n"}, None, "no run.json"),
    ({"run.json": b"{}"}, None, "format None"),
    ({"run.json": b"{}", "../evil.csv": b"x"}, None, "unexpected name"),
    ({"run.json": b"{}"}, "results/link.csv", "not a plain file"),
])
def test_import_refuses_a_malformed_archive_and_keeps_what_was_there(
        tmp_path: Path, members: dict[str, bytes], link: str | None, message: str) -> None:
    dest = tmp_path / "gpu"
    dest.mkdir()
    (dest / "run.json").write_text("previous")
    bad = _archive(tmp_path / "bad.tar.gz", members, link=link)
    with pytest.raises(ValueError, match=message):
        importer.import_archive(bad, dest)
    assert (dest / "run.json").read_text() == "previous"


def test_device_setting_is_validated_and_resolved(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    params = yaml.safe_load(paths.PARAMS.read_text())
    params["profiles"]["tiny"]["device"] = "gpu"
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(params))
    with pytest.raises(ValueError, match=r"profiles.tiny.device: 'gpu' is not allowed"):
        config.load_profile("tiny", bad)
    monkeypatch.delenv(config.ALLOW_CPU_ENV, raising=False)
    assert config.resolve_device("auto", cuda_available=False) == "cpu"
    assert config.resolve_device("auto", cuda_available=True) == "cuda"
    assert config.resolve_device("cpu", cuda_available=True) == "cpu"
    with pytest.raises(ValueError, match="no CUDA device is visible"):
        config.resolve_device("cuda", cuda_available=False)
    monkeypatch.setenv(config.ALLOW_CPU_ENV, "1")
    assert config.resolve_device("cuda", cuda_available=False) == "cpu"
    assert [config.load_profile(n).device for n in config.PROFILES] == ["cpu", "cpu", "cuda"]


EXPERIMENTS = [("exactness", "torch"), ("exactness", "jax"), ("memory_scaling", "torch"),
               ("memory_scaling", "jax"), ("max_depth", "torch"), ("conv2d", "torch"),
               ("runtime", "torch"), ("revnet_modes", "torch"), ("backends", "torch")]


@pytest.mark.parametrize(("experiment", "backend"), EXPERIMENTS,
                         ids=[f"{e}-{b}" for e, b in EXPERIMENTS])
def test_every_experiment_measures_on_the_profile_device(
        experiment: str, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A profile asking for CUDA, on a machine that claims one but whose torch and JAX have
    none: every row must say the device is unavailable. A build, batch or peak that ignored
    the setting would run on the CPU and give an "ok" row."""
    import dataclasses
    import importlib

    monkeypatch.setattr(config, "_cuda_available", lambda: True)
    monkeypatch.setattr(paths, "SWEEPS", tmp_path / "sweeps")
    profile = dataclasses.replace(config.load_profile("tiny"), device="cuda")
    module = importlib.import_module(f"moonwalk_core.experiments.{experiment}")
    try:
        table = module.run(profile, backend, out=tmp_path / f"{experiment}.csv")
    finally:
        adapter.use_device("cpu")
    assert set(table["status"]) == {"unavailable"}
    assert all("device 'cuda'" in reason for reason in table["reason"])


def test_training_measures_on_the_profile_device(monkeypatch: pytest.MonkeyPatch) -> None:
    from moonwalk_core import arch, methods
    from moonwalk_core.experiments import training

    spec = arch.causal_conv_net(1, channels=2, in_channels=1, length=40, patch=8)
    dataset = {"x": np.zeros((4, 1, 40)), "y": np.zeros(4, dtype=np.int64),
               "x_test": np.zeros((4, 1, 40)), "y_test": np.zeros(4, dtype=np.int64)}
    adapter.use_device("cuda")
    try:
        with pytest.raises(adapter.Unavailable, match="device 'cuda'"):
            training.train(methods.Backprop(), spec, dataset, epochs=1, batch=2,
                           learning_rate=0.1, dtype="float32", seed=0)
    finally:
        adapter.use_device("cpu")


def test_gpu_check_keeps_every_finished_method_when_one_crashes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One method's crash in the depth searches (as a device error in the "auto" variant
    once did) loses none of the finished searches: each is saved as it ends."""
    import importlib
    import time

    gpu_check = importlib.import_module("benchmarks.gpu_check")
    args = gpu_check._parse(["--smallest", "--budget-gb", str(2 / 1024), "--max-depth", "4",
                             "--length", "32", "--out", str(tmp_path / "check.json")])
    args.deadline = time.perf_counter() + 120
    saved: list[dict] = []
    out: dict = {}
    args.save = lambda: saved.append(json.loads(json.dumps(out, default=str)))
    real = gpu_check.total_peak

    def planted(spec, method, batch, args):  # type: ignore[no-untyped-def]
        if getattr(method, "checkpoint_every", None) == "auto":
            raise RuntimeError("planted device error")
        return real(spec, method, batch, args)

    monkeypatch.setattr(gpu_check, "total_peak", planted)
    make = gpu_check._families(args)["conv1d"]
    gpu_check.max_depths(make, 2, args, out)
    auto = next(name for name in out if "auto" in name)
    assert "planted device error" in out[auto]["error"]
    finished = [name for name in out if name != auto]
    assert len(finished) == 2 and all(out[n]["max_depth"] >= 1 for n in finished)
    assert len(saved) == 3 and set(saved[1]) == set(finished)  # saved after each method


def test_gpu_requirements_pin_the_cpu_pins_versions() -> None:
    def pins(path: Path) -> dict[str, str]:
        found = {}
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if "==" in line:
                name, version = line.split("==")
                found[name.split("[")[0]] = version
        return found

    cpu, gpu = pins(paths.ROOT / "requirements.txt"), pins(paths.ROOT / "requirements-gpu.txt")
    assert set(gpu) == {"torch", "jax", "jaxlib"}
    assert {name: cpu[name] for name in gpu} == gpu
    assert "jax[cuda12]==" in (paths.ROOT / "requirements-gpu.txt").read_text()


def test_a_stopped_stage_keeps_its_finished_configurations(tmp_path: Path) -> None:
    import pandas as pd

    from moonwalk_core.experiments._runner import run_sweep
    from moonwalk_core.experiments.run_profile import _salvage

    configs = [{"depth": d} for d in (1, 2, 3, 4)]

    def row(config: dict) -> dict:
        if config["depth"] == 3:
            raise KeyboardInterrupt  # the stop arrives during the third configuration
        return {"peak": 10 * config["depth"]}

    sweeps, results = tmp_path / "sweeps", tmp_path / "results"
    results.mkdir()
    with pytest.raises(KeyboardInterrupt):
        run_sweep(configs, row, results / "max_depth_torch.csv", key=["depth"],
                  scratch_dir=sweeps)
    assert _salvage("max_depth_torch", sweeps, results) == 2
    kept = pd.read_csv(results / "max_depth_torch.partial.csv")
    assert kept.to_dict("records") == [{"depth": 1, "peak": 10}, {"depth": 2, "peak": 20}]
