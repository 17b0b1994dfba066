"""Typed pipeline profiles read from ``params.yaml`` and validated before anything runs.

``load_profile("cpu")`` returns a :class:`Profile`: one frozen dataclass per experiment of
SPEC §5. A missing or unknown key, or a value of the wrong type or range, raises a
``ValueError`` naming the key path (e.g. ``profiles.cpu.runtime.repeats``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from . import paths

__all__ = ["Profile", "Verdict", "load_profile", "load_params", "PROFILES"]

PROFILES = ("tiny", "cpu", "gpu")
Dtype = Literal["float32", "float64"]
Activation = Literal["leaky_relu", "relu"]
Init = Literal["orthogonal", "default"]


@dataclass(frozen=True)
class Exactness:
    depths: list[int]
    channels: int
    length: int
    batch: int
    dtypes: list[Dtype]
    activations: list[Activation]
    block_sizes: list[int | None]
    map_slopes: list[float]
    map_inits: list[Init]
    map_depths: list[int]
    map_dtypes: list[Dtype]
    checkpoint_every: list[int | Literal["auto"] | None]


@dataclass(frozen=True)
class MemoryScaling:
    depths: list[int]
    channels: int
    length: int
    batch: int
    dtype: Dtype
    activations: list[Activation]
    block_size: int


@dataclass(frozen=True)
class MaxDepth:
    budget_mib: float
    channels: int
    length: int
    batch: int
    dtype: Dtype
    block_size: int
    max_depth: int


@dataclass(frozen=True)
class Conv2d:
    depths: list[int]
    channels: int
    size: int
    batch: int
    dtype: Dtype
    activations: list[Activation]
    budget_mib: float
    max_depth: int


@dataclass(frozen=True)
class Runtime:
    depths: list[int]
    channels: int
    length: int
    batch: int
    dtype: Dtype
    block_sizes: list[int | None]
    block_depth: int
    repeats: int
    warmup: int


@dataclass(frozen=True)
class RevnetModes:
    depths: list[int]
    channels: int
    size: int
    hidden: int
    batch: int
    dtype: Dtype
    repeats: int
    warmup: int
    naive_max_depth: int


@dataclass(frozen=True)
class Training:
    depth: int
    channels: int
    epochs: int
    batch: int
    learning_rate: float
    num_samples: int
    block_size: int
    dtype: Dtype
    negative_slope: float


@dataclass(frozen=True)
class Backends:
    depths: list[int]
    channels: int
    length: int
    batch: int
    dtype: Dtype


@dataclass(frozen=True)
class Profile:
    """One profile of ``params.yaml``: the sizes of every experiment."""

    name: str
    seed: int
    threads: int
    exactness: Exactness
    memory_scaling: MemoryScaling
    max_depth: MaxDepth
    conv2d: Conv2d
    runtime: Runtime
    revnet_modes: RevnetModes
    training: Training
    backends: Backends


@dataclass(frozen=True)
class Verdict:
    """The verdict rule of the claims table (``verdict:`` in ``params.yaml``)."""

    reproduced_ratio: float
    exact_float64: float
    exact_float32: float
    runtime_slack: float
    accuracy_gap: float


# ints that may be 0 (everything else numeric must be > 0)
_MAY_BE_ZERO = {"seed", "warmup"}


def _check(value: Any, kind: Any, where: str) -> Any:
    """``value`` converted to ``kind`` or a ValueError naming ``where``."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is list:
        if not isinstance(value, list) or not value:
            raise ValueError(f"{where}: expected a non-empty list, got {value!r}")
        return [_check(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                return _check(value, option, where)
            except ValueError:
                continue
        raise ValueError(f"{where}: {value!r} is not one of {kind}")
    if origin is Literal:
        if value not in args:
            raise ValueError(f"{where}: {value!r} is not allowed; use one of {list(args)}")
        return value
    if kind is type(None):
        if value is not None:
            raise ValueError(f"{where}: expected null, got {value!r}")
        return None
    if kind is int or kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or (kind is int and not isinstance(value, int)):
            raise ValueError(f"{where}: expected {kind.__name__}, got {value!r}")
        low = 0 if where.rsplit(".", 1)[-1].split("[")[0] in _MAY_BE_ZERO else None
        if (low is None and value <= 0) or (low is not None and value < low):
            raise ValueError(f"{where}: must be {'>= 0' if low is not None else '> 0'}, "
                             f"got {value!r}")
        return kind(value)
    raise TypeError(f"config: unsupported field type {kind!r} at {where}")


def _build(cls: type, data: Any, where: str, **extra: Any) -> Any:
    """Instantiate dataclass ``cls`` from mapping ``data``, checking every key."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.name not in extra]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: {names}")
    missing = [n for n in names if n not in data]
    if missing:
        raise ValueError(f"{where}: missing key(s) {missing}")
    values = {}
    for n in names:
        kind = hints[n]
        sub = f"{where}.{n}"
        values[n] = (_build(kind, data[n], sub) if dataclasses.is_dataclass(kind)
                     else _check(data[n], kind, sub))
    return cls(**values, **extra)


def load_params(path: str | Path | None = None) -> dict[str, Any]:
    """The raw ``params.yaml`` (default: the repository's), with its top level checked."""
    path = Path(path) if path is not None else paths.PARAMS
    with open(path) as f:
        params = yaml.safe_load(f)
    allowed = {"profile", "backends", "verdict", "paper", "profiles"}
    if not isinstance(params, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValueError(f"{path}: unknown top-level key(s) {unknown}; allowed: {sorted(allowed)}")
    if params.get("profile") not in PROFILES:
        raise ValueError(f"profile: {params.get('profile')!r} is not one of {list(PROFILES)}")
    _check(params.get("backends"), list[Literal["torch", "jax"]], "backends")
    _build(Verdict, params.get("verdict"), "verdict")
    paper = params.get("paper")
    if not isinstance(paper, dict):
        raise ValueError("paper: expected a mapping of the paper's figures")
    for key, value in paper.items():
        _check(value, float, f"paper.{key}")
    return params


def load_verdict(path: str | Path | None = None) -> Verdict:
    """The claims-table verdict rule."""
    return _build(Verdict, load_params(path)["verdict"], "verdict")


def load_profile(name: str | None = None, path: str | Path | None = None) -> Profile:
    """The validated profile ``name`` (None: the ``profile`` selected in ``params.yaml``).

    Raises:
        ValueError: naming the key path of a missing, unknown or invalid entry.
    """
    params = load_params(path)
    name = params["profile"] if name is None else name
    if name not in PROFILES:
        raise ValueError(f"profile={name!r} is not one of {list(PROFILES)}")
    profiles = params.get("profiles") or {}
    if name not in profiles:
        raise ValueError(f"profiles.{name}: missing from params.yaml")
    for other in profiles:
        if other not in PROFILES:
            raise ValueError(f"profiles.{other}: unknown profile; allowed: {list(PROFILES)}")
    return _build(Profile, profiles[name], f"profiles.{name}", name=name)
