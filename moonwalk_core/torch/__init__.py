"""PyTorch backend of Moonwalk: layers, ``build``, ``value_and_grad``, ``backward``
(docs/architecture.md)."""

from .._accuracy import MoonwalkAccuracyWarning
from ._activations import LeakyReLU, ReLU
from ._api import backward, gradient, value_and_grad
from ._base import AbstractLayer
from ._causal_conv import CausalConv1d
from ._containers import FullFragment, SignMask
from ._conv2d import CircularConv2d, Conv2d, MaskedConv2d
from ._distributed import all_reduce_grads, run_data_parallel
from ._from_module import RasterMask, from_module, to_module
from ._linear import ExpandingLinear, Linear
from ._memory import count_saved_tensors
from ._model import MoonwalkModel, build, export_weights, load_weights, register
from ._patch_conv import PatchConv1d
from ._patch_conv2d import PatchConv2d
from ._pool import AvgPool, MaxPool
from ._precision import ieee_float32, precision_flags, working_epsilon
from ._reshape import Flatten
from ._result import GradientResult, LayerPlan
from ._revnet import RevNetCoupling
from ._stability import plan_storage
from ._stem import Stem, Stem1d, Stem2d
from ._testing import check_layer, random_input

# one line per final layer class: what `build` can make from an architecture entry
for _cls in (Stem1d, Stem2d, CausalConv1d, PatchConv1d, LeakyReLU, ReLU, Linear, ExpandingLinear,
             Flatten, MaskedConv2d, CircularConv2d, PatchConv2d, AvgPool, MaxPool,
             RevNetCoupling):
    register(_cls)

__all__ = [
    "ieee_float32",
    "precision_flags",
    "working_epsilon",
    "AbstractLayer",
    "AvgPool",
    "CausalConv1d",
    "CircularConv2d",
    "Conv2d",
    "ExpandingLinear",
    "Flatten",
    "FullFragment",
    "GradientResult",
    "LayerPlan",
    "MaskedConv2d",
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
    "Stem1d",
    "Stem2d",
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
