"""Time-major activations: the memory layout the 1D convolutions use.

# Note: [time-major activations]
1D convs keep activations time-major: (B, C, T) tensors whose memory is (B, T, C). oneDNN's
channels-last kernels beat its (B, C, T) ones on the CPU (measured: ~20% for a k=3 conv, ~1.6x
for a stride-8 patch conv; conv1d reading time-major memory would be ~7x slower), and
the back-substitution of the causal-conv vijp runs over time steps, each a contiguous (rows, C)
slice, so it needs no transposes. The logical shape every caller sees stays (B, C, T);
elementwise layers keep whatever layout they are given, and anything else still works on
these tensors, only without the fast path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["time_major", "as_image", "conv1d", "conv_transpose1d", "conv1d_param_vjp"]


def time_major(x: Tensor) -> Tensor:
    """``x`` (B, C, T) as a contiguous (B, T, C) tensor: a view when ``x`` is time-major."""
    return x.transpose(1, 2).contiguous()


def as_image(x_tm: Tensor) -> Tensor:
    """A contiguous (B, T, C) tensor as the channels-last (B, C, 1, T) image oneDNN expects."""
    return x_tm.transpose(1, 2).unsqueeze(2)


def conv1d(image: Tensor, weight: Tensor, bias: Tensor | None, *, stride: int = 1,
           dilation: int = 1) -> Tensor:
    """A 1D conv (weight (C_out, C_in, k)) over a channels-last ``image``: (B, C_out, T'),
    time-major."""
    out = F.conv2d(image, weight.unsqueeze(2), bias, stride=(1, stride), dilation=(1, dilation))
    return out.squeeze(2)


def conv_transpose1d(h_out: Tensor, weight: Tensor, *, stride: int = 1,
                     dilation: int = 1) -> Tensor:
    """The transposed 1D conv of ``h_out`` (B, C_out, T'): (B, C_in, T), time-major."""
    h = F.conv_transpose2d(as_image(time_major(h_out)), weight.unsqueeze(2),
                           stride=(1, stride), dilation=(1, dilation))
    return h.squeeze(2)


def conv1d_param_vjp(image: Tensor, h_out: Tensor, weight: Tensor, bias: Tensor, *,
                     stride: int = 1, dilation: int = 1) -> tuple[Tensor, dict[str, Tensor]]:
    """``(x_out, {"weight": h_out·J_W, "bias": h_out·J_b})`` of :func:`conv1d` over ``image``
    (already padded), by oneDNN's forward and weight-gradient kernels."""
    out = conv1d(image, weight, bias, stride=stride, dilation=dilation)
    _, grad_w, grad_b = torch.ops.aten.convolution_backward(
        as_image(time_major(h_out)), image, weight.unsqueeze(2), [bias.shape[0]], [1, stride],
        [0, 0], [1, dilation], False, [0, 0], 1, [False, True, True])
    return out, {"weight": grad_w.squeeze(2).contiguous(), "bias": grad_b}
