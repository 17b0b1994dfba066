"""Registry of layer cases: every contract test is parametrized over it (both backends).

A case is one architecture entry plus a per-example input shape; each backend builds it with
``build`` (orthogonal init), so adding a layer means adding one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class LayerCase:
    name: str
    entry: dict[str, Any]
    input_shape: tuple[int, ...]
    surjective: bool
    batch: int = 2
    block_sizes: tuple[int | None, ...] = (None,)
    # residual bytes per input element the layer declares: 0 (keeps nothing), 1/8 (bit mask)
    residual_bytes_per_element: float = 0.0
    tags: frozenset[str] = field(default_factory=frozenset)

    def spec(self) -> dict[str, Any]:
        return {"input_shape": list(self.input_shape), "layers": [self.entry]}


BIT = 1 / 8
LAYER_CASES: list[LayerCase] = [
    LayerCase("leaky_relu", {"type": "leaky_relu", "negative_slope": 0.3}, (3, 17), True,
              residual_bytes_per_element=BIT),
    LayerCase("relu", {"type": "relu"}, (3, 16), False, residual_bytes_per_element=BIT),
    LayerCase("linear_square", {"type": "linear", "features": 12}, (12,), True),
    LayerCase("linear_narrowing", {"type": "linear", "features": 5}, (12,), True),
    LayerCase("linear_expanding", {"type": "linear", "features": 20}, (12,), False),
    LayerCase("flatten", {"type": "flatten"}, (3, 8), True),
    LayerCase("stem", {"type": "stem", "channels": 6, "kernel_size": 3}, (2, 16), False),
    LayerCase("causal_conv_k1", {"type": "causal_conv1d", "kernel_size": 1}, (4, 16), True),
    LayerCase("causal_conv_k3", {"type": "causal_conv1d", "kernel_size": 3}, (4, 19), True,
              block_sizes=(None, 1, 4, 5, 19, 64)),
    LayerCase("causal_conv_k4_d2", {"type": "causal_conv1d", "kernel_size": 4, "dilation": 2},
              (3, 21), True, block_sizes=(None, 2, 6, 8)),
    LayerCase("patch_conv1d_square", {"type": "patch_conv1d", "channels": 8, "patch": 4},
              (2, 16), True),
    LayerCase("patch_conv1d_narrowing", {"type": "patch_conv1d", "channels": 5, "patch": 4},
              (2, 16), True),
]

# 2D layers, pools and RevNet couplings. conv2d's block sizes are rows per block;
# k = 5 has p = 2 boundary rows, more than a 1-row block, so a boundary spans several blocks.
LAYER_CASES += [
    LayerCase("stem_2d", {"type": "stem", "channels": 5, "kernel_size": 3}, (2, 4, 5), False),
    LayerCase("conv2d_masked_k1", {"type": "conv2d", "kernel_size": 1}, (3, 4, 4), True),
    LayerCase("conv2d_masked_k2", {"type": "conv2d", "kernel_size": 2, "mode": "masked"},
              (2, 5, 6), True, block_sizes=(None, 1, 2, 5)),
    LayerCase("conv2d_masked_k3", {"type": "conv2d", "kernel_size": 3, "mode": "masked"},
              (3, 7, 5), True, block_sizes=(None, 1, 2, 3, 7, 16)),
    LayerCase("conv2d_masked_k5", {"type": "conv2d", "kernel_size": 5, "mode": "masked"},
              (2, 6, 7), True, block_sizes=(None, 1, 2, 4)),
    LayerCase("conv2d_circular_k3", {"type": "conv2d", "kernel_size": 3, "mode": "circular"},
              (3, 6, 5), True, block_sizes=(None, 2)),
    LayerCase("conv2d_circular_k4", {"type": "conv2d", "kernel_size": 4, "mode": "circular"},
              (2, 6, 4), True),
    LayerCase("patch_conv2d_square", {"type": "patch_conv2d", "channels": 8, "patch": 2},
              (2, 4, 6), True),
    LayerCase("patch_conv2d_narrowing", {"type": "patch_conv2d", "channels": 5, "patch": 2},
              (2, 4, 6), True),
    LayerCase("avg_pool_2d", {"type": "avg_pool", "size": 2}, (3, 4, 6), True),
    LayerCase("avg_pool_1d", {"type": "avg_pool", "size": 3}, (2, 12), True),
    # max pool keeps one uint8 argmax per window: 1 / size^d bytes per input element
    LayerCase("max_pool_2d", {"type": "max_pool", "size": 2}, (3, 4, 6), True,
              residual_bytes_per_element=1 / 4),
    LayerCase("max_pool_1d", {"type": "max_pool", "size": 4}, (2, 12), True,
              residual_bytes_per_element=1 / 4),
    # a coupling keeps F's and G's hidden sign bits: 2 · hidden / C bits per input element
    LayerCase("revnet_coupling_2d", {"type": "revnet_coupling", "hidden": 6, "kernel_size": 3},
              (4, 5, 6), True, residual_bytes_per_element=2 * 6 / 4 * BIT),
    LayerCase("revnet_coupling_1d", {"type": "revnet_coupling", "hidden": 4, "kernel_size": 3},
              (2, 10), True, residual_bytes_per_element=2 * 4 / 2 * BIT),
]
