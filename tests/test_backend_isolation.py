"""Importing one backend never imports the other framework; the package imports neither."""

from __future__ import annotations

import subprocess
import sys

import pytest

CASES = {
    "moonwalk_core": ("torch", "jax"),
    "moonwalk_core.arch": ("torch", "jax"),
    "moonwalk_core.methods": ("torch", "jax"),
    "moonwalk_core.torch": ("jax", "equinox"),
    "moonwalk_core.jax": ("torch",),
}


@pytest.mark.parametrize("module", sorted(CASES))
def test_importing_a_module_does_not_import_the_other_framework(module: str) -> None:
    forbidden = CASES[module]
    code = (f"import sys, {module}\n"
            f"bad = [m for m in {forbidden!r} if m in sys.modules]\n"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "", f"import {module} imported {out.stdout.strip()}"
