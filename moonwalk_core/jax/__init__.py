"""JAX backend of Moonwalk: layers, ``build``, ``value_and_grad``, ``compiled_memory``
(docs/architecture.md).

The mirror of :mod:`moonwalk_core.torch`: the same file names, public names, argument names and
meanings, everything pure and ``jit``-compatible. Backend-only names: ``compiled_memory`` here
(XLA's memory analysis); ``backward`` and ``count_saved_tensors`` only in torch (no ``.grad``
slots, no autograd tape to hook).

Layers are Equinox modules (``AbstractLayer(eqx.Module)`` -> final layers) rather than plain
pytrees: a module is a pytree whose static fields (dilation, slope, index) stay out of
``jit``'s traced arguments, ``eqx.tree_at`` swaps parameters without hand-written flatten rules,
``eqx.filter_jit`` compiles functions that take a model, and the layer classes keep the torch
backend's template-method structure. Residuals and fragments are small Equinox modules too.

One deliberate structural difference: the engine scans (``lax.scan``) over runs of identical
layers (``_runs.py``), since XLA's CPU buffer assignment would otherwise keep one buffer per
unrolled layer (Note: [why scan over layers]).
"""

from .._accuracy import MoonwalkAccuracyWarning
from ._activations import LeakyReLU, ReLU
from ._api import gradient, value_and_grad
from ._base import AbstractLayer
from ._causal_conv import CausalConv1d
from ._containers import FullFragment, SignMask
from ._conv2d import CircularConv2d, Conv2d, MaskedConv2d
from ._from_module import (
    RasterMask,
    from_module,
    grads_to_module,
    module_value_and_grad,
    to_module,
)
from ._linear import ExpandingLinear, Linear
from ._memory import compiled_memory, device_memory_peak
from ._model import MoonwalkModel, build, export_weights, load_weights, register
from ._patch_conv import PatchConv1d
from ._patch_conv2d import PatchConv2d
from ._pool import AvgPool, MaxPool
from ._precision import ieee_float32, precision_flags, working_epsilon
from ._reshape import Flatten
from ._result import GradientResult, LayerPlan
from ._revnet import RevNetCoupling
from ._sharding import batch_mesh, data_parallel_value_and_grad
from ._stability import plan_storage
from ._stem import Stem, Stem1d, Stem2d
from ._testing import check_layer, random_input

# one line per final layer class: what `build` can make from an architecture entry
for _cls in (Stem1d, Stem2d, CausalConv1d, PatchConv1d, LeakyReLU, ReLU, Linear, ExpandingLinear,
             Flatten, MaskedConv2d, CircularConv2d, PatchConv2d, AvgPool, MaxPool,
             RevNetCoupling):
    register(_cls)

__all__ = [
    "device_memory_peak",
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
    "batch_mesh",
    "build",
    "check_layer",
    "compiled_memory",
    "data_parallel_value_and_grad",
    "export_weights",
    "from_module",
    "gradient",
    "grads_to_module",
    "load_weights",
    "module_value_and_grad",
    "plan_storage",
    "random_input",
    "register",
    "to_module",
    "value_and_grad",
]
