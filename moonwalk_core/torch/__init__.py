"""PyTorch backend of Moonwalk (SPEC §7): layers, ``build``, ``value_and_grad``, ``backward``."""

from ._activations import LeakyReLU, ReLU
from ._base import AbstractLayer
from ._causal_conv import CausalConv1d
from ._containers import FullFragment, SignMask
from ._conv2d import Conv2d
from ._distributed import all_reduce_grads, run_data_parallel
from ._engine import (
    MoonwalkAccuracyWarning,
    backward,
    gradient,
    plan_storage,
    value_and_grad,
)
from ._from_module import RasterMask, from_module, to_module
from ._linear import Linear
from ._memory import count_saved_tensors
from ._model import MoonwalkModel, build, export_weights, load_weights, register
from ._patch_conv import PatchConv1d
from ._patch_conv2d import PatchConv2d
from ._pool import AvgPool, MaxPool
from ._reshape import Flatten
from ._result import GradientResult, LayerPlan
from ._revnet import RevNetCoupling
from ._stem import Stem
from ._testing import check_layer, random_input

# one line per layer: what `build` can make from an architecture entry
for _cls in (Stem, CausalConv1d, PatchConv1d, LeakyReLU, ReLU, Linear, Flatten,
             Conv2d, PatchConv2d, AvgPool, MaxPool, RevNetCoupling):
    register(_cls)

__all__ = [
    "AbstractLayer",
    "AvgPool",
    "CausalConv1d",
    "Conv2d",
    "Flatten",
    "FullFragment",
    "GradientResult",
    "LayerPlan",
    "MaxPool",
    "LeakyReLU",
    "Linear",
    "MoonwalkAccuracyWarning",
    "MoonwalkModel",
    "PatchConv1d",
    "PatchConv2d",
    "RasterMask",
    "ReLU",
    "RevNetCoupling",
    "SignMask",
    "Stem",
    "all_reduce_grads",
    "backward",
    "build",
    "check_layer",
    "count_saved_tensors",
    "export_weights",
    "from_module",
    "gradient",
    "load_weights",
    "plan_storage",
    "random_input",
    "register",
    "run_data_parallel",
    "to_module",
    "value_and_grad",
]
