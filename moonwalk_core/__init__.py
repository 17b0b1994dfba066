"""Moonwalk: inverse-forward differentiation, with PyTorch and JAX backends.

Importing this package imports neither torch nor jax; use :func:`get_backend` or import
``moonwalk_core.torch`` / ``moonwalk_core.jax`` directly.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Literal

__version__ = "0.1.0"
__all__ = ["__version__", "get_backend"]

BackendName = Literal["torch", "jax"]


def get_backend(name: BackendName) -> ModuleType:
    """Return the backend module ``moonwalk_core.torch`` or ``moonwalk_core.jax``.

    Raises:
        ValueError: if ``name`` is not ``"torch"`` or ``"jax"``.
    """
    if name not in ("torch", "jax"):
        raise ValueError(f"backend={name!r} is not supported; use 'torch' or 'jax'")
    return importlib.import_module(f"moonwalk_core.{name}")
