"""Moonwalk on a user's own Equinox ``eqx.nn.Sequential``: :func:`from_module`, :func:`to_module`.

The mirror of the torch backend's conversion. ``from_module`` reads the standard Equinox
modules of a sequential model (which act on one example; the user ``jax.vmap``s them), writes
the architecture description they amount to, and returns a Moonwalk model whose parameters are
the user's arrays (conv biases reshaped from (C, 1...) to (C,)). JAX arrays are immutable, so
gradients cannot land "on" the user's model: :func:`grads_to_module` maps the Moonwalk gradient
dict back onto the user's model structure, the same pytree ``eqx.filter_grad`` returns, which
``optax`` and ``eqx.apply_updates`` take as they are. :func:`module_value_and_grad` does the
three steps in one call and is ``eqx.filter_jit``-compatible (the conversion runs at trace time).

A module without an exact inverse-forward step raises ``ValueError`` naming the module, its
position and the reason (``docs/user-models.md`` lists them).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from .. import arch as arch_module
from ..methods import Method, Moonwalk
from ._api import value_and_grad
from ._model import DTYPES, MoonwalkModel, build

__all__ = ["RasterMask", "from_module", "grads_to_module", "module_value_and_grad",
           "to_module", "raster_mask"]

Shape = tuple[int, ...]
Path = tuple[int, ...]


def raster_mask(kernel_size: int) -> np.ndarray:
    """(k, k) bool: the taps before the centre (k // 2, k // 2) in raster order, and the centre
    (PixelCNN's "type B" mask)."""
    p = kernel_size // 2
    rows, cols = np.arange(kernel_size)[:, None], np.arange(kernel_size)[None, :]
    return (rows < p) | ((rows == p) & (cols <= p))


class RasterMask(eqx.Module):
    """An ``eqx.nn.Conv2d`` whose kernel is masked in raster order (the masked conv Moonwalk
    inverts by substitution, docs/conv2d.md): ``RasterMask(eqx.nn.Conv2d(C, C, 3, padding=1,
    key=key))``. The taps outside the mask get zero gradient, as in the Moonwalk layer."""

    conv: eqx.nn.Conv2d

    def __call__(self, x: Array, *, key: Any = None) -> Array:
        del key
        w = self.conv.weight
        mask = jnp.asarray(raster_mask(w.shape[-1]), dtype=w.dtype)
        return eqx.tree_at(lambda c: c.weight, self.conv, w * mask[None, None])(x)


SUPPORTED = ("Conv1d (causal padding ((k-1)*d, 0); stride = kernel for a patch conv), Conv2d "
             "(in RasterMask or padding_mode='CIRCULAR'; stride = kernel for a patch conv), "
             "Linear, Lambda(jax.nn.relu), Lambda(jax.nn.leaky_relu or a functools.partial of "
             "it), Lambda(jnp.ravel), AvgPool1d/2d, MaxPool1d/2d, Identity, nested Sequential")
NORMALIZATION = tuple(getattr(eqx.nn, n) for n in ("LayerNorm", "GroupNorm", "BatchNorm",
                                                     "RMSNorm") if hasattr(eqx.nn, n))
POOLS: dict[type, tuple[str, int]] = {
    eqx.nn.AvgPool1d: ("avg_pool", 1), eqx.nn.AvgPool2d: ("avg_pool", 2),
    eqx.nn.MaxPool1d: ("max_pool", 1), eqx.nn.MaxPool2d: ("max_pool", 2),
}


@dataclass
class _Layer:
    """One architecture entry; where the user's arrays for it live (path of Sequential indices,
    attribute chain), None for a missing bias."""

    entry: dict[str, Any]
    params: dict[str, tuple[Path, str] | None]
    where: str


def _refuse(where: str, module: Any, why: str) -> ValueError:
    text = type(module).__name__
    if isinstance(module, eqx.nn.Lambda):
        text = f"Lambda({getattr(module.fn, '__name__', repr(module.fn))})"
    return ValueError(f"from_module: module {where} ({text}) cannot run under Moonwalk: {why}")


def _walk(module: eqx.nn.Sequential, path: Path) -> Iterator[tuple[Path, Any]]:
    for i, child in enumerate(module.layers):
        if type(child) is eqx.nn.Sequential:
            yield from _walk(child, (*path, i))
        elif type(child) is not eqx.nn.Identity:
            yield (*path, i), child


def _where(path: Path) -> str:
    return ".".join(map(str, path))


def _pads(conv: Any) -> tuple[tuple[int, int], ...]:
    """Per spatial axis (low, high) padding of an Equinox conv."""
    if isinstance(conv.padding, str):
        pads = []
        for k, d in zip(conv.kernel_size, conv.dilation, strict=True):
            total = (k - 1) * d
            low = {"VALID": 0, "SAME": total // 2, "SAME_LOWER": total - total // 2}[
                conv.padding.upper()]
            pads.append((low, total - low) if conv.padding.upper() != "VALID" else (0, 0))
        return tuple(pads)
    return tuple((int(lo), int(hi)) for lo, hi in conv.padding)


def _read_conv(where: str, conv: Any, masked: bool, shape: Shape, first: bool
               ) -> dict[str, Any]:
    rank = conv.num_spatial_dims
    if len(shape) != rank + 1:
        raise _refuse(where, conv, f"it receives per-example shape {list(shape)}; it needs "
                      f"{'[C, T]' if rank == 1 else '[C, H, W]'}")
    c_in, c_out = conv.in_channels, conv.out_channels
    if c_in != shape[0]:
        raise _refuse(where, conv, f"in_channels={c_in} but its input has {shape[0]} channels")
    if conv.groups != 1:
        raise _refuse(where, conv, f"groups={conv.groups}: only groups=1 is supported")
    k, s, d = conv.kernel_size, conv.stride, conv.dilation
    if len(set(k)) != 1 or len(set(s)) != 1 or len(set(d)) != 1:
        raise _refuse(where, conv, f"non-square kernel_size={k}, stride={s} or dilation={d}")
    k, s, d = k[0], s[0], d[0]
    pads, mode = _pads(conv), getattr(conv, "padding_mode", "ZEROS").upper()
    padded = any(lo or hi for lo, hi in pads)
    if s == k and s > 1:
        if padded or d != 1 or masked:
            raise _refuse(where, conv, f"a stride = kernel = {k} conv (a patch conv) must have "
                          "no padding, dilation 1 and no mask")
        return {"type": f"patch_conv{rank}d", "channels": c_out, "patch": k}
    if s != 1:
        raise _refuse(where, conv, f"stride={s} with kernel_size={k}: only stride 1 or stride "
                      "= kernel_size (a patch conv) have an exact inverse-forward step")
    if c_out < c_in:
        raise _refuse(where, conv, f"a stride-1 conv narrowing {c_in} -> {c_out} channels has "
                      "no exact inverse; narrow with stride = kernel_size (a patch conv) or a "
                      "Linear")
    expanding = c_out > c_in
    if expanding and not first:
        raise _refuse(where, conv, f"an expanding conv ({c_in} -> {c_out} channels) that is not "
                      "the stem: only the first conv of the model may expand (its whole output "
                      "cotangent is stored); elsewhere the Jacobian is not surjective")
    if rank == 1:
        need = ((k - 1) * d, 0)
        if pads[0] != need or mode != "ZEROS":
            why = ("symmetric or right padding lets the conv see later time steps"
                   if pads[0][1] else f"{mode} padding {pads[0]} is not causal")
            raise _refuse(where, conv, f"{why}; a causal conv with kernel_size={k}, dilation={d} "
                          f"needs padding=(({need[0]}, 0),) and padding_mode='ZEROS'")
        if expanding:
            if d != 1:
                raise _refuse(where, conv, f"the stem (first, expanding conv) with dilation={d}: "
                              "only dilation 1 is supported there")
            return {"type": "stem", "channels": c_out, "kernel_size": k}
        return {"type": "causal_conv1d", "kernel_size": k, "dilation": d}
    if d != 1:
        raise _refuse(where, conv, f"dilation={d}: 2D convs are supported with dilation 1 only")
    p = k // 2
    if pads != ((p, k - 1 - p),) * 2:
        raise _refuse(where, conv, f"padding {pads}: a stride-1 conv2d needs "
                      f"(({p}, {k - 1 - p}), ({p}, {k - 1 - p}))")
    if expanding:
        if masked or mode != "ZEROS":
            raise _refuse(where, conv, "the stem (first, expanding conv2d) must be unmasked with "
                          "zero padding")
        return {"type": "stem", "channels": c_out, "kernel_size": k}
    if masked:
        if mode != "ZEROS":
            raise _refuse(where, conv, f"a RasterMask conv2d with {mode} padding: the masked "
                          "conv is inverted by substitution from the image's far corner, which "
                          "needs zero padding")
        return {"type": "conv2d", "kernel_size": k, "mode": "masked"}
    if mode == "CIRCULAR":
        return {"type": "conv2d", "kernel_size": k, "mode": "circular"}
    raise _refuse(where, conv, f"a full (unmasked) conv2d with {mode} padding has no exact "
                  "inverse here; wrap it in RasterMask or use padding_mode='CIRCULAR'")


def _read_lambda(where: str, m: eqx.nn.Lambda) -> dict[str, Any]:
    fn = m.fn
    if fn is jax.nn.relu:
        return {"type": "relu"}
    if fn is jnp.ravel:
        return {"type": "flatten"}
    slope = None
    if fn is jax.nn.leaky_relu:
        slope = 0.01  # jax.nn.leaky_relu's default
    elif isinstance(fn, functools.partial) and fn.func is jax.nn.leaky_relu:
        if fn.args or set(fn.keywords) - {"negative_slope"}:
            raise _refuse(where, m, "use functools.partial(jax.nn.leaky_relu, "
                          "negative_slope=s) with the slope as its only keyword")
        slope = fn.keywords.get("negative_slope", 0.01)
    if slope is None:
        raise _refuse(where, m, f"no Moonwalk layer for this function; supported: {SUPPORTED}")
    if not slope > 0:
        raise _refuse(where, m, f"negative_slope={slope}: its inverse divides by the slope, so "
                      "it must be > 0 (use jax.nn.relu for slope 0)")
    return {"type": "leaky_relu", "negative_slope": float(slope)}


def _read_pool(where: str, pool: Any, rank: int, shape: Shape) -> int:
    k, s = tuple(pool.kernel_size), tuple(pool.stride)
    if len(set(k)) != 1 or k != s or any(lo or hi for lo, hi in pool.padding) or pool.use_ceil:
        raise _refuse(where, pool, "only non-overlapping pooling (square window, stride = "
                      "kernel_size, no padding, use_ceil=False) has an exact inverse-forward step")
    if len(shape) != rank + 1:
        raise _refuse(where, pool, f"it receives per-example shape {list(shape)}; it needs "
                      f"{'[C, T]' if rank == 1 else '[C, H, W]'}")
    return k[0]


def _read(module: eqx.nn.Sequential, input_shape: Shape) -> list[_Layer]:
    layers: list[_Layer] = []
    shape = input_shape
    for path, m in _walk(module, ()):
        where = _where(path)
        params: dict[str, tuple[Path, str] | None] = {}
        cls = type(m)
        if cls in (eqx.nn.Conv1d, eqx.nn.Conv2d) or (
                cls is RasterMask and type(m.conv) is eqx.nn.Conv2d):
            masked = cls is RasterMask
            conv, prefix = (m.conv, "conv.") if masked else (m, "")
            first = not any(layer.params for layer in layers)
            entry = _read_conv(where, conv, masked, shape, first)
            params = {"weight": (path, f"{prefix}weight"),
                      "bias": (path, f"{prefix}bias") if conv.use_bias else None}
        elif cls is eqx.nn.Linear:
            if len(shape) != 1:
                raise _refuse(where, m, f"it receives per-example shape {list(shape)}; put "
                              "eqx.nn.Lambda(jnp.ravel) before it")
            if m.in_features != shape[0]:
                raise _refuse(where, m, f"in_features={m.in_features} but its input has "
                              f"{shape[0]} features")
            entry = {"type": "linear", "features": m.out_features}
            params = {"weight": (path, "weight"), "bias": (path, "bias") if m.use_bias else None}
        elif cls is eqx.nn.Lambda:
            entry = _read_lambda(where, m)
        elif cls in POOLS:
            kind, rank = POOLS[cls]
            entry = {"type": kind, "size": _read_pool(where, m, rank, shape)}
        elif isinstance(m, NORMALIZATION):
            raise _refuse(where, m, "normalization has no exact inverse-forward step: it "
                          "discards each group's mean and scale (and batch statistics couple the "
                          "examples); remove it or train this model with jax.grad")
        elif isinstance(m, eqx.nn.Dropout):
            raise _refuse(where, m, "dropout is random: Moonwalk recomputes the forward pass "
                          "and would draw a different mask; remove it")
        elif isinstance(m, eqx.nn.PReLU):
            raise _refuse(where, m, "a learnable slope has no Moonwalk layer; use "
                          "functools.partial(jax.nn.leaky_relu, negative_slope=s)")
        else:
            raise _refuse(where, m, f"no Moonwalk layer for {cls.__name__}; supported: "
                          f"{SUPPORTED}")
        try:
            _, out = arch_module.LAYER_TYPES[entry["type"]](entry, shape, len(layers),
                                                            entry["type"])
        except ValueError as e:
            raise _refuse(where, m, str(e)) from None
        layers.append(_Layer(entry, params, where))
        shape = out
    if not layers:
        raise ValueError("from_module: the model has no layers Moonwalk could run")
    return layers


def _get(module: Any, path: Path, attr: str) -> Any:
    for i in path:
        module = module.layers[i]
    for name in attr.split("."):
        module = getattr(module, name)
    return module


def _dtype(module: Any) -> Any:
    dtypes = {a.dtype for a in jax.tree_util.tree_leaves(eqx.filter(module, eqx.is_inexact_array))}
    if len(dtypes) > 1:
        raise ValueError(f"from_module: arrays have dtypes {sorted(map(str, dtypes))}; use one")
    dtype = jnp.dtype(dtypes.pop()) if dtypes else jnp.dtype(jnp.float32)
    if dtype not in {jnp.dtype(v) for v in DTYPES.values()}:
        raise ValueError(f"from_module: arrays are {dtype}; Moonwalk runs in float32, float64 "
                         "or bfloat16")
    return dtype


def from_module(module: eqx.nn.Sequential, input_shape: Sequence[int]) -> MoonwalkModel:
    """A Moonwalk model that computes what ``jax.vmap(module)`` computes, on the same arrays.

    Args:
        module: an ``eqx.nn.Sequential`` (nested ones are flattened) of the modules listed in
            ``docs/user-models.md``: ``eqx.nn.Conv1d`` with causal padding
            ``padding=(((k-1)*d, 0),)`` (the first conv may expand channels: the stem);
            ``eqx.nn.Conv2d`` with padding ``k // 2`` wrapped in :class:`RasterMask` (zero
            padding) or with ``padding_mode="CIRCULAR"``; a conv with ``stride == kernel_size``
            (a patch conv); ``eqx.nn.Linear``; ``eqx.nn.Lambda`` of ``jax.nn.relu``,
            ``jax.nn.leaky_relu`` (or ``functools.partial(jax.nn.leaky_relu,
            negative_slope=s)``) and ``jnp.ravel``; non-overlapping ``eqx.nn.AvgPool*d`` /
            ``eqx.nn.MaxPool*d``.
        input_shape: one example's shape, ``[C, T]`` or ``[C, H, W]``.

    Returns:
        A :class:`MoonwalkModel` on the module's arrays (a missing bias becomes zeros). Map
        its gradients back with :func:`grads_to_module`.

    Raises:
        ValueError: naming the module, its position and why Moonwalk cannot invert it.
    """
    if not isinstance(module, eqx.nn.Sequential):
        raise ValueError(f"from_module: expected an eqx.nn.Sequential, got "
                         f"{type(module).__name__}")
    shape = tuple(int(n) for n in input_shape)
    layers = _read(module, shape)
    dtype = _dtype(module)
    spec = arch_module.load({"input_shape": list(shape), "layers": [ly.entry for ly in layers]})
    # the layers' structure without computing any weights: every array leaf is replaced below
    skeleton = jax.eval_shape(functools.partial(build, spec, dtype=dtype, init="default"))
    shapes = {k: v.shape for k, v in skeleton.parameters().items()}
    params: dict[str, Array] = {}
    for i, layer in enumerate(layers):
        for name, where in layer.params.items():
            key = f"layers.{i}.{name}"
            if where is None:
                params[key] = jnp.zeros(shapes[key], dtype=dtype)
                continue
            value = _get(module, *where)
            if value.size != int(np.prod(shapes[key])):
                raise ValueError(f"from_module: module {layer.where}: {name} has shape "
                                 f"{value.shape} but the Moonwalk layer needs {shapes[key]}")
            params[key] = value.reshape(shapes[key])
    model = skeleton.with_parameters(params)
    if any(isinstance(leaf, jax.ShapeDtypeStruct) for leaf in jax.tree_util.tree_leaves(model)):
        raise AssertionError("from_module: a layer holds arrays that are not parameters")
    return model


def _param_arrays(module: eqx.nn.Sequential) -> Iterator[tuple[str, Path, str]]:
    """(Moonwalk parameter name, path, attribute) of each user array ``from_module`` shares:
    every module Moonwalk reads is one layer, so layer i is the i-th module walked."""
    for i, (path, m) in enumerate(_walk(module, ())):
        prefix = "conv." if isinstance(m, RasterMask) else ""
        inner = m.conv if isinstance(m, RasterMask) else m
        if isinstance(inner, eqx.nn.Conv1d | eqx.nn.Conv2d | eqx.nn.Linear):
            yield f"layers.{i}.weight", path, f"{prefix}weight"
            if inner.use_bias:
                yield f"layers.{i}.bias", path, f"{prefix}bias"


def grads_to_module(module: eqx.nn.Sequential, grads: dict[str, Array]) -> Any:
    """The Moonwalk gradients of ``from_module(module, ...)`` laid out like ``module``.

    Returns the pytree ``eqx.filter_grad`` would return for ``module``: the module's structure
    with each floating array replaced by its gradient (reshaped to the user's shape, e.g. a
    conv bias's (C, 1)) and every other leaf None. Apply it with
    ``updates, state = optimizer.update(g, state, eqx.filter(module, eqx.is_array))`` and
    ``module = eqx.apply_updates(module, updates)`` (optax), or ``eqx.apply_updates`` directly.
    """
    arrays = eqx.filter(module, eqx.is_inexact_array)
    getters: list[Callable[[Any], Any]] = []
    values: list[Array] = []
    for key, path, attr in _param_arrays(module):
        getters.append(functools.partial(_get, path=path, attr=attr))
        values.append(grads[key].reshape(_get(module, path, attr).shape))
    return eqx.tree_at(lambda t: [get(t) for get in getters], arrays, values)


def _with_arrays(make: Callable[[], Any], weight: Array, bias: Array, masked: bool = False
                 ) -> Any:
    """An Equinox conv or linear built without computing its init, holding ``weight``/``bias``."""
    skeleton = jax.eval_shape(make)
    bias = bias.reshape(skeleton.bias.shape)
    module = eqx.tree_at(lambda m: (m.weight, m.bias), skeleton, (weight, bias))
    return RasterMask(module) if masked else module


def _plain_module(ls: arch_module.LayerSpec, params: dict[str, Array]) -> Any:
    t, c_in, rank = ls.type, ls.in_shape[0], len(ls.in_shape) - 1
    c_out = ls.out_shape[0]
    key = jax.random.key(0)  # only for the skeleton's shapes: no weights are drawn
    conv = eqx.nn.Conv1d if rank == 1 else eqx.nn.Conv2d
    weight, bias = params.get(f"layers.{ls.index}.weight"), params.get(f"layers.{ls.index}.bias")
    if t in ("stem", "causal_conv1d") and rank == 1:
        k, d = ls["kernel_size"], ls.fields.get("dilation", 1)
        return _with_arrays(lambda: conv(c_in, c_out, k, dilation=d,
                                         padding=(((k - 1) * d, 0),), key=key), weight, bias)
    if t in ("stem", "conv2d"):
        k = ls["kernel_size"]
        p = k // 2
        circular = t == "conv2d" and ls["mode"] == "circular"
        return _with_arrays(lambda: conv(c_in, c_out, k, padding=((p, k - 1 - p),) * 2,
                                         padding_mode="CIRCULAR" if circular else "ZEROS",
                                         key=key),
                            weight, bias, masked=t == "conv2d" and not circular)
    if t in ("patch_conv1d", "patch_conv2d"):
        p = ls["patch"]
        return _with_arrays(lambda: conv(c_in, c_out, p, stride=p, key=key), weight, bias)
    if t == "linear":
        return _with_arrays(lambda: eqx.nn.Linear(c_in, c_out, key=key), weight, bias)
    if t == "relu":
        return eqx.nn.Lambda(jax.nn.relu)
    if t == "leaky_relu":
        return eqx.nn.Lambda(functools.partial(jax.nn.leaky_relu,
                                               negative_slope=ls["negative_slope"]))
    if t == "flatten":
        return eqx.nn.Lambda(jnp.ravel)
    if t in ("avg_pool", "max_pool"):
        cls = {("avg_pool", 1): eqx.nn.AvgPool1d, ("avg_pool", 2): eqx.nn.AvgPool2d,
               ("max_pool", 1): eqx.nn.MaxPool1d, ("max_pool", 2): eqx.nn.MaxPool2d}[t, rank]
        return cls(ls["size"], ls["size"])
    raise ValueError(f"to_module: layer {ls.index} ({t}) has no plain Equinox module equivalent")


def to_module(model: MoonwalkModel) -> eqx.nn.Sequential:
    """Plain Equinox modules computing what ``model`` computes (per example: ``jax.vmap`` it),
    on the model's arrays: the inverse of :func:`from_module`, and the ``jax.grad`` baseline
    with the same weights.

    Raises:
        ValueError: when the model has no architecture description or a layer (a RevNet
            coupling) has no plain Equinox equivalent.
    """
    if model.spec is None:
        raise ValueError("to_module: the model has no architecture description (build it with "
                         "moonwalk_core.jax.build or from_module)")
    params = model.parameters()
    return eqx.nn.Sequential([_plain_module(ls, params) for ls in model.spec.layers])


def module_value_and_grad(module: eqx.nn.Sequential, loss_fn: Callable[[Array, Array], Array],
                          x: Array, y: Array, *, method: Method = Moonwalk()
                          ) -> tuple[Array, Any]:
    """``(loss, grads)`` of ``loss_fn(jax.vmap(module)(x), y)`` by ``method``, with ``grads``
    laid out like ``module`` (see :func:`grads_to_module`): a drop-in for
    ``eqx.filter_value_and_grad(lambda m, x, y: loss_fn(jax.vmap(m)(x), y))(module, x, y)``.
    Works eagerly and under ``eqx.filter_jit``."""
    model = from_module(module, x.shape[1:])
    loss, grads = value_and_grad(model, loss_fn, x, y, method=method)
    return loss, grads_to_module(module, grads)
