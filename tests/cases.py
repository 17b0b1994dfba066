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
