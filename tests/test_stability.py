"""Numerical stability of Phase III: "auto" checkpoints, negative-units fragments, self-check
(docs/method.md, 'Error growth').

Nets: stem + depth x (causal conv + leaky ReLU) + head, C=8, T=32, batch 4, default
(orthogonal) init; reference: float64 Backprop on the same weights.
"""

from __future__ import annotations

import functools
import warnings

import pytest
import torch
import torch.nn.functional as F

import moonwalk_core.torch as mw
from moonwalk_core import arch, methods
from moonwalk_core._stability_plan import layer_growth, symbol_condition
from moonwalk_core.torch._stability import auto_plan

from .helpers import RTOL, grads_rel_error, rel_error


@functools.cache  # the float64 reference is shared by the tests of one net (none mutates it)
def _setup(depth: int, slope: float, init: str = "orthogonal", dilation: int = 1,
           seed: int = 0) -> tuple[arch.ArchSpec, torch.Tensor, torch.Tensor, dict]:
    spec = arch.causal_conv_net(depth, channels=8, length=32, negative_slope=slope,
                                dilation=dilation)
    x = mw.random_input((4, *spec.input_shape), dtype="float64", seed=seed)
    y = torch.randint(0, 10, (4,), generator=torch.Generator().manual_seed(seed))
    model = mw.build(spec, seed=seed, dtype="float64", init=init)
    ref = mw.value_and_grad(model, F.cross_entropy, x, y, method=methods.Backprop())[1]
    return spec, x, y, ref


def _moonwalk(spec: arch.ArchSpec, x: torch.Tensor, y: torch.Tensor, dtype: str = "float32",
              init: str = "orthogonal", **options) -> mw.GradientResult:
    model = mw.build(spec, seed=0, dtype=dtype, init=init)
    return mw.gradient(model, F.cross_entropy, x.to(model.dtype), y,
                       method=methods.Moonwalk(**options))


@functools.cache  # float32 runs shared by tests that only read them (warnings not asserted)
def _quiet(depth: int, slope: float, checkpoint_every: int | str | None = None
           ) -> mw.GradientResult:
    spec, x, y, _ = _setup(depth, slope)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mw.MoonwalkAccuracyWarning)
        return _moonwalk(spec, x, y, checkpoint_every=checkpoint_every)


def test_auto_checkpoints_keep_float32_exact_at_48_layers_where_none_fails() -> None:
    spec, x, y, ref = _setup(48, 0.1)
    result = _quiet(48, 0.1, "auto")
    err = grads_rel_error(result.grads, ref)
    assert err < 1e-4, f"auto: gradient error {err:.3e} >= 1e-4"
    stores = sum(p.checkpoint or p.negative_units for p in result.plan)
    assert stores > 0 and all(p.reason for p in result.plan if p.checkpoint or p.negative_units)
    with pytest.warns(mw.MoonwalkAccuracyWarning):
        plain = _moonwalk(spec, x, y)
    assert not grads_rel_error(plain.grads, ref) < 1e-4  # NaN/inf count as failing too


def test_auto_stores_less_than_checkpoints_every_4_layers_and_backprop() -> None:
    spec, x, y, _ = _setup(48, 0.1)
    auto, every4 = _quiet(48, 0.1, "auto").stored_bytes, _quiet(48, 0.1, 4).stored_bytes
    model = mw.build(spec, seed=0, dtype="float32")
    backprop = mw.gradient(model, F.cross_entropy, x.float(), y, method=methods.Backprop())
    assert auto["total"] < every4["total"] < backprop.stored_bytes["total"]
    assert auto["checkpoints"] > 0 and every4["checkpoints"] > auto["checkpoints"]


def _worst_layer_error(grads: dict, ref: dict) -> float:
    """The largest relative gradient error of any one layer."""
    layers: dict[str, list[str]] = {}
    for name in ref:
        layers.setdefault(name.split(".")[1], []).append(name)
    return max(grads_rel_error({k: grads[k] for k in names}, {k: ref[k] for k in names})
               for names in layers.values())


@pytest.mark.parametrize(("depth", "slope", "checkpoint_every"), [
    (48, 0.1, "auto"), (48, 0.1, 4), (4, 0.1, None), (8, 0.1, None), (16, 0.5, None),
    (16, 0.2, None),
])
def test_self_check_is_within_10x_of_the_worst_layer_error(depth, slope,
                                                           checkpoint_every) -> None:
    # the self-check is the error of the worst segment between two restarts (docs/method.md,
    # 'Self-check'), so it estimates the worst layer's gradient error, not the error of all
    # gradients together (which one well-reconstructed large layer can dominate: 13x below the
    # self-check for the 48-layer "auto" plan)
    ref = _setup(depth, slope)[3]
    result = _quiet(depth, slope, checkpoint_every)
    err = _worst_layer_error(result.grads, ref)
    assert err / 10 < result.self_check < err * 10, (
        f"self-check {result.self_check:.2e} vs the worst layer's error {err:.2e}")


def test_warning_fires_on_an_ill_conditioned_net_and_strict_raises() -> None:
    spec, x, y, _ = _setup(16, 0.1)  # float32 without checkpoints: error ~1e5 relative
    with pytest.warns(mw.MoonwalkAccuracyWarning,
                      match=r"off by .*x the tolerance 1e-04 .*checkpoint_every='auto'"):
        _moonwalk(spec, x, y)
    with pytest.raises(FloatingPointError, match="float64"):
        _moonwalk(spec, x, y, strict=True)


def test_no_warning_on_well_conditioned_nets() -> None:
    # filterwarnings = error: any MoonwalkAccuracyWarning fails this test
    for depth, slope, options in [(4, 0.5, {}), (16, 0.1, {"checkpoint_every": "auto"})]:
        spec, x, y, ref = _setup(depth, slope)
        result = _moonwalk(spec, x, y, strict=True, **options)
        assert result.self_check < RTOL["float32"]
        assert grads_rel_error(result.grads, ref) < RTOL["float32"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_auto_plan_handles_the_framework_default_init(dtype) -> None:
    # torch's conv init: ρ ~ 3-50, no sequential solve survives; auto blocks or checkpoints
    spec, x, y, ref = _setup(16, 0.1, init="default", dilation=2)
    result = _moonwalk(spec, x, y, dtype=dtype, init="default", checkpoint_every="auto",
                       block_size=16)
    assert grads_rel_error(result.grads, ref) < RTOL[dtype]
    for plan, ls in zip(result.plan, spec.layers, strict=True):
        if ls.type == "causal_conv1d" and plan.block_size is not None:
            assert plan.block_size % 2 == 0 and plan.block_size <= 16


def test_auto_plan_in_float64_stores_nothing_for_a_good_net() -> None:
    # predicted amplification ~(1.25 x 1.5)^8 ~ 150, far under 1e-10 / (2 eps) ~ 2e5
    spec, x, y, ref = _setup(8, 0.5)
    result = _moonwalk(spec, x, y, dtype="float64", checkpoint_every="auto")
    assert not any(p.checkpoint or p.negative_units for p in result.plan)
    assert grads_rel_error(result.grads, ref) < RTOL["float64"]


def test_auto_plan_prefers_negative_units_when_a_checkpoint_costs_more() -> None:
    # a tolerance of 10 eps leaves no room for a slope-0.1 division between two restarts:
    # each leaky ReLU stores its negative units (about half an activation), not all of h_out
    spec, x, _, _ = _setup(4, 0.1)
    model = mw.build(spec, seed=0, dtype="float64")
    plan = auto_plan(model, methods.Moonwalk(checkpoint_every="auto", tolerance=1e-15), x)
    kinds = [(ls.type, p.negative_units, p.checkpoint) for ls, p in zip(spec.layers, plan,
                                                                        strict=True)]
    assert ("leaky_relu", True, False) in kinds
    assert all(n is False for t, n, _ in kinds if t != "leaky_relu")


def test_negative_units_fragment_recovers_h_out_exactly() -> None:
    layer = mw.LeakyReLU(0.01)
    gen = torch.Generator().manual_seed(0)
    x_in = torch.randn(3, 5, 7, generator=gen, dtype=torch.float64)
    h_out = torch.randn(3, 5, 7, generator=gen, dtype=torch.float64)
    _, res = layer.forward_with_residual(x_in)
    frag = layer.negative_units_fragment(res, h_out)
    assert frag.values.numel() == int((x_in <= 0).sum())
    assert rel_error(layer.vijp(x_in, layer.vjp(res, h_out), frag), h_out) == 0.0


def test_restart_checks_are_reported_per_checkpoint() -> None:
    spec, x, y, _ = _setup(8, 0.5)
    result = _moonwalk(spec, x, y, checkpoint_every=4)
    checkpoints = {i for i, p in enumerate(result.plan) if p.checkpoint}
    assert set(result.info["restart_checks"]) == checkpoints
    assert result.self_check >= max(result.info["restart_checks"].values())


def test_layer_growth_is_the_kantorovich_mean_for_a_leaky_relu() -> None:
    assert layer_growth({"amplification": 10.0}) == pytest.approx(5.05)
    assert layer_growth({}) == 1.0
    assert layer_growth({"amplification": 1.0, "spectral_radius": 2.0}, steps=4) == 8.0


def test_symbol_condition_matches_the_layer_and_the_full_jacobian() -> None:
    spec = arch.causal_conv_net(1, channels=4, length=48)
    layer = mw.build(spec, seed=0, dtype="float64").layers[1]
    kappa = layer.condition()["symbol_condition"]
    assert kappa == pytest.approx(symbol_condition(layer.weight.detach().numpy()))
    jac = torch.func.jacrev(layer)(torch.zeros(1, 4, 48, dtype=torch.float64)).reshape(192, 192)
    s = torch.linalg.svdvals(jac.detach())
    assert float(s[0] / s[-1]) == pytest.approx(kappa, rel=0.1)  # ρ < 1: J's κ ~ the symbol's


def test_jax_auto_plan_keeps_float32_exact_where_none_fails() -> None:
    pytest.importorskip("jax")
    from moonwalk_core.experiments.stability import stability_map

    table = stability_map([8], [0.1], inits=("orthogonal",), dtypes=("float32",),
                          policies=(None, "auto"), backend="jax")
    none, auto = table.set_index("policy").loc[["none", "auto"], "error"]
    assert auto < 1e-4 and not none < 1e-4, table.to_string()


def test_stability_map_is_a_tidy_table_with_one_row_per_config() -> None:
    from moonwalk_core.experiments.stability import COLUMNS, stability_map

    table = stability_map([2], [0.5], inits=("orthogonal",), dtypes=("float32", "float64"),
                          policies=(None, 2, "auto"))
    assert list(table.columns) == list(COLUMNS) and len(table) == 2 * 3
    assert (table.status == "ok").all() and (table.error < 1e-4).all()
    assert set(table.policy) == {"none", "every 2", "auto"}


def test_auto_plan_is_reused_only_while_the_weights_are_unchanged() -> None:
    spec, x, _, _ = _setup(4, 0.1)
    model = mw.build(spec, seed=0, dtype="float32")
    method = methods.Moonwalk(checkpoint_every="auto")
    first = auto_plan(model, method, x.float())
    assert auto_plan(model, method, x.float()) == first
    with torch.no_grad():  # an ill-conditioned lag-0 tap: the plan must see it
        model.layers[1].weight.data[..., -1] *= torch.linspace(1e-3, 1, 8)[:, None]
    assert auto_plan(model, method, x.float()) != first
