"""Bad input gets a ValueError that names the layer, the field and what is allowed."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import moonwalk_core.torch as mw
from moonwalk_core import arch, get_backend, methods


def _spec(*layers, shape=(2, 16)):
    return {"input_shape": list(shape), "layers": list(layers)}


@pytest.mark.parametrize(("description", "message"), [
    (_spec({"type": "conv3d"}), r"layer 0: unknown type 'conv3d'; allowed: \["),
    (_spec({"type": "causal_conv1d"}), r"layer 0 \(causal_conv1d\): missing field 'kernel_size'"),
    (_spec({"type": "relu"}, {"type": "causal_conv1d", "kernel_size": 0}),
     r"layer 1 \(causal_conv1d\): field 'kernel_size'=0 is not allowed; use an int >= 1"),
    (_spec({"type": "patch_conv1d", "channels": 2, "patch": 5}),
     r"layer 0 \(patch_conv1d\): input T=16 does not divide by field 'patch'=5"),
    (_spec({"type": "patch_conv1d", "channels": 9, "patch": 4}),
     r"layer 0 \(patch_conv1d\): field 'channels'=9 exceeds patch fan-in 8"),
    (_spec({"type": "leaky_relu", "negative_slope": 0}),
     r"layer 0 \(leaky_relu\): field 'negative_slope'=0 is not allowed; use a float > 0"),
    (_spec({"type": "linear", "features": 3}),
     r"layer 0 \(linear\): input shape \[2, 16\] has the wrong rank; "
     r"this layer needs \[features\]"),
    (_spec({"type": "relu", "slope": 1}), r"layer 0 \(relu\): unknown field\(s\) \['slope'\]"),
    (_spec({"type": "stem", "channels": 1, "kernel_size": 3}),
     r"layer 0 \(stem\): field 'channels'=1 is below the input channels 2"),
    ({"input_shape": [0, 4], "layers": [{"type": "relu"}]}, r"input_shape=\[0, 4\] is not allowed"),
    ({"input_shape": [2, 4], "layers": []}, r"non-empty list 'layers'"),
])
def test_bad_architecture_is_rejected_with_a_named_field(description, message) -> None:
    with pytest.raises(ValueError, match=message):
        arch.load(description)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"block_size": 0}, r"Moonwalk\(block_size=0\): use None or an int >= 1"),
    ({"checkpoint_every": "sometimes"}, r"checkpoint_every='sometimes'\): use None, an int"),
    ({"tolerance": -1.0}, r"tolerance=-1.0\): use None or a float > 0"),
])
def test_bad_method_options_are_rejected(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        methods.Moonwalk(**kwargs)


def test_unknown_backend_and_build_options_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"backend='tf' is not supported; use 'torch' or 'jax'"):
        get_backend("tf")  # type: ignore[arg-type]
    spec = _spec({"type": "relu"})
    with pytest.raises(ValueError, match=r"dtype='float16' is not supported"):
        mw.build(spec, dtype="float16")
    with pytest.raises(ValueError, match=r"init='kaiming' is not supported"):
        mw.build(spec, init="kaiming")  # type: ignore[arg-type]


def _conv_model(dtype="float64"):
    spec = _spec({"type": "causal_conv1d", "kernel_size": 3, "dilation": 2}, {"type": "flatten"})
    return mw.build(spec, dtype=dtype)


def test_singular_lag0_tap_names_the_layer() -> None:
    model = _conv_model()
    with torch.no_grad():
        model.layers[0].weight[..., -1] = 0
    x, y = torch.randn(1, 2, 16, dtype=torch.float64), torch.tensor([0])
    with pytest.raises(ValueError, match=r"layer 0 \(causal_conv1d\): the lag-0 tap .* singular"):
        mw.value_and_grad(model, F.cross_entropy, x, y)


def test_block_size_must_be_a_multiple_of_the_dilation() -> None:
    model = _conv_model()
    x, y = torch.randn(1, 2, 16, dtype=torch.float64), torch.tensor([0])
    with pytest.raises(ValueError, match=r"layer 0 \(causal_conv1d\): block_size=3 must be a "
                                         r"multiple of the dilation 2"):
        mw.value_and_grad(model, F.cross_entropy, x, y, method=methods.Moonwalk(block_size=3))


def test_dtype_device_and_shape_mismatches_are_rejected() -> None:
    model = _conv_model("float32")
    y = torch.tensor([0])
    with pytest.raises(ValueError, match=r"x has dtype torch.float64 but the model has "
                                         r"torch.float32"):
        mw.value_and_grad(model, F.cross_entropy, torch.randn(1, 2, 16, dtype=torch.float64), y)
    with pytest.raises(ValueError, match=r"x has shape \(1, 2, 15\); the model expects "
                                         r"\(batch, 2, 16\)"):
        mw.value_and_grad(model, F.cross_entropy, torch.randn(1, 2, 15), y)
    with pytest.raises(ValueError, match=r"x is on meta and y on cpu but the model is on cpu"):
        mw.value_and_grad(model, F.cross_entropy, torch.randn(1, 2, 16, device="meta"), y)


def test_non_scalar_loss_is_rejected() -> None:
    model = _conv_model()
    x, y = torch.randn(2, 2, 16, dtype=torch.float64), torch.tensor([0, 1])
    with pytest.raises(ValueError, match=r"loss_fn must return a scalar; it returned shape \(2,\)"):
        mw.value_and_grad(model, lambda z, t: F.cross_entropy(z, t, reduction="none"), x, y)


def test_load_weights_names_missing_keys_and_shapes() -> None:
    model = _conv_model()
    weights = mw.export_weights(model)
    with pytest.raises(ValueError, match=r"missing keys \['layers.0.bias'\]"):
        mw.load_weights(model, {"layers.0.weight": weights["layers.0.weight"]})
    weights["layers.0.bias"] = weights["layers.0.bias"][:1]
    with pytest.raises(ValueError,
                       match=r"layers.0.bias has shape \(1,\), the model expects \(2,\)"):
        mw.load_weights(model, weights)


def test_non_finite_gradients_are_reported_not_returned_silently() -> None:
    model = _conv_model()
    x, y = torch.randn(1, 2, 16, dtype=torch.float64), torch.tensor([0])
    x[0, 0, 3] = float("nan")
    with pytest.warns(mw.MoonwalkAccuracyWarning, match="non-finite"):
        mw.value_and_grad(model, F.cross_entropy, x, y)
    with pytest.raises(FloatingPointError, match="non-finite"):
        mw.value_and_grad(model, F.cross_entropy, x, y, method=methods.Moonwalk(strict=True))
