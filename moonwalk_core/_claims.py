"""The claims the report checks, and what each experiment section says.

Each claim names the summary file of a result (``reports/results/<result>.summary.json``), the
key holding our figure, the paper's figure in ``params.yaml`` (``paper:``) and how the verdict
is decided (``kind``): ``factor`` (ours / paper against ``verdict.reproduced_ratio``),
``gain`` (a factor above 1, no paper figure) or ``at_most`` (ours at most a threshold of
``verdict:``). Text here holds no figures: they come from params.yaml and the results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Claim", "CLAIMS", "EXPERIMENTS"]


@dataclass(frozen=True)
class Claim:
    """One row of the claims table."""

    id: str
    experiment: str
    text: str
    result: str
    key: str
    kind: Literal["factor", "gain", "at_most"]
    paper_text: str
    paper_key: str | None = None
    threshold: str | None = None
    lower_bound_key: str | None = None  # summary flag: ours is only a lower bound


CLAIMS: tuple[Claim, ...] = (
    Claim("exact_float64_torch", "E1", "Moonwalk gradients equal Backprop's (float64, torch)",
          "exactness_torch", "max_error_float64", "at_most", "exact gradients",
          threshold="exact_float64"),
    Claim("exact_float64_jax", "E1", "Moonwalk gradients equal Backprop's (float64, JAX)",
          "exactness_jax", "max_error_float64", "at_most", "exact gradients",
          threshold="exact_float64"),
    Claim("exact_float32_torch", "E1", "Moonwalk gradients match Backprop's (float32, torch)",
          "exactness_torch", "max_error_float32", "at_most", "exact gradients",
          threshold="exact_float32"),
    Claim("checkpoints_restore_exactness", "E1",
          "checkpoint_every='auto' keeps an ill-conditioned deep net exact (float64)",
          "exactness_torch", "auto_checkpoint_error_float64", "at_most",
          "— (no figure in the paper)", threshold="exact_float64"),
    Claim("memory_peak_ratio_1d", "E2",
          "Backprop / Moonwalk peak memory, deepest 1D net (torch)", "memory_scaling_torch",
          "peak_ratio_deepest", "factor",
          "{memory_gb_backprop} GB → {memory_gb_moonwalk} GB ({memory_ratio}×)", "memory_ratio"),
    Claim("memory_peak_ratio_1d_jax", "E2",
          "Backprop / Moonwalk compiled temporary memory, deepest 1D net (JAX)",
          "memory_scaling_jax", "peak_ratio_deepest", "factor", "{memory_ratio}×",
          "memory_ratio"),
    Claim("memory_stored_ratio_best", "E2",
          "Backprop / Moonwalk stored bytes, best 1D net (torch)", "memory_scaling_torch",
          "stored_ratio_max", "factor", "up to {memory_ratio_best}× less memory",
          "memory_ratio_best"),
    Claim("depth_ratio_1d", "E3",
          "Moonwalk (auto checkpoints) / Backprop max depth at a fixed budget (1D)",
          "max_depth_torch", "auto_depth_ratio", "factor",
          "{depth_backprop} → {depth_moonwalk} layers ({depth_ratio}×)", "depth_ratio",
          lower_bound_key="auto_hit_search_limit"),
    Claim("memory_peak_ratio_2d", "E4", "Backprop / Moonwalk peak memory, deepest 2D net",
          "conv2d_torch", "peak_ratio_deepest", "gain", "1D and 2D conv nets"),
    Claim("depth_ratio_2d", "E4",
          "Moonwalk (auto checkpoints) / Backprop max depth at a fixed budget (2D)",
          "conv2d_torch", "auto_depth_ratio", "gain", "1D and 2D conv nets",
          lower_bound_key="auto_hit_search_limit"),
    Claim("runtime_ratio", "E5", "Moonwalk (block-wise) time / Backprop time, deepest net",
          "runtime_torch", "moonwalk_block_time_ratio", "at_most",
          "same compute ({runtime_ratio}×)", "runtime_ratio", threshold="runtime_slack"),
    Claim("pure_vs_naive_small", "E6",
          "PureForward speed-up over NaiveForward, small RevNet", "revnet_modes_torch",
          "speedup_depth_{revnet_depth_small}", "factor",
          "{pure_vs_naive_small}× at {revnet_depth_small} layers", "pure_vs_naive_small"),
    Claim("pure_vs_naive_large", "E6",
          "PureForward speed-up over NaiveForward, deep RevNet", "revnet_modes_torch",
          "speedup_depth_{revnet_depth_large}", "factor",
          "{pure_vs_naive_large}× at {revnet_depth_large} layers", "pure_vs_naive_large"),
    Claim("training_accuracy_gap", "E7",
          "MNIST-1D: test-accuracy gap, Moonwalk vs Backprop, same seed", "training_torch",
          "accuracy_gap", "at_most", "gradients usable for training",
          threshold="accuracy_gap"),
    Claim("backends_agree", "E8", "torch and JAX gradients agree (same weights, float64)",
          "backends", "max_torch_vs_jax", "at_most", "—", threshold="exact_float64"),
)

# experiment -> (title, result stems, what is measured)
EXPERIMENTS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "E1": ("Exactness and stability", ("exactness_torch", "exactness_jax"),
           "Moonwalk's gradient error against float64 Backprop on 1D causal conv nets "
           "(orthogonal init, leaky-ReLU and ReLU), the stability map over slope × init × "
           "depth, and cotangent checkpoints at the map's worst corner."),
    "E2": ("Memory vs depth, 1D", ("memory_scaling_torch", "memory_scaling_jax"),
           "Stored bytes and peak memory of one gradient vs depth, non-fragmental (leaky ReLU) "
           "and fragmental (ReLU) nets, for Backprop, Checkpointed and Moonwalk."),
    "E3": ("Max depth at a fixed budget, 1D", ("max_depth_torch",),
           "The deepest 1D net whose measured peak fits the budget, Backprop vs Moonwalk."),
    "E4": ("2D conv nets", ("conv2d_torch",),
           "E2 and E3 for 2D conv nets (synthetic tensors of CIFAR-10's per-example shape)."),
    "E5": ("Runtime and block size", ("runtime_torch",),
           "Median time per gradient vs depth as ratios to Backprop, and Moonwalk's block "
           "size against time, stored bytes and error."),
    "E6": ("RevNet and the v1 forward modes", ("revnet_modes_torch",),
           "PureForward vs NaiveForward speed-up, and the mixed mode, Backprop and "
           "RevBackprop: time, stored bytes and error on RevNets."),
    "E7": ("Training on MNIST-1D", ("training_torch",),
           "A 1D conv net trained with Moonwalk and with Backprop from the same seed and "
           "batches (Adam): training loss and test accuracy per epoch."),
    "E8": ("torch vs JAX", ("backends",),
           "Same weights in both backends: gradient agreement and each backend's memory "
           "accounting."),
}
