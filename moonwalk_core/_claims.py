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

__all__ = ["Claim", "CLAIMS", "EXPERIMENTS", "OP_COUNT_FLOOR"]

OP_COUNT_FLOOR = 5 / 3
"""Moonwalk's passes over the net (forward, input vjp, forward again, vijp, parameter vjp)
over plain Backprop's (forward, input vjp, parameter vjp): the time ratio E5 is also judged
against."""


@dataclass(frozen=True)
class Claim:
    """One row of the claims table.

    ``scope``: "paper" for a claim in the paper's own setting (fragmental ReLU nets, the plain
    framework net as the reference), "beyond" for a measurement the paper does not make
    (non-fragmental nets, ``checkpoint_every="auto"``, the checkpointing frontier); the report
    marks the latter as beyond the paper.
    """

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
    sample_key: str | None = None  # summary key: the shortest timed sample, in seconds
    scope: Literal["paper", "beyond"] = "paper"


_NO_FIGURE = "— (no figure in the paper)"

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
          "exactness_torch", "auto_checkpoint_error_float64", "at_most", _NO_FIGURE,
          threshold="exact_float64", scope="beyond"),
    Claim("memory_step_ratio_1d", "E2",
          "Plain autograd / Moonwalk peak of a whole training step (weights, gradients, Adam "
          "state, activations), deepest ReLU 1D net (torch)", "memory_scaling_torch",
          "fragmental_plain_step_peak_ratio", "factor",
          "{memory_gb_backprop} GB → {memory_gb_moonwalk} GB ({memory_ratio}×)",
          "memory_ratio"),
    Claim("memory_peak_ratio_1d", "E2",
          "Plain autograd / Moonwalk activation peak (what one gradient adds), deepest ReLU "
          "1D net (torch)", "memory_scaling_torch", "fragmental_plain_peak_ratio", "factor",
          "{memory_ratio}× (from whole-process GB figures)", "memory_ratio"),
    Claim("memory_peak_ratio_1d_jax", "E2",
          "Plain jax.grad / Moonwalk compiled temporary memory, deepest ReLU 1D net (JAX)",
          "memory_scaling_jax", "fragmental_plain_peak_ratio", "factor", "{memory_ratio}×",
          "memory_ratio"),
    Claim("memory_stored_ratio_best", "E2",
          "Backprop / Moonwalk stored bytes, deepest ReLU 1D net (torch)",
          "memory_scaling_torch", "fragmental_stored_ratio", "factor",
          "up to {memory_ratio_best}× less memory", "memory_ratio_best"),
    Claim("memory_peak_ratio_1d_leaky", "E2",
          "Plain autograd / Moonwalk activation peak, deepest leaky-ReLU 1D net (torch)",
          "memory_scaling_torch", "nonfragmental_plain_peak_ratio", "gain", _NO_FIGURE,
          scope="beyond"),
    Claim("memory_step_ratio_1d_leaky", "E2",
          "Plain autograd / Moonwalk whole-training-step peak, deepest leaky-ReLU 1D net "
          "(torch)", "memory_scaling_torch", "nonfragmental_plain_step_peak_ratio", "gain",
          _NO_FIGURE, scope="beyond"),
    Claim("depth_ratio_1d", "E3",
          "Moonwalk / plain autograd max depth at a fixed budget, ReLU 1D nets",
          "max_depth_torch", "fragmental_moonwalk_depth_ratio", "factor",
          "{depth_backprop} → {depth_moonwalk} layers ({depth_ratio}×)", "depth_ratio",
          lower_bound_key="fragmental_moonwalk_hit_search_limit"),
    Claim("depth_ratio_1d_auto", "E3",
          "Moonwalk (auto checkpoints) / plain autograd max depth, ReLU 1D nets",
          "max_depth_torch", "fragmental_auto_depth_ratio", "gain", _NO_FIGURE,
          lower_bound_key="fragmental_auto_hit_search_limit", scope="beyond"),
    Claim("depth_ratio_1d_leaky", "E3",
          "Moonwalk / plain autograd max depth, leaky-ReLU 1D nets", "max_depth_torch",
          "nonfragmental_moonwalk_depth_ratio", "gain", _NO_FIGURE,
          lower_bound_key="nonfragmental_moonwalk_hit_search_limit", scope="beyond"),
    Claim("depth_ratio_1d_leaky_auto", "E3",
          "Moonwalk (auto checkpoints) / plain autograd max depth, leaky-ReLU 1D nets",
          "max_depth_torch", "nonfragmental_auto_depth_ratio", "gain", _NO_FIGURE,
          lower_bound_key="nonfragmental_auto_hit_search_limit", scope="beyond"),
    Claim("memory_peak_ratio_2d", "E4",
          "Backprop / Moonwalk peak memory, deepest leaky-ReLU 2D net",
          "conv2d_torch", "peak_ratio_deepest", "gain", "1D and 2D conv nets", scope="beyond"),
    Claim("depth_ratio_2d", "E4",
          "Moonwalk (auto checkpoints) / Backprop max depth at a fixed budget (2D)",
          "conv2d_torch", "auto_depth_ratio", "gain", "1D and 2D conv nets",
          lower_bound_key="auto_hit_search_limit", scope="beyond"),
    Claim("runtime_ratio", "E5",
          "Moonwalk (block-wise) time / plain autograd time, median over rounds, deepest ReLU "
          "net", "runtime_torch", "moonwalk_block_time_ratio", "at_most",
          "same compute ({runtime_ratio}×)", "runtime_ratio", threshold="runtime_slack"),
    Claim("runtime_over_floor", "E5",
          "Moonwalk (block-wise) time / its operation-count floor (`5/3` of plain autograd's)",
          "runtime_torch", "moonwalk_block_over_floor", "at_most", _NO_FIGURE,
          threshold="runtime_slack", scope="beyond"),
    Claim("below_checkpoint_frontier", "E5",
          "torch.utils.checkpoint's least peak no slower than Moonwalk / Moonwalk's peak "
          "(above 1: Moonwalk lies below checkpointing's frontier)", "runtime_torch",
          "frontier_peak_ratio", "gain", _NO_FIGURE, scope="beyond"),
    Claim("pure_vs_naive_small", "E6",
          "PureForward speed-up over NaiveForward, small RevNet", "revnet_modes_torch",
          "speedup_depth_{revnet_depth_small}", "factor",
          "{pure_vs_naive_small}× at {revnet_depth_small} layers", "pure_vs_naive_small",
          sample_key="shortest_sample_s"),
    Claim("pure_vs_naive_large", "E6",
          "PureForward speed-up over NaiveForward, deep RevNet", "revnet_modes_torch",
          "speedup_depth_{revnet_depth_large}", "factor",
          "{pure_vs_naive_large}× at {revnet_depth_large} layers", "pure_vs_naive_large",
          sample_key="shortest_sample_s"),
    Claim("training_accuracy_gap", "E7",
          "Test-accuracy gap, Moonwalk vs Backprop, same seed and batches: ReLU nets, "
          "MNIST-1D and 8x8 digits (worst)", "training_torch", "accuracy_gap", "at_most",
          "gradients usable for training", threshold="accuracy_gap"),
    Claim("training_accuracy_gap_leaky", "E7",
          "Test-accuracy gap as above, leaky-ReLU nets (worst)", "training_torch",
          "nonfragmental_accuracy_gap", "at_most", _NO_FIGURE, threshold="accuracy_gap",
          scope="beyond"),
    Claim("backends_agree", "E8", "torch and JAX gradients agree (same weights, float64)",
          "backends", "max_torch_vs_jax", "at_most", "—", threshold="exact_float64",
          scope="beyond"),
)

# experiment -> (title, result stems, what is measured)
EXPERIMENTS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "E1": ("Exactness and stability", ("exactness_torch", "exactness_jax"),
           "Moonwalk's gradient error against float64 Backprop on 1D causal conv nets "
           "(orthogonal init, leaky-ReLU and ReLU), the stability map over slope × init × "
           "depth, and cotangent checkpoints at the map's worst corner."),
    "E2": ("Memory vs depth, 1D", ("memory_scaling_torch", "memory_scaling_jax"),
           "Stored bytes, the activation peak of one gradient and (torch) the peak of a whole "
           "training step vs depth, fragmental (ReLU, the paper's setting) and non-fragmental "
           "(leaky ReLU) nets, for the plain framework net, Backprop, Checkpointed and "
           "Moonwalk."),
    "E3": ("Max depth at a fixed budget, 1D", ("max_depth_torch",),
           "The deepest 1D net whose measured peak fits the budget: the plain torch net, "
           "Backprop and Moonwalk, ReLU and leaky-ReLU nets."),
    "E4": ("2D conv nets", ("conv2d_torch",),
           "E2 and E3 for 2D conv nets (synthetic tensors of CIFAR-10's per-example shape)."),
    "E5": ("Runtime, block size and the memory/time frontier", ("runtime_torch",),
           "Median time per gradient vs depth as ratios to the plain torch net (quartiles over "
           "interleaved rounds), Moonwalk's block size against time, stored bytes and error, "
           "and peak memory against time per gradient for the plain net, Backprop, "
           "torch.utils.checkpoint at every segment count and Moonwalk (block sizes, auto). "
           "The Pareto figure's second panel is JAX's: E2's compiled temp bytes at the deepest "
           "ReLU net (plain jax.grad, jax.checkpoint at every segment count, the package's "
           "methods), memory only, on its own axis: the pipeline does not time JAX gradients."),
    "E6": ("RevNet and the v1 forward modes", ("revnet_modes_torch",),
           "PureForward vs NaiveForward speed-up (median and quartiles over rounds) and each "
           "mode's fitted depth exponent, and the mixed mode, Backprop and RevBackprop: time, "
           "stored bytes, error and (deepest net) peak memory on RevNets."),
    "E7": ("Training on MNIST-1D and 8x8 digits", ("training_torch",),
           "1D (MNIST-1D) and 2D (scikit-learn's 8x8 digits) conv nets, ReLU and leaky ReLU, "
           "trained with Moonwalk and with Backprop from the same seed and batches (Adam): "
           "training loss and test accuracy per epoch."),
    "E8": ("torch vs JAX", ("backends",),
           "Same weights in both backends: gradient agreement and each backend's memory "
           "accounting."),
}
