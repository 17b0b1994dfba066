"""Public checker of the layer contract (:mod:`moonwalk_core.interface`) against torch's own
autodiff."""

from __future__ import annotations

from collections.abc import Callable

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


def _inner_product_error(lhs: Tensor, rhs: Tensor, scale: Tensor) -> float:
    """``|lhs - rhs| / scale`` (scale: a Cauchy-Schwarz bound on |rhs|)."""
    diff, s = abs(float(lhs.detach()) - float(rhs.detach())), float(scale.detach())
    return diff / s if s > 0 else diff


def random_input(shape: tuple[int, ...], *, dtype: str = "float64", seed: int = 0,
                 device: str | torch.device = "cpu") -> Tensor:
    """Standard-normal test input, the same numbers for every dtype, device and backend."""
    import numpy as np

    values = np.random.default_rng(seed).standard_normal(shape)
    return torch.as_tensor(values).to(dtype=getattr(torch, dtype), device=device)


def check_layer(layer: AbstractLayer, x_in: Tensor, *, block_size: int | None = None,
                seed: int = 0, reference: Callable[[Tensor], Tensor] | None = None
                ) -> dict[str, float]:
    """Measure each contract identity of ``layer`` at ``x_in``; 0 means exact.

    Returns:
        Relative errors keyed ``forward_with_residual`` (identity 1: ``forward`` and
        ``forward_with_residual`` against ``reference``, an independent implementation of the
        forward such as plain ``torch.nn.functional`` calls; without one, only against each
        other), ``vjp`` (against ``torch.func.vjp`` of the forward), ``vjp_adjoint``
        (<vjp(h), t> = <h, jvp(t)>), ``vijp`` (at ``block_size``), ``param_vjp`` (the largest,
        over parameters, of |<param_vjp(h), δθ> - <h, J_θ δθ>| / (‖h‖ ‖J_θ δθ‖) with the
        framework's jvp for J_θ δθ: independent of how the layer computes its gradient);
        ``param_names`` (0 when ``param_vjp`` returns exactly the layer's parameters, else 1);
        ``fragment_none`` (0 when ``fragment is None`` exactly for surjective layers, checked
        with ``block_size=None``, else 1) and ``residual_bytes`` (what Phase I keeps).
    """
    gen = torch.Generator().manual_seed(seed)

    def randn_like(t: Tensor) -> Tensor:
        return torch.randn(t.shape, generator=gen, dtype=torch.float64).to(t)

    out: dict[str, float] = {}
    with torch.no_grad():
        x_out, res = layer.forward_with_residual(x_in)
        plain = layer(x_in)
        expected = plain if reference is None else torch.as_tensor(reference(x_in)).to(plain)
        out["forward_with_residual"] = max(_rel(x_out, expected), _rel(plain, expected))
        h_out, tangent = randn_like(x_out), randn_like(x_in)
        h_in = layer.vjp(res, h_out)
    _, pullback = torch.func.vjp(layer, x_in)
    (h_ref,) = pullback(h_out)
    out["vjp"] = _rel(h_in, h_ref)
    _, jvp_out = torch.func.jvp(layer, (x_in,), (tangent,))
    out["vjp_adjoint"] = _inner_product_error(
        (h_in * tangent).sum(), (h_out * jvp_out).sum(),
        torch.linalg.vector_norm(h_in) * torch.linalg.vector_norm(tangent))
    with torch.no_grad():
        frag = layer.fragment(res, h_out, block_size=block_size)
        out["vijp"] = _rel(layer.vijp(x_in, h_in, frag), h_out)
        plain_frag = layer.fragment(res, h_out, block_size=None)
        out["fragment_none"] = float((plain_frag is None) != layer.surjective)
        grads = layer.param_vjp(x_in, h_out)
    params = {k: p.detach() for k, p in layer.named_parameters()}
    out["param_names"] = float(set(grads) != set(params))
    out["param_vjp"] = 0.0
    for name in sorted(set(grads) & set(params)):
        delta = randn_like(params[name])

        def f(value: Tensor, name: str = name) -> Tensor:
            return torch.func.functional_call(layer, {**params, name: value}, (x_in,))

        _, j_delta = torch.func.jvp(f, (params[name],), (delta,))
        error = _inner_product_error(
            (grads[name] * delta).sum(), (h_out * j_delta).sum(),
            torch.linalg.vector_norm(h_out) * torch.linalg.vector_norm(j_delta))
        out["param_vjp"] = max(out["param_vjp"], error)
    out["residual_bytes"] = float(nbytes(res))
    return out
