"""Independent plain-framework forwards of every layer kind: the oracle of identity 1.

Each is written from the layer's definition (docs/layers.md) with ``torch.nn.functional`` calls,
in float64 on the CPU, from the weights ``export_weights`` gives; none calls the package. Both
backends' layers are compared with them (``check_layer(..., reference=...)``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from moonwalk_core.arch import LayerSpec

Weights = dict[str, np.ndarray]
SLOPE_IN_BRANCHES = 0.1  # the coupling branches' leaky-ReLU slope (docs/layers.md)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.tensor(np.asarray(a, dtype=np.float64))  # a copy: JAX arrays are read-only


def _causal_mask(k: int) -> torch.Tensor:
    """The taps before the centre in raster order, and the centre (PixelCNN type B)."""
    p = k // 2
    mask = torch.zeros(k, k, dtype=torch.float64)
    mask[:p] = 1
    mask[p, :p + 1] = 1
    return mask


def _same_pad_2d(k: int) -> tuple[int, int, int, int]:
    p = k // 2
    return (p, k - 1 - p, p, k - 1 - p)


def _branch(x: torch.Tensor, w_in: torch.Tensor, b_in: torch.Tensor, w_out: torch.Tensor,
            b_out: torch.Tensor) -> torch.Tensor:
    conv = F.conv2d if w_in.ndim == 4 else F.conv1d
    p = w_in.shape[-1] // 2
    hidden = F.leaky_relu(conv(x, w_in, b_in, padding=p), SLOPE_IN_BRANCHES)
    return conv(hidden, w_out, b_out, padding=p)


def _coupling(ls: LayerSpec, w: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=1)
    f = [w[f"f.{n}"] for n in ("weight_in", "bias_in", "weight_out", "bias_out")]
    g = [w[f"g.{n}"] for n in ("weight_in", "bias_in", "weight_out", "bias_out")]
    y1 = x1 + _branch(x2, *f)
    return torch.cat([y1, x2 + _branch(y1, *g)], dim=1)


def _pool(kind: str, size: int, x: torch.Tensor) -> torch.Tensor:
    fn = {("avg_pool", 3): F.avg_pool1d, ("avg_pool", 4): F.avg_pool2d,
          ("max_pool", 3): F.max_pool1d, ("max_pool", 4): F.max_pool2d}[kind, x.ndim]
    return fn(x, size)


def _forward(ls: LayerSpec, w: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    kind = (ls.type, ls.variant)
    if kind == ("stem", "1d"):
        k = w["weight"].shape[-1]
        return F.conv1d(F.pad(x, (k - 1, 0)), w["weight"], w["bias"])
    if kind == ("stem", "2d"):
        return F.conv2d(F.pad(x, _same_pad_2d(w["weight"].shape[-1])), w["weight"], w["bias"])
    if ls.type == "causal_conv1d":
        k, d = w["weight"].shape[-1], ls["dilation"]
        return F.conv1d(F.pad(x, ((k - 1) * d, 0)), w["weight"], w["bias"], dilation=d)
    if kind == ("conv2d", "masked"):
        k = w["weight"].shape[-1]
        return F.conv2d(F.pad(x, _same_pad_2d(k)), w["weight"] * _causal_mask(k), w["bias"])
    if kind == ("conv2d", "circular"):
        k = w["weight"].shape[-1]
        return F.conv2d(F.pad(x, _same_pad_2d(k), mode="circular"), w["weight"], w["bias"])
    if ls.type == "patch_conv1d":
        return F.conv1d(x, w["weight"], w["bias"], stride=ls["patch"])
    if ls.type == "patch_conv2d":
        return F.conv2d(x, w["weight"], w["bias"], stride=ls["patch"])
    if ls.type == "leaky_relu":
        return F.leaky_relu(x, ls["negative_slope"])
    if ls.type == "relu":
        return F.relu(x)
    if ls.type == "linear":
        return F.linear(x, w["weight"], w["bias"])
    if ls.type == "flatten":
        return x.flatten(1)
    if ls.type in ("avg_pool", "max_pool"):
        return _pool(ls.type, ls["size"], x)
    if ls.type == "revnet_coupling":
        return _coupling(ls, w, x)
    raise KeyError(f"no reference forward for {kind}; add one to tests/reference.py")


def reference_forward(ls: LayerSpec, weights: Weights) -> Callable[[object], np.ndarray]:
    """``x -> layer(x)`` for the layer ``ls`` describes with ``weights`` (keys without the
    ``layers.<i>.`` prefix), as a float64 NumPy array; ``x`` may be a tensor or an array."""
    w = {k: _t(v) for k, v in weights.items()}

    def forward(x: object) -> np.ndarray:
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        return _forward(ls, w, _t(np.asarray(x))).numpy()

    return forward


def layer_reference(model: object, export_weights: Callable[[object], Weights], i: int = 0
                    ) -> Callable[[object], np.ndarray]:
    """The reference forward of layer ``i`` of a built model (its spec and exported weights)."""
    prefix = f"layers.{i}."
    weights = {k[len(prefix):]: v for k, v in export_weights(model).items()
               if k.startswith(prefix)}
    return reference_forward(model.spec.layers[i], weights)
