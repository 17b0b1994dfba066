"""params.yaml profiles: all load; a wrong key or value stops with a message naming it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from moonwalk_core import config, paths


def _write(tmp_path: Path, edit: Callable[[dict], object]) -> Path:
    params = yaml.safe_load(paths.PARAMS.read_text())
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
])
def test_bad_params_raise_value_error_naming_the_key(tmp_path: Path,
                                                     edit: Callable[[dict], object],
                                                     named: str) -> None:
    path = _write(tmp_path, edit)
    with pytest.raises(ValueError, match=named.replace("[", r"\[").replace("]", r"\]")):
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
