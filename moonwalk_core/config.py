"""Typed pipeline profiles read from ``params.yaml`` and validated before anything runs.

``load_profile("cpu")`` returns a :class:`Profile`: one frozen dataclass per experiment
(``docs/experiments.md``). A missing or unknown key, a value of the wrong type or range, a
non-finite number or a repeated list entry raises a ``ValueError`` naming the key path (e.g.
``profiles.cpu.runtime.repeats``). :func:`check_runnable` adds what depends on the machine
(a GPU for the ``gpu`` profile, memory for the largest configuration), and
``python -m moonwalk_core.config`` runs every check (the pipeline's first stage; see
``docs/pipeline.md``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import string
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from . import paths

__all__ = ["Profile", "Verdict", "load_profile", "load_params", "load_verdict", "PROFILES",
           "PAPER_KEYS", "DEVICES", "check_runnable", "estimate_bytes", "resolve_device",
           "validate"]

PROFILES = ("tiny", "cpu", "gpu")
Dtype = Literal["float32", "float64", "bfloat16"]
Activation = Literal["leaky_relu", "relu"]
Init = Literal["orthogonal", "default"]
Device = Literal["cpu", "cuda", "auto"]
DEVICES = ("cpu", "cuda", "auto")
"""``device:`` of a profile: "cpu", "cuda" (the first visible CUDA device; refused without
one) or "auto" (CUDA when visible, else the CPU). See :func:`resolve_device`."""


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
    min_sample_s: float  # each timed sample makes enough calls to last this long (0: one call)


MIN_SAMPLES = 10  # MNIST-1D draws from one template per class: fewer samples cannot be made


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

    def __post_init__(self) -> None:
        if self.num_samples < MIN_SAMPLES:
            raise ValueError(f"num_samples: MNIST-1D needs at least {MIN_SAMPLES} samples (one "
                             f"per class, 80/20 train/test split), got {self.num_samples}")


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
    device: Device
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
    min_timed_sample_s: float


# ints that may be 0 (everything else numeric must be > 0)
_MAY_BE_ZERO = {"seed", "warmup"}


def _check(value: Any, kind: Any, where: str) -> Any:
    """``value`` converted to ``kind`` or a ValueError naming ``where``."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is list:
        if not isinstance(value, list) or not value:
            raise ValueError(f"{where}: expected a non-empty list, got {value!r}")
        items = [_check(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
        repeated = [v for i, v in enumerate(items) if v in items[:i]]
        if repeated:
            raise ValueError(f"{where}: {repeated[0]!r} appears more than once in {value!r}; "
                             "each entry runs once, so list it once")
        return items
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
        if not math.isfinite(value):
            raise ValueError(f"{where}: must be a finite number, got {value!r}")
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
    try:
        return cls(**values, **extra)
    except ValueError as error:  # a rule across fields (``__post_init__``), named by field
        raise ValueError(f"{where}.{error}") from None


def _paper_keys() -> frozenset[str]:
    """The figures of ``paper:`` that the claims table reads (ids, texts and keys)."""
    from ._claims import CLAIMS

    keys = set()
    for claim in CLAIMS:
        if claim.paper_key:
            keys.add(claim.paper_key)
        for text in (claim.key, claim.paper_text):
            keys.update(name for _, name, _, _ in string.Formatter().parse(text) if name)
    return frozenset(keys)


PAPER_KEYS: frozenset[str] = _paper_keys()
"""The keys ``paper:`` must hold: exactly those the claims table uses."""


def _identifier(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.isidentifier():
        raise ValueError(f"{where}: {value!r} is not a plain name (letters, digits, _)")
    return value


def load_params(path: str | Path | None = None) -> dict[str, Any]:
    """The raw ``params.yaml`` (default: the repository's), with its top level checked."""
    path = Path(path) if path is not None else paths.PARAMS
    with open(path) as f:
        params = yaml.safe_load(f)
    allowed = {"profile", "backends", "verdict", "paper", "profiles"}
    if not isinstance(params, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    unknown = sorted(map(str, set(params) - allowed))
    if unknown:
        raise ValueError(f"{path}: unknown top-level key(s) {unknown}; allowed: {sorted(allowed)}")
    missing = sorted(allowed - set(params))
    if missing:
        raise ValueError(f"{path}: missing top-level key(s) {missing}")
    _identifier(params["profile"], "profile")
    if params["profile"] not in PROFILES:
        raise ValueError(f"profile: {params['profile']!r} is not one of {list(PROFILES)}")
    if params["backends"] == []:
        raise ValueError("backends: the list is empty; name at least one of ['torch', 'jax']")
    for i, name in enumerate(params["backends"] if isinstance(params["backends"], list) else []):
        _identifier(name, f"backends[{i}]")
    _check(params["backends"], list[Literal["torch", "jax"]], "backends")
    _build(Verdict, params["verdict"], "verdict")
    paper = params["paper"]
    if not isinstance(paper, dict):
        raise ValueError("paper: expected a mapping of the paper's figures")
    absent = sorted(PAPER_KEYS - set(paper))
    if absent:
        raise ValueError(f"paper: missing key(s) {absent}; the claims table compares with them")
    extra = sorted(map(str, set(paper) - PAPER_KEYS))
    if extra:
        raise ValueError(f"paper: unknown key(s) {extra}; no claim uses them "
                         f"(known: {sorted(PAPER_KEYS)})")
    for key, value in paper.items():
        _check(value, float, f"paper.{key}")
    if not isinstance(params["profiles"], dict):
        raise ValueError("profiles: expected a mapping of profile name -> sizes")
    for other in params["profiles"]:
        if other not in PROFILES:
            raise ValueError(f"profiles.{other}: unknown profile; allowed: {list(PROFILES)}")
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
    profiles = params["profiles"]
    if name not in profiles:
        raise ValueError(f"profiles.{name}: missing from params.yaml")
    return _build(Profile, profiles[name], f"profiles.{name}", name=name)


_ITEMSIZE = {"float32": 4, "float64": 8, "bfloat16": 2}


def _net_bytes(depth: int, batch: int, channels: int, points: int, itemsize: int,
               kernel_points: int) -> int:
    """A generous estimate of one Backprop gradient of a plain conv net: two stored
    activations per layer (conv output, activation output) plus a few more at the ends and in
    flight, and the weights with their gradients."""
    activation = batch * channels * points * itemsize
    weights = depth * channels * channels * kernel_points * itemsize
    return (2 * depth + 6) * activation + 3 * weights


def estimate_bytes(profile: Profile) -> dict[str, tuple[int, str]]:
    """Memory of the largest configuration of each experiment of ``profile``, estimated from
    its sizes before anything is allocated: experiment -> (bytes, what it is).

    An upper-end estimate (Backprop's saved activations, the float64 reference where there is
    one); a depth search is bounded by twice its budget, since it stops at the first depth
    that does not fit.
    """
    p, out = profile, {}
    e = p.exactness
    depth = max(e.depths + e.map_depths)
    out["exactness"] = (_net_bytes(depth, e.batch, e.channels, e.length, 8, 3),
                        f"depth {depth}, batch {e.batch}, {e.channels} channels, length "
                        f"{e.length}, float64 reference")
    m = p.memory_scaling
    out["memory_scaling"] = (_net_bytes(max(m.depths), m.batch, m.channels, m.length,
                                        _ITEMSIZE[m.dtype], 3),
                             f"depth {max(m.depths)}, batch {m.batch}, {m.channels} channels, "
                             f"length {m.length}, {m.dtype}")
    d = p.max_depth
    search = min(_net_bytes(d.max_depth, d.batch, d.channels, d.length, _ITEMSIZE[d.dtype], 3),
                 int(2 * d.budget_mib * 2**20)
                 + _net_bytes(1, d.batch, d.channels, d.length, _ITEMSIZE[d.dtype], 3))
    out["max_depth"] = (search + 3 * d.max_depth * d.channels**2 * 3 * _ITEMSIZE[d.dtype],
                        f"depth search up to {d.max_depth} under {d.budget_mib:g} MiB, batch "
                        f"{d.batch}, {d.channels} channels, length {d.length}")
    c = p.conv2d
    item, area = _ITEMSIZE[c.dtype], c.size * c.size
    out["conv2d"] = (max(_net_bytes(max(c.depths), c.batch, c.channels, area, item, 9),
                         min(_net_bytes(c.max_depth, c.batch, c.channels, area, item, 9),
                             int(2 * c.budget_mib * 2**20)
                             + _net_bytes(1, c.batch, c.channels, area, item, 9))
                         + 3 * c.max_depth * c.channels**2 * 9 * item),
                     f"depth {max(c.depths)} (search up to {c.max_depth}), batch {c.batch}, "
                     f"{c.channels} channels, {c.size}x{c.size}, {c.dtype}")
    r = p.runtime
    depth = max(r.depths + [r.block_depth])
    out["runtime"] = (_net_bytes(depth, r.batch, r.channels, r.length, 8, 3),
                      f"depth {depth}, batch {r.batch}, {r.channels} channels, length "
                      f"{r.length}, float64 reference")
    v = p.revnet_modes
    out["revnet_modes"] = (_net_bytes(max(v.depths), v.batch, max(v.channels, v.hidden),
                                      v.size * v.size, 8, 9),
                           f"depth {max(v.depths)}, batch {v.batch}, {v.channels} channels, "
                           f"{v.size}x{v.size}, float64 reference")
    t = p.training
    out["training"] = (_net_bytes(t.depth, t.batch, t.channels, 40, _ITEMSIZE[t.dtype], 3)
                       + 2 * t.num_samples * 40 * 4,
                       f"depth {t.depth}, batch {t.batch}, {t.channels} channels, "
                       f"{t.num_samples} MNIST-1D samples")
    b = p.backends
    out["backends"] = (2 * _net_bytes(max(b.depths), b.batch, b.channels, b.length, 8, 3),
                       f"depth {max(b.depths)}, batch {b.batch}, {b.channels} channels, length "
                       f"{b.length}, float64, both backends")
    return out


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 2**62  # unknown: no limit


ALLOW_CPU_ENV = "MOONWALK_ALLOW_CPU"
"""Set to 1 to run a ``device: cuda`` profile on the CPU when no CUDA device is visible (the
``gpu`` profile then takes hours)."""


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def resolve_device(setting: str, *, cuda_available: bool | None = None) -> str:
    """The torch device a profile's ``device:`` setting means on this machine: "cpu" or "cuda".

    "auto" is CUDA when a device is visible, else the CPU. "cuda" without a visible device is
    refused, unless ``MOONWALK_ALLOW_CPU=1`` asks for the CPU instead.

    Raises:
        ValueError: for a setting other than :data:`DEVICES`, or "cuda" without a device.
    """
    if setting not in DEVICES:
        raise ValueError(f"device={setting!r} is not allowed; use one of {list(DEVICES)}")
    if setting == "cpu":
        return "cpu"
    available = _cuda_available() if cuda_available is None else cuda_available
    if available:
        return "cuda"
    if setting == "auto" or os.environ.get(ALLOW_CPU_ENV) == "1":
        return "cpu"
    raise ValueError("device 'cuda' was asked for, but no CUDA device is visible "
                     "(torch.cuda.is_available() is False; a CPU build of torch, or no driver). "
                     "Use `device: auto` or `device: cpu`, install the CUDA builds (README, "
                     f"'GPU install'), or set {ALLOW_CPU_ENV}=1 to run it on the CPU anyway.")


def _gpu_memory() -> int:
    import torch

    return int(torch.cuda.get_device_properties(0).total_memory)


def check_runnable(profile: Profile, *, memory_limit: int | None = None,
                   cuda_available: bool | None = None) -> None:
    """Refuse, before anything is allocated, a profile this machine cannot run.

    * ``device: cuda`` needs a visible CUDA device (unless ``MOONWALK_ALLOW_CPU=1``); the
      ``gpu`` profile is sized for one;
    * the largest configuration of every experiment (:func:`estimate_bytes`) must fit in
      ``memory_limit`` bytes (default: the memory of the device the profile resolves to: the
      first GPU's, or the machine's physical memory).

    Raises:
        ValueError: naming the profile, the experiment and the estimate.
    """
    try:
        device = resolve_device(profile.device, cuda_available=cuda_available)
    except ValueError as error:
        raise ValueError(f"profiles.{profile.name}.device: {error} Profile {profile.name!r} "
                         + ("is the paper-scale profile for one large GPU: on the CPU it "
                            "would run for hours." if profile.name == "gpu" else "")) from None
    if memory_limit is not None:
        limit = memory_limit
    elif device == "cuda" and cuda_available is None:
        limit = _gpu_memory()
    else:
        limit = _physical_memory()
    where = "the GPU" if device == "cuda" else "this machine"
    for experiment, (need, what) in estimate_bytes(profile).items():
        if need > limit:
            raise ValueError(f"profiles.{profile.name}.{experiment}: the largest configuration "
                             f"({what}) needs about {need / 2**30:,.1f} GiB, more than the "
                             f"{limit / 2**30:,.1f} GiB {where} has; make it smaller")


def validate(path: str | Path | None = None) -> Profile:
    """Every check of ``params.yaml`` before a run: the top level, every profile, and whether
    this machine can run the selected one. Returns the selected profile.

    Raises:
        ValueError: naming the first problem's key path.
    """
    params = load_params(path)
    for name in params["profiles"]:
        load_profile(name, path)
    if params["profile"] not in params["profiles"]:
        raise ValueError(f"profiles.{params['profile']}: missing from params.yaml")
    profile = load_profile(None, path)
    check_runnable(profile)
    return profile


def main(argv: list[str] | None = None) -> int:
    """``python -m moonwalk_core.config [params.yaml]``: validate, print the profile."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    try:
        profile = validate(args[0] if args else None)
    except ValueError as error:
        print(f"params.yaml: {error}", file=sys.stderr)
        return 2
    print(f"params.yaml: valid; profile {profile.name!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
