"""params.yaml profiles: all load; a wrong key or value stops with a message naming it."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from moonwalk_core import config, paths


def _write(tmp_path: Path, edit: Callable[[dict], object]) -> Path:
    params = yaml.safe_load(paths.PARAMS.read_text())
    params["profile"] = "tiny"
    edit(params)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


# ids avoid the bare word "gpu": conftest skips items with a "gpu" keyword without CUDA
@pytest.mark.parametrize("name", config.PROFILES, ids=lambda n: f"profile_{n}")
def test_every_profile_in_params_yaml_loads(name: str) -> None:
    profile = config.load_profile(name)
    assert profile.name == name and profile.exactness.depths


def test_default_profile_is_cpu() -> None:
    assert config.load_params()["profile"] == "cpu"
    assert config.load_profile().name == "cpu"


@pytest.mark.parametrize(("edit", "named"), [
    (lambda p: p["profiles"]["tiny"]["runtime"].update(repeat=3), "profiles.tiny.runtime"),
    (lambda p: p["profiles"]["tiny"]["runtime"].update(repeats=0),
     "profiles.tiny.runtime.repeats"),
    (lambda p: p["profiles"]["tiny"]["training"].update(dtype="float16"),
     "profiles.tiny.training.dtype"),
    (lambda p: p["profiles"]["tiny"]["exactness"].update(block_sizes=["big"]),
     "profiles.tiny.exactness.block_sizes[0]"),
    (lambda p: p["profiles"]["tiny"]["exactness"].update(checkpoint_every=[0]),
     "profiles.tiny.exactness.checkpoint_every[0]"),
    (lambda p: p["profiles"]["tiny"]["max_depth"].pop("budget_mib"), "budget_mib"),
    (lambda p: p["profiles"]["tiny"].update(seed="zero"), "profiles.tiny.seed"),
    (lambda p: p["verdict"].update(reproduced_ratio=-1), "verdict.reproduced_ratio"),
    (lambda p: p.update(backends=["tensorflow"]), "backends[0]"),
    (lambda p: p.update(extra=1), "extra"),
    # non-finite numbers, each named by its key path
    (lambda p: p["profiles"]["tiny"]["max_depth"].update(budget_mib=float("nan")),
     "profiles.tiny.max_depth.budget_mib: must be a finite number"),
    (lambda p: p["profiles"]["tiny"]["training"].update(learning_rate=float("inf")),
     "profiles.tiny.training.learning_rate: must be a finite number"),
    (lambda p: p["profiles"]["tiny"]["exactness"].update(map_slopes=[float("inf")]),
     "profiles.tiny.exactness.map_slopes[0]: must be a finite number"),
    (lambda p: p["paper"].update(memory_ratio=float("nan")), "paper.memory_ratio"),
    (lambda p: p["profiles"]["tiny"]["training"].update(negative_slope=float("inf")),
     "profiles.tiny.training.negative_slope"),
    (lambda p: p["verdict"].update(exact_float64=float("nan")), "verdict.exact_float64"),
    # names that are not plain identifiers, empty or repeated lists, missing keys
    (lambda p: p.update(profile="tiny; touch x #"), "profile: 'tiny; touch x #' is not a plain"),
    (lambda p: p.update(backends=[]), "backends: the list is empty"),
    (lambda p: p.update(backends=["torch", "torch"]), "backends: 'torch' appears more than once"),
    (lambda p: p["profiles"]["tiny"]["memory_scaling"].update(depths=[2, 6, 2]),
     r"profiles.tiny.memory_scaling.depths: 2 appears more than once"),
    (lambda p: p["profiles"]["tiny"]["training"].update(num_samples=1),
     "profiles.tiny.training.num_samples: MNIST-1D needs at least 10"),
    (lambda p: p["paper"].pop("memory_ratio"), r"paper: missing key\(s\) \['memory_ratio'\]"),
    (lambda p: p["paper"].update(memroy_ratio=1.0), "paper: unknown key"),
    (lambda p: p.pop("paper"), r"missing top-level key\(s\) \['paper'\]"),
    (lambda p: p["profiles"]["tiny"]["runtime"].update(repeats=True),
     "profiles.tiny.runtime.repeats: expected int, got True"),
])
def test_bad_params_raise_value_error_naming_the_key(tmp_path: Path,
                                                     edit: Callable[[dict], object],
                                                     named: str) -> None:
    path = _write(tmp_path, edit)
    pattern = named if "\\" in named else re.escape(named)
    with pytest.raises(ValueError, match=pattern):
        config.load_profile("tiny", path)


def test_unknown_profile_name_raises() -> None:
    with pytest.raises(ValueError, match="profile='huge'"):
        config.load_profile("huge")


def test_dvc_params_keys_exist_in_every_profile() -> None:
    stages = yaml.safe_load((paths.ROOT / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load(paths.PARAMS.read_text())
    for profile in config.PROFILES:
        for name, stage in stages.items():
            for key in stage.get("params", []):
                node = params
                for part in key.replace("${profile}", profile).split("."):
                    assert part in node, f"stage {name}: params key {key} missing for {profile}"
                    node = node[part]


def test_a_profile_too_large_for_the_machine_is_refused_before_anything_runs(
        tmp_path: Path) -> None:
    path = _write(tmp_path, lambda p: p["profiles"]["tiny"]["memory_scaling"].update(
        channels=4096, length=2**20))
    profile = config.load_profile("tiny", path)  # a valid profile ...
    with pytest.raises(ValueError, match=r"profiles.tiny.memory_scaling: the largest "
                                         r"configuration \(depth 6, batch 2, 4096 channels"):
        config.check_runnable(profile, memory_limit=64 * 2**30)  # ... this machine cannot run
    with pytest.raises(ValueError, match="GiB, more than"):
        config.validate(path)


def test_estimates_grow_with_every_size_and_hold_every_shipped_profile() -> None:
    cpu = config.load_profile("cpu")
    base = config.estimate_bytes(cpu)["runtime"][0]
    for field in ("batch", "channels", "length"):
        bigger = dataclasses.replace(cpu.runtime, **{field: 2 * getattr(cpu.runtime, field)})
        assert config.estimate_bytes(dataclasses.replace(cpu, runtime=bigger))["runtime"][0] \
            > base
    for name in config.PROFILES:
        config.check_runnable(config.load_profile(name), memory_limit=64 * 2**30,
                              cuda_available=True)


def test_gpu_profile_is_refused_without_a_cuda_device(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = config.load_profile("gpu")
    monkeypatch.delenv(config.ALLOW_CPU_ENV, raising=False)
    with pytest.raises(ValueError, match="no CUDA device is visible"):
        config.check_runnable(gpu, cuda_available=False)
    monkeypatch.setenv(config.ALLOW_CPU_ENV, "1")
    config.check_runnable(gpu, cuda_available=False, memory_limit=2**40)


def test_validate_rejects_a_broken_profile_that_is_not_selected(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda p: p["profiles"]["gpu"]["runtime"].update(warmup=-1))
    with pytest.raises(ValueError, match="profiles.gpu.runtime.warmup"):
        config.validate(path)


def test_paper_keys_are_exactly_those_the_claims_use() -> None:
    assert set(config.load_params()["paper"]) == config.PAPER_KEYS
