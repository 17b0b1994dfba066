"""Moonwalk on a user's own ``nn.Sequential``: :func:`from_module` and :func:`to_module`.

``from_module`` reads the standard modules of a sequential model, writes the architecture
description they amount to (see :mod:`moonwalk_core.arch`), ``build``s it and then hands every
built layer the user's own ``nn.Parameter`` objects. The Moonwalk model and the user's model
therefore share their parameters: an optimizer created on the user's model keeps working,
``moonwalk_core.torch.backward`` writes ``.grad`` onto the user's parameters, and ``optimizer.step``
changes both models at once. Only the public API is used (descriptions, ``build``, parameter
names), so the layers' internals are free to change.

A module without an exact inverse-forward step raises ``ValueError`` naming the module, its
position and the reason; nothing is ever replaced silently. The supported modules and the
reasons for each refusal are tabulated in ``docs/user-models.md``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from .. import arch as arch_module
from ._model import DTYPES, MoonwalkModel, build

__all__ = ["RasterMask", "from_module", "to_module", "raster_mask"]

Shape = tuple[int, ...]


def raster_mask(kernel_size: int, *, like: Tensor) -> Tensor:
    """(k, k) 0/1 mask of the taps before the centre (k // 2, k // 2) in raster order, and the
    centre itself (PixelCNN's "type B" mask), with ``like``'s dtype and device."""
    p = kernel_size // 2
    rows = torch.arange(kernel_size, device=like.device)[:, None]
    cols = torch.arange(kernel_size, device=like.device)[None, :]
    return ((rows < p) | ((rows == p) & (cols <= p))).to(like.dtype)


class RasterMask(nn.Module):
    """Parametrization that masks a square ``nn.Conv2d`` kernel in raster order.

    Register it on a C -> C, stride-1 conv with zero padding ``k // 2`` to get the masked conv
    Moonwalk inverts by substitution (docs/conv2d.md)::

        conv = nn.Conv2d(C, C, 3, padding=1)
        torch.nn.utils.parametrize.register_parametrization(conv, "weight", RasterMask())

    The trained parameter is ``conv.parametrizations.weight.original``; the taps outside the mask
    get zero gradient, exactly as in the Moonwalk layer.
    """

    def forward(self, weight: Tensor) -> Tensor:
        return weight * raster_mask(weight.shape[-1], like=weight)


# -- reading the user's modules ------------------------------------------------------------------

PAD_MODULES: dict[type, str] = {
    nn.ConstantPad1d: "constant", nn.ZeroPad1d: "constant",
    nn.ConstantPad2d: "constant", nn.ZeroPad2d: "constant",
    nn.CircularPad1d: "circular", nn.CircularPad2d: "circular",
    nn.ReflectionPad1d: "reflect", nn.ReflectionPad2d: "reflect",
    nn.ReplicationPad1d: "replicate", nn.ReplicationPad2d: "replicate",
}
NORMALIZATION = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm1d,
                 nn.InstanceNorm2d, nn.LocalResponseNorm, nn.RMSNorm)
DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout)
POOLS: dict[type, tuple[str, int]] = {
    nn.AvgPool1d: ("avg_pool", 1), nn.AvgPool2d: ("avg_pool", 2),
    nn.MaxPool1d: ("max_pool", 1), nn.MaxPool2d: ("max_pool", 2),
}
SUPPORTED = ("Conv1d (causal, after a left pad; stride = kernel for a patch conv), Conv2d "
             "(RasterMask or padding_mode='circular'; stride = kernel for a patch conv), "
             "Linear, ReLU, LeakyReLU, Flatten, AvgPool1d/2d, MaxPool1d/2d, Identity, "
             "nested Sequential")


@dataclass
class _Pad:
    """A padding module waiting for the conv it pads: widths in F.pad order."""

    widths: tuple[int, ...]
    mode: str
    value: float
    where: str
    module: nn.Module


@dataclass
class _Layer:
    """One architecture entry, the user's tensors it takes and where it came from."""

    entry: dict[str, Any]
    params: dict[str, nn.Parameter | None]
    where: str


def _refuse(where: str, module: nn.Module, why: str) -> ValueError:
    return ValueError(f"from_module: module {where} ({_short(module)}) cannot run under "
                      f"Moonwalk: {why}")


def _short(module: nn.Module) -> str:
    text = repr(module).replace("\n", " ")
    return text if len(text) <= 120 else text[:117] + "..."


def _base_type(module: nn.Module) -> type:
    """The module's class, seen through torch.nn.utils.parametrize's generated subclass."""
    cls = type(module)
    return cls.__bases__[0] if parametrize.is_parametrized(module) else cls


def _walk(module: nn.Module, prefix: str) -> Iterator[tuple[str, nn.Module]]:
    for name, child in module.named_children():
        where = f"{prefix}{name}"
        if type(child) is nn.Sequential:
            yield from _walk(child, f"{where}.")
        elif type(child) is not nn.Identity:
            yield where, child


def _check_plain(where: str, module: nn.Module) -> None:
    """No hooks and no parametrization but RasterMask on a Conv2d weight."""
    hooks = (module._forward_hooks, module._forward_pre_hooks,  # noqa: SLF001
             module._backward_hooks, module._backward_pre_hooks)  # noqa: SLF001
    if any(hooks):
        raise _refuse(where, module, "it has hooks (e.g. the old torch.nn.utils.weight_norm), "
                      "which Moonwalk's phases would not run; remove them")
    if not parametrize.is_parametrized(module):
        return
    for tensor, plist in module.parametrizations.items():
        kinds = [type(p) for p in plist]
        if not (_base_type(module) is nn.Conv2d and tensor == "weight" and kinds == [RasterMask]):
            names = ", ".join(k.__name__ for k in kinds)
            raise _refuse(where, module, f"parametrization [{names}] on {tensor!r}: the only "
                          "one Moonwalk knows is a single RasterMask on an nn.Conv2d weight")


def _conv_padding(where: str, conv: nn.Conv1d | nn.Conv2d, pad: _Pad | None,
                  rank: int) -> tuple[tuple[int, ...], str]:
    """Effective (F.pad-order widths, mode) of a conv and the pad module before it."""
    if pad is not None:
        if conv.padding not in ("valid", (0,) * rank):
            raise _refuse(where, conv, f"it is padded twice (by the pad module {pad.where} and by "
                          f"padding={conv.padding}); keep one")
        if pad.mode == "constant" and pad.value != 0:
            raise _refuse(pad.where, conv, f"padding with the value {pad.value}: only zero "
                          "padding is supported")
        return pad.widths, pad.mode
    if conv.padding == "valid":
        return (0,) * 2 * rank, "constant"
    k = conv.kernel_size
    if conv.padding == "same":
        # torch pads (k-1)//2 before and the rest after, per axis (dilation 1)
        sizes = [((kk - 1) * d // 2, (kk - 1) * d - (kk - 1) * d // 2)
                 for kk, d in zip(k, conv.dilation, strict=True)]
    else:
        sizes = [(p, p) for p in conv.padding]
    widths = tuple(w for pair in reversed(sizes) for w in pair)  # F.pad: last axis first
    mode = {"zeros": "constant"}.get(conv.padding_mode, conv.padding_mode)
    return widths, mode


def _read_conv(where: str, conv: nn.Conv1d | nn.Conv2d, rank: int, pad: _Pad | None,
               shape: Shape, first_param_layer: bool) -> dict[str, Any]:
    """The architecture entry of a Conv1d (rank 1) or Conv2d (rank 2), or a ValueError."""
    if len(shape) != rank + 1:
        raise _refuse(where, conv, f"it receives per-example shape {list(shape)}; an "
                      f"nn.Conv{rank}d needs {'[C, T]' if rank == 1 else '[C, H, W]'}")
    c_in, c_out = conv.in_channels, conv.out_channels
    if c_in != shape[0]:
        raise _refuse(where, conv, f"in_channels={c_in} but its input has {shape[0]} channels")
    if conv.groups != 1:
        raise _refuse(where, conv, f"groups={conv.groups}: only groups=1 is supported")
    k, s, d = conv.kernel_size, conv.stride, conv.dilation
    if rank == 2 and (k[0] != k[1] or s[0] != s[1] or d[0] != d[1]):
        raise _refuse(where, conv, f"non-square kernel_size={k}, stride={s} or dilation={d}: "
                      "only square ones are supported")
    k, s, d = k[0], s[0], d[0]
    widths, mode = _conv_padding(where, conv, pad, rank)
    masked = parametrize.is_parametrized(conv, "weight")
    if s == k and s > 1:  # patch conv: each output sees its own input patch
        if any(widths) or d != 1 or masked:
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
    if expanding and not first_param_layer:
        raise _refuse(where, conv, f"an expanding conv ({c_in} -> {c_out} channels) that is not "
                      "the stem: only the first conv of the model may expand (its whole output "
                      "cotangent is stored); elsewhere the Jacobian is not surjective")
    if rank == 1:
        need = ((k - 1) * d, 0)
        if widths[1] != 0 or widths[0] != need[0] or mode != "constant":
            got = f"{mode} padding {widths}" if any(widths) else "no padding"
            why = ("symmetric or right padding lets the conv see later time steps"
                   if widths[1] else f"{got} is not causal")
            raise _refuse(where, conv, f"{why}; a causal conv with kernel_size={k}, dilation={d} "
                          f"needs nn.ConstantPad1d(({need[0]}, 0), 0.0) before it and padding=0")
        if expanding:
            if d != 1:
                raise _refuse(where, conv, f"the stem (first, expanding conv) with dilation={d}: "
                              "only dilation 1 is supported there")
            return {"type": "stem", "channels": c_out, "kernel_size": k}
        return {"type": "causal_conv1d", "kernel_size": k, "dilation": d}
    if d != 1:
        raise _refuse(where, conv, f"dilation={d}: 2D convs are supported with dilation 1 only")
    p = k // 2
    same = (p, k - 1 - p, p, k - 1 - p)
    if widths != same:
        raise _refuse(where, conv, f"padding {widths} (left, right, top, bottom): a stride-1 "
                      f"conv2d needs {same} (padding={p} for odd kernels; nn.ZeroPad2d{same} or "
                      f"nn.CircularPad2d{same} before an even one)")
    if expanding:
        if masked or mode != "constant":
            raise _refuse(where, conv, "the stem (first, expanding conv2d) must be unmasked with "
                          "zero padding")
        return {"type": "stem", "channels": c_out, "kernel_size": k}
    if masked:
        if mode != "constant":
            raise _refuse(where, conv, f"a RasterMask conv2d with {mode} padding: the masked "
                          "conv is inverted by substitution from the image's far corner, which "
                          "needs zero padding")
        return {"type": "conv2d", "kernel_size": k, "mode": "masked"}
    if mode == "circular":
        return {"type": "conv2d", "kernel_size": k, "mode": "circular"}
    raise _refuse(where, conv, f"a full (unmasked) conv2d with {mode} padding has no exact "
                  "inverse here; mask it in raster order (parametrize with RasterMask) or use "
                  "padding_mode='circular'")


def _read_pool(where: str, pool: nn.Module, rank: int, shape: Shape) -> int:
    k = pool.kernel_size
    stride = pool.stride if pool.stride is not None else k
    as_tuple = (lambda v: (v,) * rank if isinstance(v, int) else tuple(v))  # noqa: E731
    k, stride, padding = as_tuple(k), as_tuple(stride), as_tuple(pool.padding)
    dilation = as_tuple(getattr(pool, "dilation", 1))
    if len(set(k)) != 1 or k != stride or any(padding) or set(dilation) != {1}:
        raise _refuse(where, pool, "only non-overlapping pooling (square window, stride = "
                      "kernel_size, no padding, dilation 1) has an exact inverse-forward step")
    if pool.ceil_mode or getattr(pool, "return_indices", False) \
            or getattr(pool, "divisor_override", None) is not None:
        raise _refuse(where, pool, "ceil_mode, return_indices and divisor_override are not "
                      "supported")
    if len(shape) != rank + 1:
        raise _refuse(where, pool, f"it receives per-example shape {list(shape)}; it needs "
                      f"{'[C, T]' if rank == 1 else '[C, H, W]'}")
    return k[0]


def _params(module: nn.Module) -> dict[str, nn.Parameter | None]:
    if parametrize.is_parametrized(module, "weight"):
        weight = module.parametrizations.weight.original
    else:
        weight = module.weight
    return {"weight": weight, "bias": module.bias}


def _read(module: nn.Sequential, input_shape: Shape) -> list[_Layer]:
    layers: list[_Layer] = []
    shape = input_shape
    pad: _Pad | None = None
    for where, m in _walk(module, ""):
        cls = _base_type(m)
        _check_plain(where, m)
        if pad is not None and cls not in (nn.Conv1d, nn.Conv2d):
            raise _refuse(pad.where, pad.module, "a padding module must come right before the "
                          f"conv it pads; it is followed by module {where} ({_short(m)})")
        entry: dict[str, Any]
        params: dict[str, nn.Parameter | None] = {}
        if cls in PAD_MODULES:
            pad = _Pad(tuple(m.padding), PAD_MODULES[cls], float(getattr(m, "value", 0.0)),
                       where, m)
            continue
        if cls in (nn.Conv1d, nn.Conv2d):
            rank = 1 if cls is nn.Conv1d else 2
            first = not any(layer.params for layer in layers)
            entry = _read_conv(where, m, rank, pad, shape, first)
            params = _params(m)
            pad = None
        elif cls is nn.Linear:
            if len(shape) != 1:
                raise _refuse(where, m, f"it receives per-example shape {list(shape)}; put an "
                              "nn.Flatten() before it (Moonwalk's Linear acts on [features])")
            if m.in_features != shape[0]:
                raise _refuse(where, m, f"in_features={m.in_features} but its input has "
                              f"{shape[0]} features")
            entry, params = {"type": "linear", "features": m.out_features}, _params(m)
        elif cls is nn.ReLU:
            entry = {"type": "relu"}
        elif cls is nn.LeakyReLU:
            if not m.negative_slope > 0:
                raise _refuse(where, m, f"negative_slope={m.negative_slope}: its inverse divides "
                              "by the slope, so it must be > 0 (use nn.ReLU for slope 0)")
            entry = {"type": "leaky_relu", "negative_slope": float(m.negative_slope)}
        elif cls is nn.Flatten:
            if m.start_dim != 1 or m.end_dim != -1:
                raise _refuse(where, m, f"start_dim={m.start_dim}, end_dim={m.end_dim}: only "
                              "nn.Flatten() (start_dim=1, end_dim=-1) is supported")
            entry = {"type": "flatten"}
        elif cls in POOLS:
            kind, rank = POOLS[cls]
            entry = {"type": kind, "size": _read_pool(where, m, rank, shape)}
        elif isinstance(m, NORMALIZATION):
            raise _refuse(where, m, "normalization has no exact inverse-forward step: it "
                          "discards each group's mean and scale (and batch statistics couple the "
                          "examples); remove it or train this model with autograd")
        elif isinstance(m, DROPOUT):
            raise _refuse(where, m, "dropout is random: Moonwalk recomputes the forward pass "
                          "and would draw a different mask; remove it")
        else:
            raise _refuse(where, m, f"no Moonwalk layer for {cls.__name__}; supported: "
                          f"{SUPPORTED}")
        index = len(layers)
        try:
            fields, out = arch_module.LAYER_TYPES[entry["type"]](entry, shape, index,
                                                                 entry["type"])
        except ValueError as e:
            raise _refuse(where, m, str(e)) from None
        del fields
        layers.append(_Layer(entry, params, where))
        shape = out
    if pad is not None:
        raise _refuse(pad.where, pad.module, "it is the last module; a padding module must come "
                      "right before the conv it pads")
    if not layers:
        raise ValueError("from_module: the model has no layers Moonwalk could run")
    return layers


def _dtype_and_device(module: nn.Module) -> tuple[torch.dtype, torch.device]:
    params = list(module.parameters())
    dtypes = {p.dtype for p in params}
    devices = {p.device for p in params}
    if len(dtypes) > 1 or len(devices) > 1:
        raise ValueError(f"from_module: parameters have dtypes {sorted(map(str, dtypes))} on "
                         f"devices {sorted(map(str, devices))}; use one dtype and one device")
    dtype = dtypes.pop() if dtypes else torch.get_default_dtype()
    if dtype not in DTYPES.values():
        raise ValueError(f"from_module: parameters are {dtype}; Moonwalk runs in float32, "
                         "float64 or bfloat16 (convert with model.float(), model.double() or "
                         "model.bfloat16())")
    return dtype, devices.pop() if devices else torch.device("cpu")


def from_module(module: nn.Sequential, input_shape: Sequence[int], *,
                init: Literal["keep", "orthogonal"] = "keep", seed: int = 0) -> MoonwalkModel:
    """A Moonwalk model that computes what ``module`` computes, on the same ``nn.Parameter``s.

    Args:
        module: an ``nn.Sequential`` (nested ones are flattened) of the modules listed in
            ``docs/user-models.md``: ``nn.Conv1d`` after a causal left pad
            (``nn.ConstantPad1d(((k-1)*d, 0), 0.0)`` or ``nn.ZeroPad1d``), the first conv may
            expand channels (the stem); ``nn.Conv2d`` with ``padding=k // 2`` and either a
            :class:`RasterMask` parametrization (zero padding) or ``padding_mode="circular"``;
            a conv with ``stride == kernel_size`` (a patch conv); ``nn.Linear``, ``nn.ReLU``,
            ``nn.LeakyReLU``, ``nn.Flatten``, non-overlapping ``nn.AvgPool*d``/``nn.MaxPool*d``.
        input_shape: one example's shape, ``[C, T]`` or ``[C, H, W]`` (no batch axis).
        init: "keep" leaves the parameters as they are; "orthogonal" overwrites them in place
            with ``build``'s well-conditioned init (seeded by ``seed``). torch's default init
            makes Phase III amplify round-off (see README, "Numerical stability"), so start a
            training from "orthogonal" unless the weights come from somewhere.
        seed: the seed of ``init="orthogonal"``.

    Returns:
        A :class:`MoonwalkModel` whose parameters *are* the module's: use it with
        ``gradient``/``value_and_grad``/``backward`` (which fills ``p.grad`` of the user's
        parameters) and keep the optimizer built on ``module.parameters()``. A conv or linear
        without bias gets a zero bias buffer (no gradient is written for it). Convert after
        moving the module to its device and dtype.

    Raises:
        ValueError: naming the module, its position and why Moonwalk cannot invert it (an
            expanding conv that is not the stem, symmetric padding, normalization, dropout,
            unsupported stride or dilation, a module with no Moonwalk layer, ...).
    """
    if not isinstance(module, nn.Sequential):
        raise ValueError(f"from_module: expected an nn.Sequential, got {type(module).__name__}")
    if init not in ("keep", "orthogonal"):
        raise ValueError(f"from_module: init={init!r}; use 'keep' or 'orthogonal'")
    shape = tuple(int(n) for n in input_shape)
    layers = _read(module, shape)
    dtype, device = _dtype_and_device(module)
    spec = arch_module.load({"input_shape": list(shape), "layers": [ly.entry for ly in layers]})
    # build draws its init on the CPU without naming a device; pin the default device to the
    # CPU for the draws (under torch.set_default_device they would land elsewhere), while the
    # layers themselves are placed on `device` explicitly
    with torch.device("cpu"):
        model = build(spec, dtype=dtype, device=device, init="default")
    for i, layer in enumerate(layers):
        _share(model.get_submodule(f"layers.{i}"), layer)
    if init == "orthogonal":
        with torch.device("cpu"):
            fresh = dict(build(spec, seed=seed, dtype=dtype, device=device,
                               init="orthogonal").named_parameters())
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(fresh[name])
    return model


def _share(target: nn.Module, layer: _Layer) -> None:
    """Make the built layer use the user's tensors (a zero buffer for a missing bias)."""
    for name, param in layer.params.items():
        own = getattr(target, name)
        if param is None:
            delattr(target, name)
            target.register_buffer(name, torch.zeros_like(own), persistent=False)
            continue
        if tuple(own.shape) != tuple(param.shape):
            raise ValueError(f"from_module: module {layer.where}: {name} has shape "
                             f"{tuple(param.shape)} but the Moonwalk layer needs "
                             f"{tuple(own.shape)}")
        setattr(target, name, param)


# -- back to plain torch modules ----------------------------------------------------------------

def _conv(rank: int, c_in: int, c_out: int, k: int, *, stride: int = 1, dilation: int = 1,
          padding: int = 0, padding_mode: str = "zeros", bias: bool) -> nn.Conv1d | nn.Conv2d:
    cls = nn.Conv1d if rank == 1 else nn.Conv2d
    return cls(c_in, c_out, k, stride=stride, dilation=dilation, padding=padding,
               padding_mode=padding_mode, bias=bias, device="meta")


def _same_conv2d(c_in: int, c_out: int, k: int, circular: bool, bias: bool) -> list[nn.Module]:
    """A stride-1 conv2d padded (k//2, k-1-k//2) per axis, zeros or circular."""
    if k % 2:
        return [_conv(2, c_in, c_out, k, padding=k // 2, bias=bias,
                      padding_mode="circular" if circular else "zeros")]
    p = k // 2
    widths = (p, k - 1 - p, p, k - 1 - p)
    pad = nn.CircularPad2d(widths) if circular else nn.ZeroPad2d(widths)
    return [pad, _conv(2, c_in, c_out, k, bias=bias)]


def _plain_modules(ls: arch_module.LayerSpec, bias: bool) -> list[nn.Module]:
    t, c_in = ls.type, ls.in_shape[0]
    rank = len(ls.in_shape) - 1
    if t in ("stem", "causal_conv1d") and rank == 1:
        k, d = ls["kernel_size"], ls.fields.get("dilation", 1)
        c_out = ls.out_shape[0]
        conv = _conv(1, c_in, c_out, k, dilation=d, bias=bias)
        return [nn.ConstantPad1d(((k - 1) * d, 0), 0.0), conv] if k > 1 else [conv]
    if t == "stem":
        return _same_conv2d(c_in, ls["channels"], ls["kernel_size"], False, bias)
    if t == "conv2d":
        return _same_conv2d(c_in, c_in, ls["kernel_size"], ls["mode"] == "circular", bias)
    if t in ("patch_conv1d", "patch_conv2d"):
        p = ls["patch"]
        return [_conv(rank, c_in, ls["channels"], p, stride=p, bias=bias)]
    if t == "linear":
        return [nn.Linear(c_in, ls["features"], bias=bias, device="meta")]
    if t == "relu":
        return [nn.ReLU()]
    if t == "leaky_relu":
        return [nn.LeakyReLU(ls["negative_slope"])]
    if t == "flatten":
        return [nn.Flatten()]
    if t in ("avg_pool", "max_pool"):
        cls = {("avg_pool", 1): nn.AvgPool1d, ("avg_pool", 2): nn.AvgPool2d,
               ("max_pool", 1): nn.MaxPool1d, ("max_pool", 2): nn.MaxPool2d}[t, rank]
        return [cls(ls["size"])]
    raise ValueError(f"to_module: layer {ls.index} ({t}) has no plain torch module equivalent")


def to_module(model: MoonwalkModel) -> nn.Sequential:
    """Plain torch modules computing what ``model`` computes, sharing its ``nn.Parameter``s.

    The inverse of :func:`from_module`: causal convs become ``nn.ConstantPad1d`` +
    ``nn.Conv1d``, masked conv2d an ``nn.Conv2d`` with a :class:`RasterMask` parametrization,
    circular conv2d ``padding_mode="circular"``, patch convs ``stride == kernel_size``. Use it
    as the plain-autograd baseline with the same weights: ``loss.backward()`` on it fills the
    same ``.grad`` slots Moonwalk fills.

    Raises:
        ValueError: when the model has no architecture description or a layer (a RevNet
            coupling) has no plain torch equivalent.
    """
    if model.spec is None:
        raise ValueError("to_module: the model has no architecture description (build it with "
                         "moonwalk_core.torch.build or from_module)")
    params = dict(model.named_parameters())
    modules: list[nn.Module] = []
    for ls in model.spec.layers:
        own = {name: params.get(f"layers.{ls.index}.{name}") for name in ("weight", "bias")}
        plain = _plain_modules(ls, bias=own["bias"] is not None)
        for m in plain:
            if hasattr(m, "weight") and own["weight"] is not None:
                m.weight = own["weight"]
                if own["bias"] is not None:
                    m.bias = own["bias"]
                if ls.type == "conv2d" and ls["mode"] == "masked":
                    parametrize.register_parametrization(m, "weight", RasterMask())
        modules += plain
    return nn.Sequential(*modules)
