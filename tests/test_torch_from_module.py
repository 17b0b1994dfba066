"""A user's own nn.Sequential under Moonwalk: from_module shares the user's parameters (the same
training loop with one line changed ends at autograd's parameters, float64), to_module is its
inverse, and every module Moonwalk cannot invert is refused with its position and the reason."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

import moonwalk_core.torch as mwt
from moonwalk_core import arch, methods

from .helpers import RTOL, assert_grads_close, assert_rel_close, grads_rel_error


def masked(conv: nn.Conv2d) -> nn.Conv2d:
    parametrize.register_parametrization(conv, "weight", mwt.RasterMask())
    return conv


def net_1d() -> tuple[nn.Sequential, tuple[int, ...]]:
    """Every 1D module: padded stem, dilated causal conv (no bias), nested Sequential, patch
    conv, pools, Identity, both activations, Flatten, Linear."""
    return nn.Sequential(
        nn.ConstantPad1d((2, 0), 0.0), nn.Conv1d(2, 6, 3),
        nn.LeakyReLU(0.5),
        nn.Sequential(nn.ZeroPad1d((4, 0)), nn.Conv1d(6, 6, 3, dilation=2, bias=False),
                      nn.Identity(), nn.ReLU()),
        nn.Conv1d(6, 6, 1),
        nn.MaxPool1d(2),
        nn.Conv1d(6, 8, 2, stride=2), nn.LeakyReLU(0.3),
        nn.AvgPool1d(2),
        nn.Flatten(), nn.Linear(16, 5),
    ).double(), (2, 16)


def net_2d() -> tuple[nn.Sequential, tuple[int, ...]]:
    """Every 2D module: stem, raster-masked and circular convs (odd and even kernels), pools,
    patch conv, Linear."""
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.LeakyReLU(0.5),
        masked(nn.Conv2d(4, 4, 3, padding=1)), nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1, padding_mode="circular"), nn.LeakyReLU(0.5),
        nn.ZeroPad2d((1, 0, 1, 0)), masked(nn.Conv2d(4, 4, 2)),
        nn.CircularPad2d((1, 0, 1, 0)), nn.Conv2d(4, 4, 2),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 2, stride=2), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(6, 3),
    ).double(), (3, 8, 8)


NETS = {"1d": net_1d, "2d": net_2d}
MW = methods.Moonwalk(block_size=2)


def batches(shape: tuple[int, ...], classes: int, n: int = 3) -> list[tuple[torch.Tensor, ...]]:
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(4, *shape, generator=g, dtype=torch.float64),
             torch.randint(0, classes, (4,), generator=g)) for _ in range(n)]


def train(seq: nn.Sequential, data: list, *, moonwalk: bool, shape: tuple[int, ...]) -> None:
    """The user's loop: Adam built on the user's model before anything else."""
    opt = torch.optim.Adam(seq.parameters(), lr=1e-2)
    model = mwt.from_module(seq, shape) if moonwalk else None
    for x, y in data:
        opt.zero_grad()
        if moonwalk:
            mwt.backward(model, F.cross_entropy, x, y, method=MW)  # the one changed line
        else:
            F.cross_entropy(seq(x), y).backward()
        opt.step()


@pytest.mark.parametrize("net", NETS)
def test_drop_in_training_ends_at_autograds_parameters(net: str) -> None:
    seq, shape = NETS[net]()
    mwt.from_module(seq, shape, init="orthogonal", seed=3)  # well-conditioned start
    twin = copy.deepcopy(seq)
    data = batches(shape, seq[-1].out_features)
    train(seq, data, moonwalk=True, shape=shape)
    train(twin, data, moonwalk=False, shape=shape)
    ours, ref = dict(seq.named_parameters()), dict(twin.named_parameters())
    err = grads_rel_error(ours, ref)
    print(f"{net}: parameters after {len(data)} Adam steps, Moonwalk vs autograd: {err:.2e}")
    assert err < RTOL["float64"]
    # the steps did move the parameters (the comparison is not trivially satisfied)
    start, _ = NETS[net]()
    mwt.from_module(start, shape, init="orthogonal", seed=3)
    assert grads_rel_error(ours, dict(start.named_parameters())) > 1e-3


@pytest.mark.parametrize("net", NETS)
def test_gradients_land_on_the_users_parameters(net: str) -> None:
    seq, shape = NETS[net]()
    model = mwt.from_module(seq, shape, init="orthogonal")
    assert {id(p) for p in model.parameters()} == {id(p) for p in seq.parameters()}
    x, y = batches(shape, seq[-1].out_features, 1)[0]
    assert_rel_close(model(x), seq(x), "float64", "forward")
    F.cross_entropy(seq(x), y).backward()
    ref = {k: p.grad for k, p in seq.named_parameters()}
    seq.zero_grad(set_to_none=True)
    mwt.backward(model, F.cross_entropy, x, y, method=MW)
    assert_grads_close({k: p.grad for k, p in seq.named_parameters()}, ref, "float64", net)


def test_a_conv_without_bias_gets_no_bias_gradient() -> None:
    seq, shape = net_1d()
    model = mwt.from_module(seq, shape)
    conv = seq[3][1]
    assert conv.bias is None
    names = dict(model.named_parameters())
    assert not any(k.startswith("layers.2.bias") for k in names)  # layer 2: that conv
    assert names["layers.2.weight"] is conv.weight


def full_spec() -> arch.ArchSpec:
    return arch.load({"input_shape": [2, 8, 8], "layers": [
        {"type": "stem", "channels": 4, "kernel_size": 2},
        {"type": "conv2d", "kernel_size": 3, "mode": "masked"},
        {"type": "leaky_relu", "negative_slope": 0.4},
        {"type": "conv2d", "kernel_size": 2, "mode": "circular"},
        {"type": "relu"},
        {"type": "conv2d", "kernel_size": 2, "mode": "masked"},
        {"type": "max_pool", "size": 2},
        {"type": "patch_conv2d", "channels": 6, "patch": 2},
        {"type": "avg_pool", "size": 2},
        {"type": "flatten"},
        {"type": "linear", "features": 3},
    ]})


@pytest.mark.parametrize("spec", [full_spec(), arch.causal_conv_net(
    2, channels=4, in_channels=2, length=16, dilation=2, patch=4, classes=3)],
    ids=["2d", "1d"])
def test_to_module_is_the_plain_baseline_on_the_same_parameters(spec: arch.ArchSpec) -> None:
    model = mwt.build(spec, seed=0, dtype="float64")
    plain = mwt.to_module(model)
    assert all(type(m).__module__.startswith("torch.") for m in plain.modules()
               if not isinstance(m, mwt.RasterMask))
    assert {id(p) for p in plain.parameters()} == {id(p) for p in model.parameters()}
    x = torch.randn(3, *spec.input_shape, dtype=torch.float64)
    y = torch.tensor([0, 2, 1])
    assert_rel_close(plain(x), model(x), "float64", "forward")
    F.cross_entropy(plain(x), y).backward()
    autograd = {k: p.grad for k, p in model.named_parameters()}
    _, grads = mwt.value_and_grad(model, F.cross_entropy, x, y, method=MW)
    assert_grads_close(grads, autograd, "float64", "Moonwalk vs autograd on to_module")
    # round trip: the same description, the same parameter objects
    again = mwt.from_module(plain, spec.input_shape)
    assert again.spec.to_dict() == spec.to_dict()
    assert [id(p) for p in again.parameters()] == [id(p) for p in model.parameters()]


def test_to_module_refuses_a_revnet() -> None:
    with pytest.raises(ValueError, match=r"layer 0 \(revnet_coupling\).*no plain torch"):
        mwt.to_module(mwt.build(arch.revnet(1, channels=4, size=4, hidden=4)))


def test_conversion_keeps_every_tensor_on_the_parameters_device() -> None:
    """Under a meta default device, a tensor made without an explicit device lands on meta
    and the CPU gradients below would fail or differ."""
    seq, shape = net_2d()
    x, y = batches(shape, 3, 1)[0]
    ref_model = mwt.from_module(seq, shape, init="orthogonal")
    _, ref = mwt.value_and_grad(ref_model, F.cross_entropy, x, y, method=MW)
    torch.set_default_device("meta")
    try:
        model = mwt.from_module(seq, shape, init="orthogonal")
        _, grads = mwt.value_and_grad(model, F.cross_entropy, x, y, method=MW)
        plain = mwt.to_module(model)
        out = plain(x)
    finally:
        torch.set_default_device(None)
    assert all(g.device.type == "cpu" for g in grads.values())
    assert out.device.type == "cpu" and not any(b.is_meta for b in model.buffers())
    assert_grads_close(grads, ref, "float64", "under a meta default device")


# -- refusals ------------------------------------------------------------------------------------

def conv1(c_in: int = 4, c_out: int = 4, k: int = 3, **kw) -> nn.Conv1d:
    return nn.Conv1d(c_in, c_out, k, **kw)


def causal(c_in: int = 4, c_out: int = 4, k: int = 3, d: int = 1, **kw) -> list[nn.Module]:
    return [nn.ConstantPad1d(((k - 1) * d, 0), 0.0), conv1(c_in, c_out, k, dilation=d, **kw)]


def hooked() -> nn.Module:
    m = nn.ReLU()
    m.register_forward_hook(lambda *a: None)
    return m


def spectral() -> nn.Linear:
    return torch.nn.utils.parametrizations.spectral_norm(nn.Linear(64, 3))


REFUSALS_1D = {  # (modules after a [4, 16] input, position, what the message must say)
    "expanding conv not the stem": (
        [*causal(), nn.ReLU(), *causal(4, 8)], "4", r"expanding conv \(4 -> 8 channels\) that is "
        "not the stem"),
    "symmetric padding": ([conv1(padding=1)], "0", "symmetric or right padding"),
    "same padding": ([conv1(padding="same")], "0", "symmetric or right padding"),
    "right pad module": ([nn.ConstantPad1d((0, 2), 0.0), conv1()], "1", "symmetric or right"),
    "causal and right pad": ([nn.ConstantPad1d((2, 1), 0.0), conv1()], "1",
                             "symmetric or right"),
    "too little left pad": ([nn.ConstantPad1d((1, 0), 0.0), conv1()], "1",
                            r"needs nn.ConstantPad1d\(\(2, 0\), 0.0\)"),
    "no pad": ([conv1()], "0", "no padding is not causal"),
    "circular 1d": ([conv1(padding=2, padding_mode="circular")], "0", "symmetric or right"),
    "reflect pad": ([nn.ReflectionPad1d((2, 0)), conv1()], "1", "reflect padding"),
    "nonzero pad value": ([nn.ConstantPad1d((2, 0), 1.0), conv1()], "0", "value 1.0"),
    "padded twice": ([nn.ConstantPad1d((2, 0), 0.0), conv1(padding=1)], "1", "padded twice"),
    "pad before activation": ([nn.ConstantPad1d((2, 0), 0.0), nn.ReLU()], "0",
                              "right before the conv it pads; it is followed by module 1"),
    "pad at the end": ([*causal(), nn.ConstantPad1d((2, 0), 0.0)], "2", "last module"),
    "stride": ([nn.ConstantPad1d((2, 0), 0.0), conv1(stride=2)], "1",
               "stride=2 with kernel_size=3"),
    "dilated patch conv": ([conv1(k=2, stride=2, dilation=2)], "0", "dilation 1"),
    "stem dilation": ([*causal(4, 8, d=2)], "1", "stem .* dilation=2"),
    "groups": ([*causal(groups=2)], "1", "groups=2"),
    "narrowing conv": ([*causal(4, 2)], "1", "narrowing 4 -> 2"),
    "expanding patch conv": ([conv1(4, 9, 2, stride=2)], "0", "exceeds patch fan-in 8"),
    "in_channels": ([*causal(3, 3)], "1", "in_channels=3 but its input has 4"),
    "batch norm": ([*causal(), nn.BatchNorm1d(4)], "2", "normalization"),
    "layer norm": ([*causal(), nn.LayerNorm(16)], "2", "normalization"),
    "group norm": ([*causal(), nn.GroupNorm(2, 4)], "2", "normalization"),
    "dropout": ([*causal(), nn.Dropout(0.1)], "2", "dropout is random"),
    "gelu": ([*causal(), nn.GELU()], "2", "no Moonwalk layer for GELU"),
    "tanh": ([*causal(), nn.Tanh()], "2", "no Moonwalk layer for Tanh"),
    "leaky slope 0": ([nn.LeakyReLU(0.0)], "0", "negative_slope=0.0"),
    "leaky slope negative": ([nn.LeakyReLU(-0.2)], "0", "must be > 0"),
    "flatten dims": ([nn.Flatten(2)], "0", "start_dim=2"),
    "overlapping pool": ([nn.MaxPool1d(3, stride=2)], "0", "non-overlapping"),
    "padded pool": ([nn.AvgPool1d(2, padding=1)], "0", "non-overlapping"),
    "ceil pool": ([nn.AvgPool1d(2, ceil_mode=True)], "0", "ceil_mode"),
    "pool not dividing": ([nn.MaxPool1d(3, stride=3)], "0", "does not divide"),
    "2d pool on 1d": ([nn.MaxPool2d(2)], "0", r"needs \[C, H, W\]"),
    "linear before flatten": ([nn.Linear(16, 4)], "0", "put an nn.Flatten"),
    "linear in_features": ([nn.Flatten(), nn.Linear(60, 3)], "1", "in_features=60"),
    "spectral norm": ([nn.Flatten(), spectral()], "1", "parametrization .*_SpectralNorm"),
    "hooks": ([hooked()], "0", "hooks"),
    "conv2d on 1d": ([nn.Conv2d(4, 4, 3, padding=1)], "0", r"needs \[C, H, W\]"),
    "unsupported container": ([nn.ModuleList([nn.ReLU()])], "0", "no Moonwalk layer for Module"),
}


def conv2(c_in: int = 4, c_out: int = 4, k: int = 3, **kw) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, **kw)


REFUSALS_2D = {  # modules after a [4, 8, 8] input
    "unmasked zero-padded conv2d": ([conv2(padding=1)], "0", "full .unmasked. conv2d"),
    "masked circular": ([masked(conv2(padding=1, padding_mode="circular"))], "0",
                        "needs zero padding"),
    "reflect conv2d": ([conv2(padding=1, padding_mode="reflect")], "0",
                       "full .unmasked. conv2d with reflect padding"),
    "dilated conv2d": ([masked(conv2(padding=2, dilation=2))], "0", "dilation=2"),
    "wrong padding": ([masked(conv2(padding=2))], "0", r"needs \(1, 1, 1, 1\)"),
    "even kernel padding=1": ([masked(conv2(k=2, padding=1))], "0", r"needs \(1, 0, 1, 0\)"),
    "non-square": ([conv2(k=(3, 1), padding=(1, 0), padding_mode="circular")], "0",
                   "non-square"),
    "strided conv2d": ([masked(conv2(stride=2, padding=1))], "0", "stride=2 with kernel_size=3"),
    "masked stem": ([masked(conv2(4, 8, padding=1))], "0", "stem .* unmasked"),
    "masked patch conv": ([masked(conv2(k=2, stride=2))], "0", "no mask"),
    "expanding conv2d not the stem": (
        [masked(conv2(padding=1)), conv2(4, 8, padding=1)], "1", "expanding conv"),
    "batch norm 2d": ([nn.BatchNorm2d(4)], "0", "normalization"),
    "dropout 2d": ([nn.Dropout2d(0.1)], "0", "dropout is random"),
    "non-square pool": ([nn.AvgPool2d((2, 1))], "0", "non-overlapping"),
}


def _refused(modules: list[nn.Module], shape: tuple[int, ...], where: str, why: str) -> None:
    seq = nn.Sequential(*modules)
    with pytest.raises(ValueError, match=rf"module {where} \(.*\) cannot run under Moonwalk: "
                                         rf"(.|\n)*{why}"):
        mwt.from_module(seq, shape)


@pytest.mark.parametrize("case", REFUSALS_1D)
def test_refuses_1d(case: str) -> None:
    _refused(*REFUSALS_1D[case][:1], (4, 16), *REFUSALS_1D[case][1:])


@pytest.mark.parametrize("case", REFUSALS_2D)
def test_refuses_2d(case: str) -> None:
    _refused(*REFUSALS_2D[case][:1], (4, 8, 8), *REFUSALS_2D[case][1:])


def test_refuses_what_is_not_a_float32_or_float64_sequential() -> None:
    with pytest.raises(ValueError, match="expected an nn.Sequential"):
        mwt.from_module(nn.ModuleList([nn.ReLU()]), (4, 16))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="float16; Moonwalk runs in float32, float64 or bfloat16"):
        mwt.from_module(nn.Sequential(*causal()).half(), (4, 16))
    with pytest.raises(ValueError, match="init='xavier'"):
        mwt.from_module(nn.Sequential(*causal()), (4, 16), init="xavier")  # type: ignore
    with pytest.raises(ValueError, match="no layers"):
        mwt.from_module(nn.Sequential(nn.Identity()), (4, 16))
