"""bfloat16 (docs/method.md, 'bfloat16'): Moonwalk's gradients stay within the error of
bfloat16 Backprop, with both solvers, with and without blocks and with "auto" checkpoints;
the planner and the self-check use bfloat16's epsilon; unknown dtypes are refused clearly.

The reference is float64 Backprop on the *same* numbers: the bfloat16 model's weights and
batch, widened exactly to float64, so the errors measure bfloat16 arithmetic only.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F

import moonwalk_core.torch as mw
from moonwalk_core import arch, methods
from moonwalk_core._accuracy import MoonwalkAccuracyWarning

from .helpers import grads_rel_error

EPS = 2.0**-7  # bfloat16's machine epsilon (8 significand bits)
# Moonwalk's error may exceed bfloat16 Backprop's by this factor. Measured on these nets
# (CPU): at most 1.07x (torch) and 1.12x (JAX); 1.5 leaves room for other CPUs' kernels.
FACTOR = 1.5

NETS = {"1d_leaky": (arch.causal_conv_net(4, channels=8, length=64), 16),
        "1d_relu": (arch.causal_conv_net(4, channels=8, length=64, activation="relu"), 16),
        "2d_masked": (arch.conv2d_net(2, channels=4, in_channels=2, size=8), 4)}


def _methods(block: int) -> list[methods.Moonwalk]:
    return [methods.Moonwalk(solver="substitution"), methods.Moonwalk(solver="fft"),
            methods.Moonwalk(solver="substitution", block_size=block),
            methods.Moonwalk(solver="fft", block_size=block),
            methods.Moonwalk(checkpoint_every="auto"),
            methods.Moonwalk(checkpoint_every="auto", solver="fft", block_size=block)]


def _label(m: methods.Moonwalk) -> str:
    return f"{m.solver}-b{m.block_size}-{m.checkpoint_every}"


@pytest.mark.parametrize("name", list(NETS))
def test_torch_moonwalk_is_within_the_error_of_bfloat16_backprop(name) -> None:
    spec, block = NETS[name]
    model = mw.build(spec, seed=0, dtype="bfloat16")
    x = mw.random_input((3, *spec.input_shape), dtype="bfloat16", seed=1)
    y = torch.tensor([0, 3, 1])
    ref = mw.gradient(copy.deepcopy(model).double(), F.cross_entropy, x.double(), y,
                      method=methods.Backprop()).grads
    backprop = grads_rel_error(mw.gradient(model, F.cross_entropy, x, y,
                                           method=methods.Backprop()).grads, ref)
    print(f"\n{name}: bfloat16 Backprop error {backprop:.3e}")
    assert 0 < backprop < 8 * EPS
    with warnings.catch_warnings():
        warnings.simplefilter("error", MoonwalkAccuracyWarning)  # self-check within tolerance
        for method in _methods(block):
            result = mw.gradient(model, F.cross_entropy, x, y, method=method)
            assert {g.dtype for g in result.grads.values()} == {torch.bfloat16}, method
            err = grads_rel_error(result.grads, ref)
            print(f"  Moonwalk {_label(method)}: {err:.3e} ({err / backprop:.2f}x), "
                  f"self-check {result.self_check:.2e}")
            assert err <= FACTOR * backprop, (method, err, backprop)


def test_jax_moonwalk_is_within_the_error_of_bfloat16_backprop() -> None:
    import jax.numpy as jnp

    import moonwalk_core.jax as mj

    from .helpers import batch, jax_cross_entropy

    spec = arch.causal_conv_net(2, channels=6, length=16)
    model = mj.build(spec, seed=0, dtype="bfloat16")
    wide = mj.build(spec, seed=0, dtype="float64").with_parameters(
        {k: v.astype(jnp.float64) for k, v in model.parameters().items()})
    x, y = batch("jax", spec, 3)
    x = x.astype(jnp.bfloat16)
    ref = mj.value_and_grad(wide, jax_cross_entropy, x.astype(jnp.float64), y,
                            method=methods.Backprop())[1]
    backprop = grads_rel_error(mj.value_and_grad(model, jax_cross_entropy, x, y,
                                                 method=methods.Backprop())[1], ref)
    print(f"\njax 1d_leaky: bfloat16 Backprop error {backprop:.3e}")
    assert 0 < backprop < 8 * EPS
    with warnings.catch_warnings():
        warnings.simplefilter("error", MoonwalkAccuracyWarning)
        for method in [methods.Moonwalk(solver="substitution"),
                       methods.Moonwalk(solver="fft", block_size=4),
                       methods.Moonwalk(checkpoint_every="auto")]:
            result = mj.gradient(model, jax_cross_entropy, x, y, method=method)
            assert {g.dtype for g in result.grads.values()} == {jnp.dtype(jnp.bfloat16)}
            err = grads_rel_error(result.grads, ref)
            print(f"  Moonwalk {_label(method)}: {err:.3e} ({err / backprop:.2f}x), "
                  f"self-check {result.self_check:.2e}")
            assert err <= FACTOR * backprop, (method, err, backprop)


def test_the_self_check_tolerance_is_eight_bfloat16_epsilons() -> None:
    import jax.numpy as jnp

    assert torch.finfo(torch.bfloat16).eps == float(jnp.finfo(jnp.bfloat16).eps) == EPS
    assert methods.Moonwalk().tolerance_for("bfloat16") == 8 * EPS
    assert methods.Moonwalk(tolerance=0.2).tolerance_for("bfloat16") == 0.2
    # a bfloat16 run's self-check is far above float32's tolerance and below bfloat16's: it
    # is judged by bfloat16's (no warning), and the message names it
    spec, _ = NETS["1d_leaky"]
    model = mw.build(spec, seed=0, dtype="bfloat16")
    x = mw.random_input((3, *spec.input_shape), dtype="bfloat16", seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MoonwalkAccuracyWarning)
        result = mw.gradient(model, F.cross_entropy, x, torch.tensor([0, 3, 1]),
                             method=methods.Moonwalk())
    assert methods.Moonwalk().tolerance_for("float32") < result.self_check < 8 * EPS
    with pytest.warns(MoonwalkAccuracyWarning, match="for bfloat16"):
        mw.gradient(model, F.cross_entropy, x, torch.tensor([0, 3, 1]),
                    method=methods.Moonwalk(tolerance=result.self_check / 2))


def _spy(monkeypatch, module) -> list[dict]:
    """Record the keyword arguments of every ``choose`` call the planner of ``module`` makes."""
    calls: list[dict] = []
    real = module.choose

    def choose(facts, **kwargs):
        calls.append(kwargs)
        return real(facts, **kwargs)

    monkeypatch.setattr(module, "choose", choose)
    return calls


def test_the_torch_planner_uses_the_bfloat16_epsilon(monkeypatch) -> None:
    from moonwalk_core.torch import _stability

    calls = _spy(monkeypatch, _stability)
    spec, _ = NETS["1d_leaky"]
    model = mw.build(spec, seed=0, dtype="bfloat16")
    x = mw.random_input((3, *spec.input_shape), dtype="bfloat16", seed=1)
    result = mw.gradient(model, F.cross_entropy, x, torch.tensor([0, 3, 1]),
                         method=methods.Moonwalk(checkpoint_every="auto"))
    assert [(c["eps"], c["tolerance"], c["itemsize"]) for c in calls] == [(EPS, 8 * EPS, 2)]
    # budget tolerance / (2 eps) = 4: this net needs a restart, as its plan says
    assert any(p.checkpoint for p in result.plan)
    assert any("budget 4)" in p.reason for p in result.plan)


def test_the_jax_planner_uses_the_bfloat16_epsilon(monkeypatch) -> None:
    import moonwalk_core.jax as mj
    from moonwalk_core.jax import _stability

    from .helpers import batch

    calls = _spy(monkeypatch, _stability)
    spec = arch.causal_conv_net(3, channels=6, length=32)
    model = mj.build(spec, seed=0, dtype="bfloat16")
    x, _ = batch("jax", spec, 3, dtype="bfloat16")
    _stability.auto_plan(model, methods.Moonwalk(checkpoint_every="auto"), x)
    assert [(c["eps"], c["tolerance"], c["itemsize"]) for c in calls] == [(EPS, 8 * EPS, 2)]


def test_unknown_dtypes_are_refused_naming_bfloat16() -> None:
    import moonwalk_core.jax as mj

    spec, _ = NETS["1d_relu"]
    for dtype in ("float16", torch.float16):
        with pytest.raises(ValueError, match="float16'? is not supported.*bfloat16"):
            mw.build(spec, dtype=dtype)
    for dtype in ("float16", "int8"):
        with pytest.raises(ValueError, match="is not supported.*bfloat16"):
            mj.build(spec, dtype=dtype)


def test_bfloat16_fft_launches_and_syncs_do_not_grow_with_the_length_or_depth() -> None:
    """The float32 detours are fixed per layer: launches stay independent of the length, host
    syncs of the depth (docs/measurement.md, 'Launches and syncs')."""
    from moonwalk_core.torch._launches import LaunchCounter, count_warm

    def count(depth: int, length: int) -> LaunchCounter:
        spec = arch.causal_conv_net(depth, channels=8, length=length)
        model = mw.build(spec, seed=0, dtype="bfloat16")
        x = mw.random_input((2, *spec.input_shape), dtype="bfloat16", seed=1)
        y, method = torch.tensor([1, 2]), methods.Moonwalk(solver="fft", block_size=16)
        return count_warm(lambda: mw.gradient(model, F.cross_entropy, x, y, method=method))

    short, long, deep = count(3, 32), count(3, 256), count(6, 32)
    assert short.launches == long.launches
    assert short.syncs == deep.syncs <= 4
