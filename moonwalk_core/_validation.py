"""Checks both backends make before any work, worded once (bad input gets a ValueError that
names the problem and what is allowed).

Also the backend-neutral rules over a chain of layers that follow the contract
(:mod:`moonwalk_core.interface`): which prefix RevBackprop can invert, and which layers
PureForward cannot run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["check_input_shape", "check_weight_values", "reversible_prefix", "check_surjective",
           "check_jvp_count"]


def check_input_shape(shape: Sequence[int], expected: Sequence[int] | None) -> None:
    """``x`` must have a non-empty batch and the per-example shape the model expects.

    Raises:
        ValueError: naming the shape and what is expected.
    """
    shape = tuple(int(n) for n in shape)
    if not shape or shape[0] == 0:
        raise ValueError(f"x has shape {shape}: an empty batch (or no batch axis); a gradient "
                         "needs at least one example, x of shape (batch >= 1, *input_shape)")
    if expected is not None and shape[1:] != tuple(expected):
        raise ValueError(f"x has shape {shape}; the model expects "
                         f"(batch, {', '.join(map(str, expected))})")


def check_weight_values(expected: Mapping[str, tuple[int, ...]],
                        given: Mapping[str, tuple[tuple[int, ...], str, bool]]) -> None:
    """Every key present, no extra key, every shape equal, every dtype floating point.

    ``load_weights`` calls this before writing anything, so a bad dict leaves the model as it was.

    Args:
        expected: the model's parameter shapes by name.
        given: for each name of the weights dict, ``(shape, dtype name, is floating point)``.

    Raises:
        ValueError: listing every missing or unexpected key, or naming the first bad value.
    """
    missing, unexpected = set(expected) - set(given), set(given) - set(expected)
    if missing or unexpected:
        raise ValueError(f"load_weights: missing keys {sorted(missing)}, "
                         f"unexpected keys {sorted(unexpected)}")
    for name, want in expected.items():
        shape, dtype, floating = given[name]
        if tuple(shape) != tuple(want):
            raise ValueError(f"load_weights: {name} has shape {tuple(shape)}, "
                             f"the model expects {tuple(want)}")
        if not floating:
            raise ValueError(f"load_weights: {name} has dtype {dtype}; use floating-point "
                             "values (they are converted to the model's dtype)")


def reversible_prefix(layers: Iterable[Any]) -> int:
    """How many leading layers RevBackprop can invert (``reversible`` layers); the rest is the
    tail, whose inputs it keeps.

    Raises:
        ValueError: when the model does not start with a reversible layer, or when one comes
            after a layer that cannot be inverted.
    """
    layers = list(layers)
    n = next((i for i, layer in enumerate(layers) if not layer.reversible), len(layers))
    if n == 0:
        raise ValueError(f"layer 0 ({layers[0].type_name}): RevBackprop reconstructs inputs "
                         "from outputs and needs a model that starts with revnet_coupling "
                         "layers; use method=Backprop() or Moonwalk() for this model")
    for i, layer in enumerate(layers[n:], start=n):
        if layer.reversible:
            raise ValueError(f"layer {n} ({layers[n].type_name}) cannot be inverted, so "
                             f"RevBackprop cannot reconstruct the input of layer {i} "
                             f"({layer.type_name}) and everything below it; put every "
                             "non-invertible layer after the last coupling")
    return n


def check_surjective(layers: Iterable[Any]) -> None:
    """PureForward has no Phase II, so every layer's vijp must work without a fragment.

    Raises:
        ValueError: naming the first layer whose Jacobian is not surjective.
    """
    for i, layer in enumerate(layers):
        if not layer.surjective:
            raise ValueError(f"layer {i} ({layer.type_name}): its Jacobian is not "
                             "surjective, so its vijp needs a fragment, and PureForward has no "
                             "Phase II to store one; use method=Moonwalk() or a model without "
                             "expanding layers and ReLU")


def check_jvp_count(parameters: int, max_parameters: int) -> None:
    """NaiveForward takes one JVP per parameter: refuse models above ``max_parameters``.

    Raises:
        ValueError: naming the count and the limit.
    """
    if parameters > max_parameters:
        raise ValueError(f"NaiveForward: the model has {parameters} parameters, above "
                         f"max_parameters={max_parameters}; it would take {parameters} JVPs. "
                         "Use a smaller model, NaiveForward(max_parameters=...) or another "
                         "method (PureForward, Moonwalk)")
