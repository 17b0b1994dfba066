"""2D conv nets: Moonwalk gradients equal Backprop's (float64, 1e-10 relative), both conv2d
modes, ReLU and leaky ReLU, several row-block sizes; boundary fragments and error messages."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import moonwalk_core.torch as mw
from moonwalk_core import arch, methods

from .helpers import RTOL, assert_grads_close


def _data(spec: arch.ArchSpec, batch: int, dtype: str, seed: int = 0):
    x = mw.random_input((batch, *spec.input_shape), dtype=dtype, seed=seed)
    y = torch.randint(0, spec.output_shape[0], (batch,),
                      generator=torch.Generator().manual_seed(seed))
    return x, y


ACTIVATIONS = [{"type": "relu"}, {"type": "leaky_relu", "negative_slope": 0.2},
               {"type": "leaky_relu", "negative_slope": 0.7}]


@st.composite
def nets_2d(draw: st.DrawFn) -> arch.ArchSpec:
    """Random 2D nets: stem, conv2d layers (mode, kernel), (leaky) ReLU, optional pool, patch
    conv, flatten, narrowing linear."""
    channels, patch = draw(st.integers(2, 4)), draw(st.sampled_from([1, 2]))
    height, width = 2 * patch * draw(st.integers(1, 3)), 2 * patch * draw(st.integers(1, 3))
    input_shape = [draw(st.integers(1, 3)), height, width]
    layers: list[dict] = [{"type": "stem", "channels": channels,
                           "kernel_size": draw(st.integers(1, 3))}]
    for _ in range(draw(st.integers(1, 3))):
        mode = draw(st.sampled_from(["masked", "circular"]))
        k_max = 4 if mode == "masked" else min(4, height, width)
        layers.append({"type": "conv2d", "kernel_size": draw(st.integers(1, k_max)),
                       "mode": mode})
        layers.append(draw(st.sampled_from(ACTIVATIONS)))
    if draw(st.booleans()):
        layers.append({"type": draw(st.sampled_from(["avg_pool", "max_pool"])), "size": 2})
        height, width = height // 2, width // 2
    head = draw(st.integers(1, channels * patch * patch))
    layers += [{"type": "patch_conv2d", "channels": head, "patch": patch}, {"type": "flatten"}]
    features = head * (height // patch) * (width // patch)
    layers.append({"type": "linear", "features": draw(st.integers(1, features))})
    return arch.load({"input_shape": input_shape, "layers": layers})


@given(spec=nets_2d(), block=st.sampled_from([None, 1, 2, 3]), seed=st.integers(0, 2**16))
def test_moonwalk_equals_backprop_on_random_2d_nets(spec, block, seed) -> None:
    model = mw.build(spec, seed=seed, dtype="float64")
    x, y = _data(spec, 2, "float64", seed)
    _, ref = mw.value_and_grad(model, F.cross_entropy, x, y, method=methods.Backprop())
    for method in (methods.Moonwalk(block_size=block),
                   methods.Moonwalk(block_size=block, checkpoint_every=2, pack_residuals=False)):
        result = mw.gradient(model, F.cross_entropy, x, y, method=method)
        assert_grads_close(result.grads, ref, "float64", f"{method} on {spec.to_dict()}")
        assert result.self_check is not None and result.self_check < RTOL["float64"]


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


def test_singular_centre_tap_is_a_clear_error() -> None:
    spec = arch.load({"input_shape": [2, 4, 4], "layers": [{"type": "conv2d", "kernel_size": 3},
                                                           {"type": "flatten"}]})
    model = mw.build(spec, seed=0, dtype="float64")
    with torch.no_grad():
        model.layers[0].weight[..., 1, 1] = 0
    x, y = _data(arch.load({"input_shape": [2, 4, 4], "layers": [{"type": "flatten"}]}), 2,
                 "float64")
    with pytest.raises(ValueError, match=r"layer 0 \(conv2d\): the centre tap .* singular"):
        mw.gradient(model, lambda z, t: z.sum(), x, y, method=methods.Moonwalk())
