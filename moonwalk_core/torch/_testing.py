"""Public checker of the layer contract (``moonwalk_core.interface``) against torch autograd."""

from __future__ import annotations

import torch
from torch import Tensor

from ._base import AbstractLayer
from ._containers import nbytes

__all__ = ["check_layer", "random_input"]


def _rel(a: Tensor, b: Tensor) -> float:
    a, b = a.detach(), b.detach()
    ref = float(torch.linalg.vector_norm(b))
    diff = float(torch.linalg.vector_norm(a - b))
    return diff / ref if ref > 0 else diff


def random_input(shape: tuple[int, ...], *, dtype: str = "float64", seed: int = 0,
                 device: str | torch.device = "cpu") -> Tensor:
    """Standard-normal test input, the same numbers for every dtype, device and backend."""
    import numpy as np

    values = np.random.default_rng(seed).standard_normal(shape)
    return torch.as_tensor(values).to(dtype=getattr(torch, dtype), device=device)


def check_layer(layer: AbstractLayer, x_in: Tensor, *, block_size: int | None = None,
                seed: int = 0) -> dict[str, float]:
    """Measure each contract identity of ``layer`` at ``x_in``; 0 means exact.

    Returns relative errors keyed ``forward_with_residual``, ``vjp``, ``vjp_adjoint``, ``vijp``,
    ``param_vjp``; ``fragment_none`` (0 when ``fragment is None`` exactly for surjective layers,
    checked with ``block_size=None``, else 1) and ``residual_bytes`` (what Phase I keeps).
    The oracle is ``torch.func.vjp`` / ``torch.func.jvp`` on ``layer.forward``.
    """
    gen = torch.Generator().manual_seed(seed)

    def randn_like(t: Tensor) -> Tensor:
        return torch.randn(t.shape, generator=gen, dtype=torch.float64).to(t)

    out: dict[str, float] = {}
    with torch.no_grad():
        x_out, res = layer.forward_with_residual(x_in)
        out["forward_with_residual"] = _rel(x_out, layer(x_in))
        h_out, tangent = randn_like(x_out), randn_like(x_in)
        h_in = layer.vjp(res, h_out)
    _, pullback = torch.func.vjp(layer, x_in)
    (h_ref,) = pullback(h_out)
    out["vjp"] = _rel(h_in, h_ref)
    _, jvp_out = torch.func.jvp(layer, (x_in,), (tangent,))
    jvp_out = jvp_out.detach()
    lhs, rhs = float((h_in * tangent).sum()), float((h_out * jvp_out).sum())
    scale = float(torch.linalg.vector_norm(h_in) * torch.linalg.vector_norm(tangent))
    out["vjp_adjoint"] = abs(lhs - rhs) / scale if scale > 0 else abs(lhs - rhs)
    with torch.no_grad():
        frag = layer.fragment(res, h_out, block_size=block_size)
        out["vijp"] = _rel(layer.vijp(x_in, h_in, frag), h_out)
        plain = layer.fragment(res, h_out, block_size=None)
        out["fragment_none"] = float((plain is None) != layer.surjective)
        grads = layer.param_vjp(x_in, h_out)
    params = dict(layer.named_parameters())
    if params:
        def f(p: dict[str, Tensor]) -> Tensor:
            return torch.func.functional_call(layer, p, (x_in,))

        _, param_pullback = torch.func.vjp(f, params)
        ref = {k: v.detach() for k, v in param_pullback(h_out)[0].items()}
        num = sum(float(torch.linalg.vector_norm(grads[k] - ref[k])) ** 2 for k in ref) ** 0.5
        den = sum(float(torch.linalg.vector_norm(ref[k])) ** 2 for k in ref) ** 0.5
        out["param_vjp"] = num / den if den > 0 else num
    else:
        out["param_vjp"] = float(bool(grads))
    out["residual_bytes"] = float(nbytes(res))
    return out
