"""Backend-neutral architecture descriptions (docs/architecture.md, 'Architectures').

An architecture is data: ``{"input_shape": [C, T] or [C, H, W], "layers": [{"type": ...}, ...]}``.
:func:`load` validates it, infers every layer's per-example output shape and returns an
:class:`ArchSpec` that both backends build from. Bad input raises ``ValueError`` naming the layer
index, the field and what is allowed.

Some types have several *variants*, each built by its own layer class (one algorithm per
class): ``conv2d`` by its ``mode``, ``stem`` by the input's rank, ``linear`` by whether it
expands. :attr:`LayerSpec.variant` names the variant; :data:`VARIANTS` lists them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["ArchSpec", "LayerSpec", "load", "LAYER_TYPES", "VARIANTS", "layer_kinds",
           "causal_conv_net", "conv2d_net", "revnet"]

Shape = tuple[int, ...]


@dataclass(frozen=True)
class LayerSpec:
    """One validated layer entry with its inferred per-example shapes."""

    index: int
    type: str
    fields: Mapping[str, Any]
    in_shape: Shape
    out_shape: Shape

    @property
    def expanding(self) -> bool:
        """True when the output has more numbers than the input (Jacobian not surjective)."""
        return math.prod(self.out_shape) > math.prod(self.in_shape)

    @property
    def variant(self) -> str | None:
        """Which of the type's :data:`VARIANTS` this entry is (None for single-class types)."""
        if self.type == "conv2d":
            return str(self.fields["mode"])
        if self.type == "stem":
            return "1d" if len(self.in_shape) == 2 else "2d"
        if self.type == "linear":
            return "expanding" if self.expanding else "surjective"
        return None

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]


@dataclass(frozen=True)
class ArchSpec:
    """A validated architecture: input shape and layers with inferred shapes."""

    input_shape: Shape
    layers: tuple[LayerSpec, ...]
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def output_shape(self) -> Shape:
        return self.layers[-1].out_shape if self.layers else self.input_shape

    def to_dict(self) -> dict[str, Any]:
        """The description as plain data (round-trips through :func:`load`)."""
        return {
            "input_shape": list(self.input_shape),
            "layers": [{"type": ls.type, **dict(ls.fields)} for ls in self.layers],
        }


def _err(index: int, type_: str, msg: str) -> ValueError:
    return ValueError(f"layer {index} ({type_}): {msg}")


def _int_field(entry: Mapping[str, Any], name: str, i: int, t: str, *, default: Any = None,
               minimum: int = 1) -> int:
    if name not in entry:
        if default is None:
            raise _err(i, t, f"missing field {name!r} (an int >= {minimum})")
        return int(default)
    value = entry[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _err(i, t, f"field {name!r}={value!r} is not allowed; use an int >= {minimum}")
    return value


def _need_rank(shape: Shape, rank: int, i: int, t: str) -> None:
    if len(shape) != rank:
        want = {1: "[features] (add a 'flatten' first)", 2: "[C, T]", 3: "[C, H, W]"}[rank]
        raise _err(i, t, f"input shape {list(shape)} has the wrong rank; this layer needs {want}")


def _stem(e: Mapping[str, Any], s: Shape, i: int, t: str) -> tuple[dict[str, Any], Shape]:
    if len(s) not in (2, 3):
        raise _err(i, t, f"input shape {list(s)} must be [C, T] or [C, H, W]")
    ch = _int_field(e, "channels", i, t)
    k = _int_field(e, "kernel_size", i, t)
    if ch < s[0]:
        raise _err(i, t, f"field 'channels'={ch} is below the input channels {s[0]}; "
                         "a stem must not narrow (use patch_conv or linear)")
    return {"channels": ch, "kernel_size": k}, (ch, *s[1:])


def _causal_conv1d(e: Mapping[str, Any], s: Shape, i: int, t: str) -> tuple[dict[str, Any], Shape]:
    _need_rank(s, 2, i, t)
    k = _int_field(e, "kernel_size", i, t)
    d = _int_field(e, "dilation", i, t, default=1)
    return {"kernel_size": k, "dilation": d}, s


CONV2D_MODES = ("masked", "circular")


def _conv2d(e: Mapping[str, Any], s: Shape, i: int, t: str) -> tuple[dict[str, Any], Shape]:
    _need_rank(s, 3, i, t)
    k = _int_field(e, "kernel_size", i, t)
    mode = e.get("mode", "masked")
    if mode not in CONV2D_MODES:
        raise _err(i, t, f"field 'mode'={mode!r} is not allowed; use one of {CONV2D_MODES}")
    if mode == "circular" and k > min(s[1], s[2]):
        raise _err(i, t, f"field 'kernel_size'={k} exceeds the image size {list(s[1:])}")
    return {"kernel_size": k, "mode": mode}, s


def _patch(rank: int) -> Callable[..., tuple[dict[str, Any], Shape]]:
    def infer(e: Mapping[str, Any], s: Shape, i: int, t: str) -> tuple[dict[str, Any], Shape]:
        _need_rank(s, rank, i, t)
        ch = _int_field(e, "channels", i, t)
        p = _int_field(e, "patch", i, t)
        for axis, n in zip(("T",) if rank == 2 else ("H", "W"), s[1:], strict=True):
            if n % p:
                raise _err(i, t, f"input {axis}={n} does not divide by field 'patch'={p}")
        fan_in = s[0] * p ** (rank - 1)
        if ch > fan_in:
            square = "^2" if rank == 3 else ""
            raise _err(i, t, f"field 'channels'={ch} exceeds patch fan-in {fan_in} "
                             f"(C_in * patch{square}); the layer must not expand")
        return {"channels": ch, "patch": p}, (ch, *(n // p for n in s[1:]))

    return infer


def _leaky_relu(e: Mapping[str, Any], s: Shape, i: int, t: str) -> tuple[dict[str, Any], Shape]:
    slope = e.get("negative_slope", 0.5)
    if isinstance(slope, bool) or not isinstance(slope, int | float) or not slope > 0:
        raise _err(i, t, f"field 'negative_slope'={slope!r} is not allowed; use a float > 0 "
                         "(slope 0 is 'relu')")
    return {"negative_slope": float(slope)}, s


def _no_fields(e: Mapping[str, Any], s: Shape, i: int, t: str) -> tuple[dict[str, Any], Shape]:
    return {}, s


def _linear(e: Mapping[str, Any], s: Shape, i: int, t: str) -> tuple[dict[str, Any], Shape]:
    _need_rank(s, 1, i, t)
    features = _int_field(e, "features", i, t)
    return {"features": features}, (features,)


def _flatten(e: Mapping[str, Any], s: Shape, i: int, t: str) -> tuple[dict[str, Any], Shape]:
    return {}, (math.prod(s),)


def _pool(e: Mapping[str, Any], s: Shape, i: int, t: str) -> tuple[dict[str, Any], Shape]:
    if len(s) not in (2, 3):
        raise _err(i, t, f"input shape {list(s)} must be [C, T] or [C, H, W]")
    size = _int_field(e, "size", i, t)
    for n in s[1:]:
        if n % size:
            raise _err(i, t, f"input shape {list(s)} does not divide by field 'size'={size}")
    return {"size": size}, (s[0], *(n // size for n in s[1:]))


def _revnet(e: Mapping[str, Any], s: Shape, i: int, t: str) -> tuple[dict[str, Any], Shape]:
    if len(s) not in (2, 3):
        raise _err(i, t, f"input shape {list(s)} must be [C, T] or [C, H, W]")
    if s[0] % 2:
        raise _err(i, t, f"input channels {s[0]} must be even (split into two halves)")
    hidden = _int_field(e, "hidden", i, t)
    k = _int_field(e, "kernel_size", i, t)
    if k % 2 == 0:
        raise _err(i, t, f"field 'kernel_size'={k} must be odd ('same' padding)")
    return {"hidden": hidden, "kernel_size": k}, s


VARIANTS: dict[str, tuple[str, ...]] = {
    "conv2d": CONV2D_MODES,
    "stem": ("1d", "2d"),
    "linear": ("surjective", "expanding"),
}
"""Types built by one layer class per variant (:attr:`LayerSpec.variant`)."""

LAYER_TYPES: dict[str, Callable[..., tuple[dict[str, Any], Shape]]] = {
    "stem": _stem,
    "causal_conv1d": _causal_conv1d,
    "conv2d": _conv2d,
    "patch_conv1d": _patch(2),
    "patch_conv2d": _patch(3),
    "leaky_relu": _leaky_relu,
    "relu": _no_fields,
    "linear": _linear,
    "flatten": _flatten,
    "avg_pool": _pool,
    "max_pool": _pool,
    "revnet_coupling": _revnet,
}


def layer_kinds() -> set[tuple[str, str | None]]:
    """Every (type, variant) a backend must build: one layer class each."""
    return {(t, v) for t in LAYER_TYPES for v in VARIANTS.get(t, (None,))}


def _read(description: str | Path) -> Any:
    """A :class:`~pathlib.Path` is a file; a string is a file when one exists by that name, and
    YAML (JSON is YAML) text otherwise."""
    if isinstance(description, Path):
        with open(description) as f:
            return yaml.safe_load(f)
    try:
        is_file = Path(description).is_file()
    except (OSError, ValueError):  # too long or not a valid name: text
        is_file = False
    if is_file:
        with open(description) as f:
            return yaml.safe_load(f)
    try:
        parsed = yaml.safe_load(description)
    except yaml.YAMLError as e:
        raise ValueError(f"architecture {description[:80]!r} is neither an existing file nor "
                         f"valid YAML: {e}") from None
    if not isinstance(parsed, Mapping):
        raise ValueError(f"architecture {description[:80]!r} is neither an existing file nor a "
                         "YAML mapping with 'input_shape' and 'layers'")
    return parsed


def load(description: Mapping[str, Any] | str | Path) -> ArchSpec:
    """Validate an architecture description: a dict, YAML (or JSON) text, or a file path.

    A ``str`` is read as a file when a file by that name exists, and as YAML text otherwise;
    a :class:`~pathlib.Path` is always a file.

    Raises:
        ValueError: naming the layer index, the field and what is allowed.
    """
    if isinstance(description, str | Path):
        description = _read(description)
    if not isinstance(description, Mapping):
        raise ValueError(f"architecture must be a mapping, got {type(description).__name__}")
    unknown = set(description) - {"input_shape", "layers"}
    if unknown:
        raise ValueError(f"architecture has unknown keys {sorted(unknown)}; "
                         "allowed: 'input_shape', 'layers'")
    shape = description.get("input_shape")
    if (not isinstance(shape, list | tuple) or len(shape) not in (1, 2, 3)
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in shape)):
        raise ValueError(f"input_shape={shape!r} is not allowed; use [C, T] or [C, H, W] "
                         "with positive ints (per example, no batch axis)")
    entries = description.get("layers")
    if not isinstance(entries, list | tuple) or not entries:
        raise ValueError("architecture needs a non-empty list 'layers'")
    current: Shape = tuple(shape)
    layers = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or "type" not in entry:
            raise ValueError(f"layer {i}: each layer is a mapping with a 'type' field")
        t = entry["type"]
        if t not in LAYER_TYPES:
            raise ValueError(f"layer {i}: unknown type {t!r}; allowed: {sorted(LAYER_TYPES)}")
        fields, out = LAYER_TYPES[t](entry, current, i, t)
        extra = set(entry) - {"type"} - set(fields)
        if extra:
            raise _err(i, t, f"unknown field(s) {sorted(extra)}; allowed: {sorted(fields)}")
        layers.append(LayerSpec(i, t, fields, current, out))
        current = out
    return ArchSpec(tuple(shape), tuple(layers), raw=dict(description))


def causal_conv_net(depth: int, *, channels: int = 64, in_channels: int = 1, length: int = 1024,
                    kernel_size: int = 3, dilation: int = 1, activation: str = "leaky_relu",
                    negative_slope: float = 0.5, patch: int = 8, head_channels: int | None = None,
                    classes: int = 10) -> ArchSpec:
    """The 1D family of the paper's experiments: stem, ``depth`` x (causal conv + activation),
    patch conv, flatten, linear head."""
    act: dict[str, Any] = ({"type": "relu"} if activation == "relu"
                           else {"type": "leaky_relu", "negative_slope": negative_slope})
    layers: list[dict[str, Any]] = [
        {"type": "stem", "channels": channels, "kernel_size": kernel_size}]
    for _ in range(depth):
        layers += [{"type": "causal_conv1d", "kernel_size": kernel_size, "dilation": dilation}, act]
    head = head_channels or channels
    layers += [{"type": "patch_conv1d", "channels": head, "patch": patch}, act,
               {"type": "flatten"}, {"type": "linear", "features": classes}]
    return load({"input_shape": [in_channels, length], "layers": layers})


def conv2d_net(depth: int, *, channels: int = 32, in_channels: int = 3, size: int = 32,
               kernel_size: int = 3, mode: str = "masked", activation: str = "leaky_relu",
               negative_slope: float = 0.5, patch: int = 4, classes: int = 10) -> ArchSpec:
    """The 2D family: stem, ``depth`` x (conv2d + activation), patch conv, flatten, linear."""
    act: dict[str, Any] = ({"type": "relu"} if activation == "relu"
                           else {"type": "leaky_relu", "negative_slope": negative_slope})
    layers: list[dict[str, Any]] = [
        {"type": "stem", "channels": channels, "kernel_size": kernel_size}]
    for _ in range(depth):
        layers += [{"type": "conv2d", "kernel_size": kernel_size, "mode": mode}, act]
    layers += [{"type": "patch_conv2d", "channels": channels, "patch": patch}, act,
               {"type": "flatten"}, {"type": "linear", "features": classes}]
    return load({"input_shape": [in_channels, size, size], "layers": layers})


def revnet(depth: int, *, channels: int = 16, size: int = 16, hidden: int = 16,
           kernel_size: int = 3, classes: int = 10) -> ArchSpec:
    """A RevNet: ``depth`` coupling blocks on [channels, size, size], pooled, linear head."""
    layers: list[dict[str, Any]] = [
        {"type": "revnet_coupling", "hidden": hidden, "kernel_size": kernel_size}
        for _ in range(depth)
    ]
    layers += [{"type": "avg_pool", "size": size}, {"type": "flatten"},
               {"type": "linear", "features": classes}]
    return load({"input_shape": [channels, size, size], "layers": layers})
