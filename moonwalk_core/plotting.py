"""Figures of the report: a tidy results DataFrame in, a matplotlib Figure out.

No pyplot state: every function builds its own :class:`matplotlib.figure.Figure` (safe in
loops and in the report stage). Rows whose ``status`` is not "ok" are left out; the report
lists them separately.
"""

from __future__ import annotations

import textwrap

import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = ["memory_vs_depth", "max_depth_bars", "time_vs_depth", "block_size_tradeoff",
           "error_vs_depth", "training_curves", "forward_mode_speedups", "backend_agreement",
           "pareto"]

sns.set_theme(style="whitegrid", context="paper")


def _show_in_notebooks() -> None:
    """In a Jupyter kernel, show a returned Figure as a PNG, as pyplot figures are shown.

    The figures here never go through pyplot, so the inline backend never registers its
    formatter for them, and a notebook cell ending in ``plotting.time_vs_depth(df)`` would
    display only ``<Figure size 450x340 with 1 Axes>`` (no image in the executed notebook).
    """
    try:
        from IPython import get_ipython
        from IPython.core.pylabtools import print_figure
    except ImportError:
        return
    shell = get_ipython()
    if shell is None or not hasattr(shell, "display_formatter"):
        return
    shell.display_formatter.formatters["image/png"].for_type(
        Figure, lambda fig: print_figure(fig, "png", bbox_inches="tight"))


_show_in_notebooks()


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["status"] == "ok"] if "status" in df else df


def _figure(ncols: int = 1, width: float = 4.5) -> tuple[Figure, list]:
    fig = Figure(figsize=(width * ncols, 3.4), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _mark_empty(ax: Axes, title: str) -> None:
    ax.text(0.5, 0.5, "no results (unavailable)", ha="center", va="center")
    ax.set_title(title)


def _empty(fig: Figure, ax: Axes, title: str) -> Figure:
    _mark_empty(ax, title)
    return fig


def memory_vs_depth(df: pd.DataFrame, *, title: str = "Memory vs depth") -> Figure:
    """Stored bytes (left) and peak bytes (right) vs depth, one line per method and activation
    (the framework-checkpointing rows, measured at one depth, are left to the tables)."""
    data = _ok(df)
    data = data[~data["method"].astype(str).str.startswith("framework checkpoint")]
    fig, axes = _figure(2)
    if data.empty:
        return _empty(fig, axes[0], title)
    for ax, column, source in zip(axes, ("stored_bytes", "peak_bytes"),
                                  ("stored_source", "peak_source"), strict=True):
        sns.lineplot(data=data, x="depth", y=data[column] / 2**20, hue="method",
                     style="activation", marker="o", ax=ax)
        label = data[source].iloc[0] if source in data else column
        ax.set(ylabel="MiB", title="\n".join([title, *textwrap.wrap(str(label), 48)]))
    return fig


def max_depth_bars(df: pd.DataFrame, *, title: str = "Max depth under the budget") -> Figure:
    """The deepest net each method fits in the budget."""
    data = _ok(df).dropna(subset=["max_depth"])
    fig, (ax,) = _figure(width=4.0)
    if data.empty:
        return _empty(fig, ax, title)
    sns.barplot(data=data, x="method", y="max_depth", hue="method", ax=ax)
    budget = data["budget_bytes"].iloc[0] / 2**20
    ax.set(ylabel="layers", xlabel="", title=f"{title} ({budget:g} MiB)")
    ax.tick_params(axis="x", labelrotation=20)
    ax.set_ylim(top=1.3 * data["max_depth"].max())
    if "self_check_at_max_depth" in data:  # a depth with a diverged self-check is not usable
        for i, check in enumerate(data["self_check_at_max_depth"]):
            if pd.notna(check) or data["method"].iloc[i] != "Backprop":
                finite = pd.notna(check) and abs(check) != float("inf")
                label = f"self-check\n{check:.0e}" if finite else "self-check\ndiverged"
                ax.annotate(label, (i, data["max_depth"].iloc[i]), ha="center", va="bottom",
                            fontsize=7)
    return fig


def time_vs_depth(df: pd.DataFrame, *,
                  title: str = "Time vs depth (ratio to plain autograd)") -> Figure:
    """Median per-round time ratio to the plain net, vs depth, one line per method."""
    data = _ok(df)
    data = data[data["part"] == "depth"] if "part" in data else data
    fig, (ax,) = _figure()
    if data.empty:
        return _empty(fig, ax, title)
    sns.lineplot(data=data, x="depth", y="ratio_to_baseline", hue="method", marker="o", ax=ax)
    ax.set(ylabel="time / plain autograd time", title=title)
    return fig


def block_size_tradeoff(df: pd.DataFrame, *, title: str = "Block size trade-off") -> Figure:
    """Moonwalk's time ratio, stored bytes and error against the block size (E5's
    ``pareto`` rows)."""
    data = _ok(df)
    if "moonwalk_block" not in data:
        data = data.iloc[0:0].assign(moonwalk_block=None)
    data = data[(data["part"] == "pareto") & data["moonwalk_block"].notna()].copy()
    fig, axes = _figure(3, width=3.4)
    if data.empty:
        return _empty(fig, axes[0], title)
    data["block"] = data["moonwalk_block"].astype(str)
    for ax, column, label in zip(axes, ("ratio_to_baseline", "stored_bytes", "error"),
                                 ("time / plain autograd", "stored bytes", "relative error"),
                                 strict=True):
        sns.barplot(data=data, x="block", y=column, ax=ax, color="C0")
        ax.set(xlabel="block size", ylabel=label, title=title if column == "stored_bytes" else "")
    axes[2].set_yscale("log")
    return fig


def error_vs_depth(df: pd.DataFrame, *, title: str = "Gradient error vs depth") -> Figure:
    """The stability map: relative error vs depth per slope and init (log scale), per dtype."""
    data = _ok(df)
    data = data[data["part"] == "map"] if "part" in data else data
    dtypes = sorted(data["dtype"].unique()) if not data.empty else [""]
    fig, axes = _figure(len(dtypes))
    if data.empty:
        return _empty(fig, axes[0], title)
    for ax, dtype in zip(axes, dtypes, strict=True):
        part = data[data["dtype"] == dtype].copy()
        part["error"] = part["error"].clip(lower=1e-17)
        sns.lineplot(data=part, x="depth", y="error", hue="slope", style="init", marker="o",
                     palette="viridis", ax=ax)
        ax.set(yscale="log", ylabel="relative error vs float64 Backprop",
               title=f"{title} ({dtype})")
    return fig


def training_curves(df: pd.DataFrame, *, title: str = "Training") -> Figure:
    """Training loss and test accuracy per epoch, Moonwalk and Backprop (colour), per data
    set and activation (line style)."""
    data = _ok(df)
    fig, axes = _figure(2)
    if data.empty:
        return _empty(fig, axes[0], title)
    if {"dataset", "activation"} <= set(data.columns):
        data = data.assign(run=data["dataset"].astype(str) + ", " + data["activation"].astype(str))
    else:
        data = data.assign(run="")
    sns.lineplot(data=data, x="epoch", y="train_loss", hue="method", style="run",
                 marker="o", ax=axes[0])
    sns.lineplot(data=data, x="epoch", y="test_accuracy", hue="method", style="run",
                 marker="o", ax=axes[1])
    axes[0].set(title=f"{title}: training loss")
    axes[1].set(title=f"{title}: test accuracy")
    return fig


def forward_mode_speedups(df: pd.DataFrame, speedups: pd.DataFrame, *,
                          title: str = "RevNet: forward modes") -> Figure:
    """Time per method vs depth (log) and PureForward's speed-up over NaiveForward."""
    data = _ok(df)
    fig, axes = _figure(2)
    if data.empty:
        return _empty(fig, axes[0], title)
    sns.lineplot(data=data, x="depth", y="median_s", hue="method", marker="o", ax=axes[0])
    axes[0].set(yscale="log", ylabel="seconds per gradient", title=title)
    if not speedups.empty:
        sns.barplot(data=speedups, x="depth", y="speedup", ax=axes[1], color="C2")
    axes[1].set(ylabel="NaiveForward / PureForward time", title="PureForward speed-up")
    return fig


def backend_agreement(df: pd.DataFrame, *, title: str = "torch vs JAX") -> Figure:
    """Relative difference of the two backends' gradients per depth and method."""
    data = _ok(df)
    fig, (ax,) = _figure()
    if data.empty:
        return _empty(fig, ax, title)
    data = data.assign(torch_vs_jax=data["torch_vs_jax"].clip(lower=1e-17))
    sns.barplot(data=data, x="depth", y="torch_vs_jax", hue="method", ax=ax)
    ax.set(yscale="log", ylabel="relative difference of gradients", title=title)
    return fig


def _family(method: str) -> str:
    for prefix in ("checkpoint", "Moonwalk"):
        if method.startswith(prefix):
            return prefix if prefix == "Moonwalk" else "torch.utils.checkpoint"
    return method


def pareto(df: pd.DataFrame, *, title: str = "Peak memory vs time per gradient",
           jax: pd.DataFrame | None = None) -> Figure:
    """Each method's peak memory against its median time per gradient (rows with a peak):
    checkpointing's segment counts joined as a line (its frontier), Moonwalk's variants and
    the rest as labelled points. Lower left is better.

    ``jax``: E2's JAX table (``memory_scaling_jax``); when given, a second panel shows its
    compiled temp bytes at the deepest net with ``jax.checkpoint`` rows (:func:`jax_memory`),
    on its own axis: another source, and no JAX time per gradient is measured."""
    data = _ok(df)
    if "part" in data:
        data = data[data["part"] == "pareto"]
    data = data.dropna(subset=["peak_bytes"]) if "peak_bytes" in data else data.iloc[0:0]
    fig, axes = _figure(ncols=1 if jax is None else 2, width=6.0)
    ax = axes[0]
    if jax is not None:
        _jax_memory_panel(jax, axes[1])
    if data.empty:
        return _empty(fig, ax, title)
    data = data.assign(family=data["method"].map(_family), peak_mib=data["peak_bytes"] / 2**20)
    checkpoint = data[data["family"] == "torch.utils.checkpoint"].sort_values("median_s")
    if not checkpoint.empty:
        ax.plot(checkpoint["median_s"], checkpoint["peak_mib"], color="0.6", zorder=1)
    sns.scatterplot(data=data, x="median_s", y="peak_mib", hue="family", style="family",
                    s=60, ax=ax, zorder=2)
    for r in data[data["family"] != "torch.utils.checkpoint"].itertuples():
        ax.annotate(str(r.method), (r.median_s, r.peak_mib), fontsize=6,
                    xytext=(3, 3), textcoords="offset points")
    source = str(data["peak_source"].iloc[0]) if "peak_source" in data else "peak"
    ax.set(xlabel="median seconds per gradient", ylabel="peak MiB",
           title="\n".join([title, *textwrap.wrap(source, 60)]))
    return fig


def _jax_memory_panel(df: pd.DataFrame, ax: Axes,
                      title: str = "JAX: memory only (no JAX time per gradient is measured)"
                      ) -> None:
    data = _ok(df).dropna(subset=["peak_bytes"]) if "peak_bytes" in df else df.iloc[0:0]
    if "activation" in data and (data["activation"] == "relu").any():
        data = data[data["activation"] == "relu"]  # the paper's (fragmental) setting
    with_segments = (data[data["segments"].notna()] if "segments" in data else data.iloc[0:0])
    if with_segments.empty:
        _mark_empty(ax, title)
        return
    depth = with_segments["depth"].max()
    data = data[data["depth"] == depth].assign(peak_mib=lambda d: d["peak_bytes"] / 2**20)
    checkpoint = data[data["segments"].notna()].sort_values("segments")
    ax.plot(checkpoint["segments"], checkpoint["peak_mib"], marker="o", markersize=3,
            color="0.4", label="jax.checkpoint (x: segments)")
    others = data[data["segments"].isna()]
    palette = sns.color_palette(n_colors=max(len(others), 1))
    for color, r in zip(palette, others.itertuples(), strict=False):
        label = {"Plain autograd": "plain jax.grad"}.get(str(r.method), str(r.method))
        ax.axhline(r.peak_mib, color=color, linestyle="--", linewidth=1,
                   label=label)
    ax.legend(fontsize=6)
    source = str(data["peak_source"].iloc[0]) if "peak_source" in data else "peak"
    ax.set(xlabel="jax.checkpoint segments", ylabel="MiB",
           title="\n".join([title, f"deepest ReLU net ({int(depth)} layers)",
                            *textwrap.wrap(source, 60)]))
