"""What every experiment shares: backend adapters, method names, resumable sweeps, environment.

Backend-neutral (STYLE §5 rule 3): arrays cross this module's edges as NumPy. A piece that a
backend does not provide yet (a layer, a method, the backend itself) yields a row with
``status="unavailable"`` and the reason, so the pipeline runs through and the report says so.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__, get_backend, methods, paths
from ._runner import run_sweep

__all__ = ["Backend", "adapter", "method_named", "attempt", "sweep", "relative_error", "ok_rows",
           "write_summary",
           "write_environment", "METHOD_NAMES"]

METHOD_NAMES = ("Backprop", "Checkpointed", "RevBackprop", "NaiveForward", "PureForward",
                "Moonwalk")


@dataclass(frozen=True)
class Backend:
    """One backend seen through NumPy: its module, a cross-entropy loss and array conversion."""

    name: str
    mw: Any
    loss_fn: Callable[[Any, Any], Any]
    asarray: Callable[[np.ndarray], Any]

    def to_numpy(self, array: Any) -> np.ndarray:
        """A float64 NumPy copy of a backend array (or scalar)."""
        if hasattr(array, "detach"):
            array = array.detach().cpu()
        return np.asarray(array, dtype=np.float64)


def _torch() -> Backend:
    import torch

    return Backend("torch", get_backend("torch"), torch.nn.functional.cross_entropy,
                   torch.from_numpy)


def _jax() -> Backend:
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)  # float64 rows; float32 arrays stay float32

    def cross_entropy(logits: Any, y: Any) -> Any:
        logp = jax.nn.log_softmax(logits, axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=-1))

    return Backend("jax", get_backend("jax"), cross_entropy, jnp.asarray)


def adapter(name: str, threads: int | None = None) -> Backend:
    """The adapter of backend ``name`` ("torch" or "jax"); fixes torch's thread count."""
    if threads is not None:
        import torch  # both backends' runs are timed against torch's thread setting

        torch.set_num_threads(threads)
    if name == "torch":
        return _torch()
    if name == "jax":
        return _jax()
    raise ValueError(f"backend={name!r} is not supported; use 'torch' or 'jax'")


def method_named(name: str, **options: Any) -> methods.Method:
    """``methods.<name>(**options)``, e.g. ``method_named("Moonwalk", block_size=32)``."""
    if name not in METHOD_NAMES:
        raise ValueError(f"method {name!r} is unknown; use one of {list(METHOD_NAMES)}")
    return getattr(methods, name)(**options)


# Messages the backends give for a layer or method they do not provide (not for bad input).
_MISSING = ("has no such layer", "is not supported by the", "does not yet provide")


def attempt(fn: Callable[[], Mapping[str, Any]]) -> dict[str, Any]:
    """``fn()`` with ``status="ok"``, or ``status="unavailable"`` and ``reason`` when the backend
    lacks a piece. Every other exception propagates."""
    try:
        return {**fn(), "status": "ok", "reason": ""}
    except (NotImplementedError, ImportError) as error:
        return {"status": "unavailable", "reason": f"{type(error).__name__}: {error}"[:300]}
    except AttributeError as error:  # a backend module without the function asked for
        if "moonwalk_core" not in str(error):
            raise
        return {"status": "unavailable", "reason": f"{type(error).__name__}: {error}"[:300]}
    except ValueError as error:
        if not any(m in str(error) for m in _MISSING):
            raise
        return {"status": "unavailable", "reason": f"ValueError: {error}"[:300]}


def relative_error(grads: Mapping[str, Any], reference: Mapping[str, Any],
                   to_numpy: Callable[[Any], np.ndarray]) -> dict[str, float]:
    """Norm-wise relative error over all tensors (``error``) and the worst tensor
    (``max_tensor_error``), SPEC §4."""
    diff2 = ref2 = 0.0
    worst = 0.0
    for key, g_ref in reference.items():
        a, b = to_numpy(grads[key]), to_numpy(g_ref)
        d, r = float(np.linalg.norm(a - b)), float(np.linalg.norm(b))
        diff2, ref2 = diff2 + d * d, ref2 + r * r
        worst = max(worst, d / r if r > 0 else d)
    return {"error": (diff2 ** 0.5) / (ref2 ** 0.5) if ref2 > 0 else diff2 ** 0.5,
            "max_tensor_error": worst}


def _source_hash() -> str:
    """Hash of the package sources: a code change starts a sweep afresh."""
    h = hashlib.sha256()
    for path in sorted(Path(paths.ROOT, "moonwalk_core").rglob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def sweep(configs: Sequence[Mapping[str, Any]], fn: Callable[[Mapping], Mapping | list[Mapping]],
          out: str | Path, *, key: Sequence[str], settings: Any) -> pd.DataFrame:
    """:func:`run_sweep` into a scratch table kept across interrupted runs, then ``out``.

    The scratch file (``.sweeps/<name>-<hash>.csv``) is named by the hash of ``settings`` (the
    profile section) and of the package sources, so a rerun with the same code and parameters
    resumes and anything else starts afresh. ``out`` receives the finished table.
    """
    out = Path(out)
    digest = hashlib.sha256(f"{settings!r}{_source_hash()}".encode()).hexdigest()[:12]
    paths.SWEEPS.mkdir(parents=True, exist_ok=True)
    (paths.SWEEPS / ".gitignore").write_text("*\n")
    scratch = paths.SWEEPS / f"{out.stem}-{digest}.csv"
    table = run_sweep(configs, fn, scratch, key=key, desc=out.stem)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(scratch, out)
    return table


def write_environment(out: str | Path, backend_name: str, threads: int) -> dict[str, Any]:
    """Record versions, device and threads next to ``out`` (``<stem>.env.json``)."""
    import torch

    env: dict[str, Any] = {
        "python": platform.python_version(), "platform": platform.platform(),
        "processor": platform.machine(), "moonwalk_core": __version__,
        "numpy": np.__version__, "pandas": pd.__version__, "torch": torch.__version__,
        "backend": backend_name, "torch_threads": threads,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
    }
    if backend_name == "jax":
        import jax

        env["jax"] = jax.__version__
        env["device"] = str(jax.devices()[0].device_kind)
    path = Path(out).with_suffix(".env.json")
    path.write_text(json.dumps(env, indent=1) + "\n")
    return env


def ok_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows whose configuration ran (``status == "ok"``)."""
    return table[table["status"] == "ok"] if "status" in table else table


def _plain(value: Any) -> Any:
    """A JSON-safe scalar: NaN and missing as None, NumPy scalars as Python numbers."""
    if value is None or (isinstance(value, float | np.floating) and not np.isfinite(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def write_summary(out: str | Path, table: pd.DataFrame, summary: Mapping[str, Any]
                  ) -> dict[str, Any]:
    """Write the claim quantities of an experiment next to ``out`` (``<stem>.summary.json``).

    Adds ``rows``, ``rows_ok`` and ``unavailable`` (the distinct reasons of rows that did not
    run) so the report can say what is missing and why.
    """
    reasons = (sorted(set(table.loc[table["status"] != "ok", "reason"].fillna("").astype(str)))
               if "status" in table else [])
    data = {k: _plain(v) for k, v in summary.items()}
    data.update(rows=len(table), rows_ok=len(ok_rows(table)), unavailable=reasons)
    Path(out).with_suffix(".summary.json").write_text(json.dumps(data, indent=1) + "\n")
    return data
