"""What every experiment shares: method names, typed "unavailable" rows, resumable sweeps keyed
by everything that changes a result, the environment record and the claim summaries.

Backend-neutral: arrays cross this module's edges as NumPy (the adapter is
:mod:`moonwalk_core.measure.adapter`). A piece that a backend does not provide (raised as
:class:`~moonwalk_core.measure.adapter.Unavailable`) yields a row with
``status="unavailable"`` and the reason, so the pipeline runs through and the report says so.
See ``docs/experiments.md`` and ``docs/pipeline.md``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import math
import os
import platform
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__, methods, paths
from ..config import Profile, resolve_device
from ..measure.adapter import (
    Backend,
    Unavailable,
    adapter,
    current_device,
    enable_jax_float64,
    relative_error,
    set_threads,
    use_device,
)
from ..measure.device import device_record, precision_flags, use_ieee_float32
from ._runner import run_sweep, sweep_lock

__all__ = ["Backend", "Unavailable", "adapter", "method_named", "attempt", "sweep",
           "relative_error", "ok_rows", "worst", "write_summary", "write_environment",
           "prepare", "METHOD_NAMES"]

METHOD_NAMES = ("Backprop", "Checkpointed", "RevBackprop", "NaiveForward", "PureForward",
                "Moonwalk")


def method_named(name: str, **options: Any) -> methods.Method:
    """``methods.<name>(**options)``, e.g. ``method_named("Moonwalk", block_size=32)``."""
    if name not in METHOD_NAMES:
        raise ValueError(f"method {name!r} is unknown; use one of {list(METHOD_NAMES)}")
    return getattr(methods, name)(**options)


def prepare(profile: Profile, backend: str) -> None:
    """Set up a run of ``backend``: torch's thread count, the measurement device from the
    profile's ``device`` (Note: [measurement device] in ``measure/adapter.py``), IEEE float32
    (no TF32; ``measure/device.py``) and, for JAX, 64-bit mode (the float64 references need
    it). All are process-wide settings, made here explicitly, once per experiment run. A
    framework that is not installed is left alone: each row then says it is unavailable
    (:func:`attempt`).

    Raises:
        ValueError: for an unknown backend, or ``device: cuda`` without a CUDA device.
    """
    if backend not in ("torch", "jax"):
        raise ValueError(f"backend={backend!r} is not supported; use 'torch' or 'jax'")
    device = use_device(resolve_device(profile.device))
    if device.startswith("cuda"):  # torch and JAX share the GPU: no JAX preallocation
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    set_threads(profile.threads)
    use_ieee_float32(jax_too=False)
    if backend == "jax":
        try:
            enable_jax_float64()
            use_ieee_float32()
        except ImportError:
            pass


def attempt(fn: Callable[[], Mapping[str, Any]]) -> dict[str, Any]:
    """``fn()`` with ``status="ok"``, or ``status="unavailable"`` and ``reason`` when it raises
    :class:`Unavailable` (a backend lacks a piece). Every other exception propagates."""
    try:
        return {**fn(), "status": "ok", "reason": ""}
    except Unavailable as error:
        return {"status": "unavailable", "reason": f"Unavailable: {error}"[:300]}


def _source_hash() -> str:
    """Hash of the running package's sources: a code change starts an unfinished sweep
    afresh."""
    h = hashlib.sha256()
    package = Path(__file__).resolve().parent.parent
    for path in sorted(package.rglob("*.py")):
        h.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def _versions() -> dict[str, str]:
    """Versions of the libraries a result can depend on (without importing them)."""
    found = {"python": platform.python_version(), "moonwalk_core": __version__}
    for name in ("numpy", "pandas", "torch", "jax", "jaxlib", "equinox", "mnist1d"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def _device(backend: str) -> str:
    """The device that computes the rows (the harness's device; for JAX its matching
    platform), by name."""
    try:
        return str(device_record(backend)["device"])
    except (RuntimeError, ImportError, AssertionError) as error:  # no such device here
        return f"{current_device()} ({type(error).__name__})"


def _identity(profile: Profile, section: str, backend: str,
              extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """Everything besides the configurations that changes a result of this sweep."""
    settings = getattr(profile, section)
    return {"profile": profile.name, "experiment": section,
            "settings": json.loads(json.dumps(dataclasses.asdict(settings), default=str)),
            "seed": profile.seed, "threads": profile.threads, "backend": backend,
            "device": _device(backend), "device_setting": current_device(),
            "precision": {k: v for k, v in precision_flags().items()  # this backend's only
                          if backend == "jax" or k.startswith("torch")},
            "host": platform.node(), "sources": _source_hash(),
            "versions": _versions(), **(extra or {})}


def sweep(configs: Sequence[Mapping[str, Any]], fn: Callable[[Mapping], Mapping | list[Mapping]],
          out: str | Path, *, key: Sequence[str], profile: Profile, section: str, backend: str,
          summarize: Callable[[pd.DataFrame], Mapping[str, Any]],
          extra_identity: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Run a sweep into ``out``, then write ``<stem>.env.json`` and ``<stem>.summary.json``.

    The rows go through a scratch table in ``paths.SWEEPS`` keyed by the sweep's identity:
    the profile section ``section`` as resolved, seed, threads, backend, device, host, package
    sources, library versions, the configurations and ``extra_identity``. An interrupted sweep
    resumes under the same identity; a finished one is never reused (Note: [scratch tables]
    in ``_runner.py``). The whole run holds the result's lock.
    """
    out = Path(out)
    paths.SWEEPS.mkdir(parents=True, exist_ok=True)
    (paths.SWEEPS / ".gitignore").write_text("*\n")
    identity = _identity(profile, section, backend, extra_identity)
    with sweep_lock(out, paths.SWEEPS):
        table = run_sweep(configs, fn, out, key=key, desc=out.stem, identity=identity,
                          scratch_dir=paths.SWEEPS)
        write_environment(out, backend, profile.threads)
        write_summary(out, table, summarize(table))
    return table


def write_environment(out: str | Path, backend_name: str, threads: int) -> dict[str, Any]:
    """Record versions, the device the rows were measured on (not merely one that exists),
    the float32 precision flags in force and threads next to ``out`` (``<stem>.env.json``)."""
    import torch

    env: dict[str, Any] = {
        "python": platform.python_version(), "platform": platform.platform(),
        "processor": platform.machine(), "moonwalk_core": __version__,
        "numpy": np.__version__, "pandas": pd.__version__, "torch": torch.__version__,
        "backend": backend_name, "torch_threads": threads,
    }
    if backend_name == "jax":
        try:
            import jax
        except ImportError:
            env["jax"] = "not installed"
        else:
            env["jax"] = jax.__version__
    try:
        env.update(device_record(backend_name))
    except (RuntimeError, ImportError, AssertionError) as error:
        env.update(device=f"{current_device()} ({type(error).__name__})",
                   device_setting=current_device())
    env["precision"] = precision_flags()
    from ..provenance import code_state  # the commit the rows were measured at (None: no git)

    state = code_state()
    env.update(commit=state.commit, dirty_paths=len(state.changed))
    path = Path(out).with_suffix(".env.json")
    path.write_text(json.dumps(env, indent=1) + "\n")
    return env


def ok_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows whose configuration ran (``status == "ok"``)."""
    return table[table["status"] == "ok"] if "status" in table else table


def worst(values: Any) -> float | None:
    """The largest value, where NaN is a failure, not an absence: any NaN gives NaN.

    None when there are no values (nothing was measured). Text that is not a number counts
    as NaN.
    """
    series = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce")
    if series.empty:
        return None
    return float("nan") if series.isna().any() else float(series.max())


def _plain(value: Any) -> Any:
    """A JSON-safe scalar: NumPy scalars as Python numbers, missing (None) as null, and NaN or
    infinity as the strings "nan", "inf", "-inf" (a failed measurement stays visible, and the
    file stays strict JSON)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def write_summary(out: str | Path, table: pd.DataFrame, summary: Mapping[str, Any]
                  ) -> dict[str, Any]:
    """Write the claim quantities of an experiment next to ``out`` (``<stem>.summary.json``).

    Adds ``rows``, ``rows_ok`` and ``unavailable`` (the distinct reasons of rows that did not
    run) so the report can say what is missing and why. A NaN quantity is written as "nan":
    the report's verdict on it is "not reproduced", never "not measured".
    """
    reasons = (sorted(set(table.loc[table["status"] != "ok", "reason"].fillna("").astype(str)))
               if "status" in table else [])
    data = {k: _plain(v) for k, v in summary.items()}
    data.update(rows=len(table), rows_ok=len(ok_rows(table)), unavailable=reasons)
    Path(out).with_suffix(".summary.json").write_text(
        json.dumps(data, indent=1, allow_nan=False) + "\n")
    return data
