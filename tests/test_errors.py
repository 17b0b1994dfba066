"""Bad input gets a ValueError that names the problem, the field and what is allowed, the same in
both backends; nothing is changed on the way to the error."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import moonwalk_core.torch as mw
from moonwalk_core import arch, get_backend, methods

from .helpers import BACKENDS, batch, cross_entropy


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
    ("no_such_file.yaml", r"'no_such_file.yaml' is neither an existing file nor a YAML mapping"),
    ("input_shape: [2, 4\nlayers: [", r"is neither an existing file nor valid YAML"),
])
def test_bad_architecture_is_rejected_with_a_named_field(description, message) -> None:
    with pytest.raises(ValueError, match=message):
        arch.load(description)


YAML = """input_shape: [2, 16]
layers:
  - {type: causal_conv1d, kernel_size: 3}
  - {type: flatten}
"""


def test_architectures_load_from_yaml_text_and_from_files(tmp_path: Path) -> None:
    expected = arch.load({"input_shape": [2, 16], "layers": [
        {"type": "causal_conv1d", "kernel_size": 3}, {"type": "flatten"}]})
    path = tmp_path / "net.yaml"
    path.write_text(YAML)
    assert arch.load(YAML) == expected  # the README: "a dict or YAML"
    assert arch.load(str(path)) == expected and arch.load(path) == expected
    one_line = '{"input_shape": [2, 16], "layers": [{"type": "flatten"}]}'  # JSON is YAML
    assert arch.load(one_line).output_shape == (32,)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: methods.Moonwalk(block_size=0), r"Moonwalk\(block_size=0\): use None or an int >= 1"),
    (lambda: methods.Moonwalk(block_size=True), r"Moonwalk\(block_size=True\): use None or an int"),
    (lambda: methods.Moonwalk(checkpoint_every="sometimes"),
     r"checkpoint_every='sometimes'\): use None, an int"),
    (lambda: methods.Moonwalk(checkpoint_every=True), r"checkpoint_every=True\): use None, an int"),
    (lambda: methods.Moonwalk(tolerance=-1.0), r"tolerance=-1.0\): use None or a finite float > 0"),
    (lambda: methods.Moonwalk(tolerance=math.inf), r"tolerance=inf\): use None or a finite float"),
    (lambda: methods.Moonwalk(tolerance=math.nan), r"tolerance=nan\): use None or a finite float"),
    (lambda: methods.Moonwalk(strict="no"), r"Moonwalk\(strict='no'\): use True or False"),
    (lambda: methods.Moonwalk(pack_residuals=1), r"Moonwalk\(pack_residuals=1\): use True or"),
    (lambda: methods.Checkpointed(segments=False), r"Checkpointed\(segments=False\): use None"),
    (lambda: methods.PureForward(chunk_size=True), r"PureForward\(chunk_size=True\): use an int"),
    (lambda: methods.NaiveForward(max_parameters=0.5), r"NaiveForward\(max_parameters=0.5\)"),
])
def test_bad_method_options_are_rejected(make, message) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_unknown_backend_and_build_options_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"backend='tf' is not supported; use 'torch' or 'jax'"):
        get_backend("tf")  # type: ignore[arg-type]
    spec = _spec({"type": "relu"})
    with pytest.raises(ValueError, match=r"dtype='float16' is not supported"):
        mw.build(spec, dtype="float16")
    with pytest.raises(ValueError, match=r"init='kaiming' is not supported"):
        mw.build(spec, init="kaiming")  # type: ignore[arg-type]


CONV_1D = _spec({"type": "causal_conv1d", "kernel_size": 3, "dilation": 2}, {"type": "flatten"})
CONV_2D = _spec({"type": "conv2d", "kernel_size": 3}, {"type": "flatten"}, shape=(2, 4, 4))


def _with_zero_tap(backend: str, description: dict, index: tuple):
    """The model of ``description`` (float64) with the tap ``weight[index]`` of layer 0 zeroed."""
    mwb = get_backend(backend)
    model = mwb.build(description, dtype="float64")
    weights = mwb.export_weights(model)
    weights["layers.0.weight"][index] = 0
    return mwb.load_weights(model, weights)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("description", "tap", "message"), [
    (CONV_1D, (..., -1), r"layer 0 \(causal_conv1d\): the lag-0 tap .* singular"),
    (CONV_2D, (..., 1, 1), r"layer 0 \(conv2d\): the centre tap .* singular"),
])
@pytest.mark.parametrize("method", [methods.Moonwalk(), methods.Moonwalk(block_size=2),
                                    methods.Moonwalk(checkpoint_every="auto")], ids=repr)
def test_a_singular_tap_is_a_clear_error_in_both_backends(backend, description, tap, message,
                                                          method) -> None:
    # JAX compiles the phases, where no check can stop it: the weights are checked before
    model = _with_zero_tap(backend, description, tap)
    x, _ = batch(backend, arch.load(description), 1)
    with pytest.raises(ValueError, match=message):
        get_backend(backend).gradient(model, lambda z, t: (z * z).sum(), x, x, method=method)


def test_block_size_must_be_a_multiple_of_the_dilation() -> None:
    model = mw.build(CONV_1D, dtype="float64")
    x, y = torch.randn(1, 2, 16, dtype=torch.float64), torch.tensor([0])
    with pytest.raises(ValueError, match=r"layer 0 \(causal_conv1d\): block_size=3 must be a "
                                         r"multiple of the dilation 2"):
        mw.value_and_grad(model, F.cross_entropy, x, y, method=methods.Moonwalk(block_size=3))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("method", [methods.Moonwalk(), methods.Backprop()], ids=repr)
def test_an_empty_batch_is_rejected_by_name(backend: str, method) -> None:
    mwb = get_backend(backend)
    x = mwb.random_input((0, 2, 16), dtype="float64")
    with pytest.raises(ValueError, match=r"x has shape \(0, 2, 16\): an empty batch"):
        mwb.gradient(mwb.build(CONV_1D, dtype="float64"), cross_entropy(backend), x, x,
                     method=method)


def test_dtype_device_and_shape_mismatches_are_rejected() -> None:
    model = mw.build(CONV_1D, dtype="float32")
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
    model = mw.build(CONV_1D, dtype="float64")
    x, y = torch.randn(2, 2, 16, dtype=torch.float64), torch.tensor([0, 1])
    with pytest.raises(ValueError, match=r"loss_fn must return a scalar; it returned shape \(2,\)"):
        mw.value_and_grad(model, lambda z, t: F.cross_entropy(z, t, reduction="none"), x, y)


@pytest.mark.parametrize("backend", BACKENDS)
def test_load_weights_names_missing_keys_shapes_and_dtypes(backend: str) -> None:
    mwb = get_backend(backend)
    model = mwb.build(CONV_1D, dtype="float64")
    weights = mwb.export_weights(model)
    with pytest.raises(ValueError, match=r"missing keys \['layers.0.bias'\]"):
        mwb.load_weights(model, {"layers.0.weight": weights["layers.0.weight"]})
    with pytest.raises(ValueError, match=r"layers.0.bias has shape \(1,\), the model expects"):
        mwb.load_weights(model, {**weights, "layers.0.bias": weights["layers.0.bias"][:1]})
    with pytest.raises(ValueError, match=r"layers.0.bias has dtype int64; use floating-point"):
        mwb.load_weights(model, {**weights, "layers.0.bias": np.array([1, 2])})


def test_torch_load_weights_changes_nothing_when_it_fails() -> None:
    model = mw.build(arch.causal_conv_net(2, channels=4, length=16), dtype="float64")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    weights = {k: v + 1 for k, v in mw.export_weights(model).items()}
    last = list(weights)[-1]  # every earlier key is valid, so a partial copy would show
    weights[last] = weights[last][:1]
    with pytest.raises(ValueError, match=rf"{last} has shape"):
        mw.load_weights(model, weights)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_non_finite_gradients_are_reported_not_returned_silently() -> None:
    model = mw.build(CONV_1D, dtype="float64")
    x, y = torch.randn(1, 2, 16, dtype=torch.float64), torch.tensor([0])
    x[0, 0, 3] = float("nan")
    with pytest.warns(mw.MoonwalkAccuracyWarning, match="non-finite"):
        mw.value_and_grad(model, F.cross_entropy, x, y)
    with pytest.raises(FloatingPointError, match="non-finite"):
        mw.value_and_grad(model, F.cross_entropy, x, y, method=methods.Moonwalk(strict=True))
