"""The harness's one backend adapter: typed "unavailable", no hidden global settings, and the
shared helpers (gradient error, JAX cross-entropy, synthetic batch) living once."""

from __future__ import annotations

import math
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from moonwalk_core import arch, data, paths
from moonwalk_core.experiments._common import attempt
from moonwalk_core.measure import adapter as adapter_module
from moonwalk_core.measure.adapter import (
    adapter,
    jax_cross_entropy,
    relative_error,
    synthetic_batch,
)


def test_attempt_turns_only_the_typed_exception_into_an_unavailable_row() -> None:
    def missing() -> dict:
        raise adapter_module.Unavailable("the jax backend needs the `jax` package")

    row = attempt(missing)
    assert row["status"] == "unavailable" and "needs the `jax` package" in row["reason"]

    def crash() -> dict:  # prose that used to be matched as "unavailable"
        raise ValueError("layer 3 (conv2d): the jax backend has no such layer")

    with pytest.raises(ValueError, match="no such layer"):
        attempt(crash)
    assert attempt(lambda: {"error": 0.0}) == {"error": 0.0, "status": "ok", "reason": ""}


_NO_SIDE_EFFECTS = """
import jax, torch
torch.set_num_threads(1)
from moonwalk_core.measure.adapter import adapter
adapter("torch"); adapter("jax")
print(jax.config.jax_enable_x64, torch.get_num_threads())
"""


def test_adapter_changes_no_global_setting() -> None:
    """Making an adapter must not switch JAX to 64-bit nor set torch's threads."""
    out = subprocess.run([sys.executable, "-c", _NO_SIDE_EFFECTS], capture_output=True,
                         text=True, check=True, timeout=300,
                         env={"PYTHONPATH": str(paths.ROOT), "PATH": "/usr/bin:/bin"})
    assert out.stdout.split() == ["False", "1"]


_WITHOUT_JAX = """
import dataclasses, json, sys
sys.modules["jax"] = None  # as if JAX were not installed
from pathlib import Path
from moonwalk_core import config, paths
paths.SWEEPS = Path(sys.argv[1]) / "sweeps"
from moonwalk_core.experiments import exactness
tiny = config.load_profile("tiny")
small = dataclasses.replace(tiny, exactness=dataclasses.replace(tiny.exactness, dtypes=["float64"],
                                                               activations=["relu"]))
table = exactness.run(small, "jax", Path(sys.argv[1]) / "exactness_jax.csv")
print(json.dumps(sorted(set(table["status"]))))
"""


def test_a_missing_framework_gives_unavailable_rows_not_a_crash(tmp_path) -> None:  # noqa: ANN001
    out = subprocess.run([sys.executable, "-c", _WITHOUT_JAX, str(tmp_path)],
                         capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": str(paths.ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == '["unavailable"]'
    summary = (tmp_path / "exactness_jax.summary.json").read_text()
    assert "needs the `jax` package" in summary


def test_unknown_backend_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="backend='tensorflow'"):
        adapter("tensorflow")


def test_relative_error_is_norm_wise_and_keeps_nan() -> None:
    ref = {"a": np.array([3.0, 0.0]), "b": np.array([0.0, 4.0])}
    grads = {"a": torch.tensor([3.0, 0.0]), "b": torch.tensor([0.0, 4.5])}
    out = relative_error(grads, ref)
    assert out["error"] == pytest.approx(0.5 / 5.0)
    assert out["max_tensor_error"] == pytest.approx(0.5 / 4.0)
    bad = relative_error({"a": np.array([np.nan, 0.0]), "b": ref["b"]}, ref)
    assert math.isnan(bad["error"]) and math.isnan(bad["max_tensor_error"])
    zero = relative_error({"a": np.ones(2)}, {"a": np.zeros(2)})
    assert zero["error"] == pytest.approx(math.sqrt(2.0))


def test_jax_cross_entropy_equals_torchs() -> None:
    jnp = pytest.importorskip("jax.numpy")
    rng = np.random.default_rng(0)
    logits, y = rng.standard_normal((5, 7)), rng.integers(0, 7, 5)
    expected = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y))
    got = jax_cross_entropy(jnp.asarray(logits), jnp.asarray(y))
    assert float(got) == pytest.approx(float(expected), rel=1e-12)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_synthetic_batch_is_the_data_modules_batch_in_every_backend(backend: str) -> None:
    if backend == "jax":
        pytest.importorskip("jax")
    spec = arch.causal_conv_net(2, channels=4, length=16)
    x, y = synthetic_batch(adapter(backend), spec, 3, dtype="float64", seed=5)
    x_ref, y_ref = data.synthetic_batch(spec.input_shape, 10, 3, dtype="float64", seed=5)
    np.testing.assert_array_equal(np.asarray(x), x_ref)
    np.testing.assert_array_equal(np.asarray(y), y_ref)


HARNESS = sorted([*(paths.ROOT / "moonwalk_core" / "experiments").glob("*.py"),
                  *(paths.ROOT / "moonwalk_core" / "measure").glob("*.py"),
                  *(paths.ROOT / "benchmarks").glob("*.py")])
COPIES = {
    "JAX cross-entropy": re.compile(r"log_softmax"),
    "relative error": re.compile(r"def \w*(rel|grads)_?err|\.norm\(|linalg\.norm"),
    "synthetic batch": re.compile(r"standard_normal\(|torch\.randn\("),
}


@pytest.mark.parametrize("what", sorted(COPIES))
def test_shared_helpers_live_once_in_the_harness(what: str) -> None:
    copies = [p.relative_to(paths.ROOT).as_posix() for p in HARNESS
              if p.name != "adapter.py" and COPIES[what].search(p.read_text())]
    assert copies == [], f"{what} written again in {copies}: use moonwalk_core.measure.adapter"
