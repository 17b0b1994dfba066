"""Tolerances and norm-wise comparisons shared by the tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

# Norm-wise relative error allowed between Moonwalk and the float64 autodiff oracle, by dtype.
# float64: round-off of well-conditioned layers (SPEC §1). float32: single-precision round-off
# amplified by the condition numbers of the default (orthogonal) init over a few layers.
RTOL = {"float64": 1e-10, "float32": 1e-4}


def to_numpy(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu()
    return np.asarray(a, dtype=np.float64)


def rel_error(a: Any, b: Any) -> float:
    a, b = to_numpy(a), to_numpy(b)
    ref = float(np.linalg.norm(b))
    diff = float(np.linalg.norm(a - b))
    return diff / ref if ref > 0 else diff


def grads_rel_error(grads: Mapping[str, Any], ref: Mapping[str, Any]) -> float:
    """Overall norm-wise relative error of a gradient dict against a reference dict."""
    assert set(grads) == set(ref), f"keys differ: {sorted(set(grads) ^ set(ref))}"
    num = sum(float(np.linalg.norm(to_numpy(grads[k]) - to_numpy(ref[k]))) ** 2 for k in ref)
    den = sum(float(np.linalg.norm(to_numpy(ref[k]))) ** 2 for k in ref)
    return (num / den) ** 0.5 if den > 0 else num**0.5


def assert_rel_close(a: Any, b: Any, dtype: str, what: str = "") -> float:
    err = rel_error(a, b)
    assert err < RTOL[dtype], f"{what}: relative error {err:.3e} >= {RTOL[dtype]:.0e} ({dtype})"
    return err


def assert_grads_close(grads: Mapping[str, Any], ref: Mapping[str, Any], dtype: str,
                       what: str = "") -> float:
    err = grads_rel_error(grads, ref)
    assert err < RTOL[dtype], f"{what}: gradient error {err:.3e} >= {RTOL[dtype]:.0e} ({dtype})"
    return err
