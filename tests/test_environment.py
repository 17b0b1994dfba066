"""requirements.txt and environment.yml pin the same packages to the same versions."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pins(lines: list[str]) -> dict[str, str]:
    pins = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip().lower()] = version.strip()
    return pins


def test_requirements_and_environment_pin_the_same_versions() -> None:
    requirements = _pins((ROOT / "requirements.txt").read_text().splitlines())
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda = _pins([p for p in pip_section if isinstance(p, str)])
    assert requirements == conda
    assert requirements["torch"] == "2.13.0"  # unpinned torch pulls a multi-GB CUDA build
    assert "python=3.11" in env["dependencies"]
