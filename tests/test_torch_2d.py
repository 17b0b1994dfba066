"""2D conv nets in torch: Moonwalk gradients equal Backprop's (float64, 1e-10 relative), both
conv2d classes, ReLU and leaky ReLU, several row-block sizes; boundary fragments and condition
estimates. (Random nets in both backends: test_random_nets.py; the singular centre tap:
test_errors.py.)"""

from __future__ import annotations

import pytest
import torch.nn.functional as F

import moonwalk_core.torch as mw
from moonwalk_core import arch, methods

from .helpers import assert_grads_close, batch


def _data(spec: arch.ArchSpec, size: int, dtype: str, seed: int = 0):
    return batch("torch", spec, size, dtype, seed)


@pytest.mark.parametrize("mode", ["masked", "circular"])
@pytest.mark.parametrize("activation", ["leaky_relu", "relu"])
@pytest.mark.parametrize("block_size", [None, 1, 3, 8])
def test_moonwalk_matches_backprop_on_the_2d_family(mode, activation, block_size) -> None:
    spec = arch.conv2d_net(3, channels=4, in_channels=2, size=8, mode=mode,
                           activation=activation, patch=2)
    model = mw.build(spec, seed=1, dtype="float64")
    x, y = _data(spec, 3, "float64")
    _, ref = mw.value_and_grad(model, F.cross_entropy, x, y, method=methods.Backprop())
    _, grads = mw.value_and_grad(model, F.cross_entropy, x, y,
                                 method=methods.Moonwalk(block_size=block_size))
    assert_grads_close(grads, ref, "float64", f"{mode}, {activation}, block_size={block_size}")


def _fragment_bytes(mode: str, block_size: int | None) -> int:
    spec = arch.load({"input_shape": [3, 8, 6], "layers": [
        {"type": "conv2d", "kernel_size": 5, "mode": mode},
        {"type": "leaky_relu", "negative_slope": 0.5},
        {"type": "flatten"}, {"type": "linear", "features": 4}]})
    model = mw.build(spec, seed=0, dtype="float64")
    x, y = _data(spec, 2, "float64")
    return mw.gradient(model, F.cross_entropy, x, y,
                       method=methods.Moonwalk(block_size=block_size)).stored_bytes["fragments"]


def test_masked_conv_stores_p_boundary_rows_per_row_block() -> None:
    # k = 5: p = 2 rows after each block but the last; batch 2, C = 3, W = 6, float64
    per_boundary = 2 * 3 * 2 * 6 * 8
    assert _fragment_bytes("masked", None) == 0
    assert _fragment_bytes("masked", 8) == 0
    assert _fragment_bytes("masked", 4) == 1 * per_boundary
    assert _fragment_bytes("masked", 3) == 2 * per_boundary
    assert _fragment_bytes("masked", 1) == 7 * per_boundary


def test_circular_conv_never_stores_a_fragment() -> None:
    assert all(_fragment_bytes("circular", b) == 0 for b in (None, 1, 3))


def test_float32_moonwalk_is_close_to_float64_backprop_on_2d_nets() -> None:
    for mode in ("masked", "circular"):
        spec = arch.conv2d_net(6, channels=8, in_channels=3, size=8, mode=mode, patch=2)
        x, y = _data(spec, 2, "float64")
        ref = mw.value_and_grad(mw.build(spec, seed=2, dtype="float64"), F.cross_entropy, x, y,
                                method=methods.Backprop())[1]
        model = mw.build(spec, seed=2, dtype="float32")
        grads = mw.value_and_grad(model, F.cross_entropy, x.float(), y,
                                  method=methods.Moonwalk(block_size=2))[1]
        assert_grads_close(grads, ref, "float32", f"float32 {mode} Moonwalk")


def test_default_init_keeps_the_substitution_contractive() -> None:
    spec = arch.load({"input_shape": [8, 6, 6], "layers": [
        {"type": "conv2d", "kernel_size": 3, "mode": "masked"},
        {"type": "conv2d", "kernel_size": 3, "mode": "circular"}]})
    masked, circular = mw.build(spec, seed=0, dtype="float64").layers
    cond = masked.condition()
    assert cond["amplification"] == pytest.approx(1.0)  # orthogonal centre tap
    assert cond["tap_norm_sum"] < 1 and cond["spectral_radius"] < 1, cond
    assert circular.condition()["amplification"] < 5
    assert cond["symbol_condition"] < 5
