"""The Pareto figure's JAX panel: E2's compiled temp bytes at the deepest ReLU net, on its own
axis, labelled by source, and saying that no JAX time per gradient is measured."""

from __future__ import annotations

import numpy as np
import pandas as pd

from moonwalk_core import plotting

SOURCE = "XLA compiled memory analysis (temp bytes)"


def _jax_table() -> pd.DataFrame:
    rows = []
    for activation, scale in (("relu", 1.0), ("leaky_relu", 3.0)):
        for depth in (2, 4):
            rows += [{"activation": activation, "depth": depth, "method": m, "segments": None,
                      "peak_bytes": scale * depth * f * 2**20, "peak_source": SOURCE,
                      "status": "ok"}
                     for m, f in (("Plain autograd", 4.0), ("Backprop", 5.0),
                                  ("Moonwalk", 1.0))]
        rows += [{"activation": activation, "depth": 4, "segments": s,
                  "method": f"framework checkpoint, segments={s}", "status": "ok",
                  "peak_bytes": scale * (16.0 + s) * 2**20, "peak_source": SOURCE}
                 for s in (1, 2, 4)]
    rows.append({"activation": "relu", "depth": 4, "method": "framework checkpoint, "
                 "segments=3", "segments": 3, "peak_bytes": 1.0, "status": "failed"})
    return pd.DataFrame(rows)


def _torch_table() -> pd.DataFrame:
    return pd.DataFrame([{"part": "pareto", "method": m, "median_s": t, "peak_bytes": b,
                          "peak_source": "torch profiler", "status": "ok"}
                         for m, t, b in (("Plain autograd", 1.0, 100.0),
                                         ("checkpoint (2 seg)", 1.3, 60.0),
                                         ("Moonwalk (block 8)", 1.6, 30.0))])


def test_the_jax_panel_shows_the_deepest_relu_net_on_its_own_axis() -> None:
    fig = plotting.pareto(_torch_table(), jax=_jax_table())
    torch_ax, jax_ax = fig.axes[:2]
    assert "seconds" in torch_ax.get_xlabel() and "segments" in jax_ax.get_xlabel()
    (line, *hlines) = jax_ax.get_lines()
    np.testing.assert_array_equal(line.get_xdata(), [1, 2, 4])  # failed rows left out
    np.testing.assert_allclose(line.get_ydata(), [17.0, 18.0, 20.0])  # MiB, ReLU rows
    assert len(hlines) == 3  # one per method, at the deepest net only
    levels = {h.get_label(): h.get_ydata()[0] for h in hlines}
    assert levels == {"plain jax.grad": 16.0, "Backprop": 20.0, "Moonwalk": 4.0}
    title = jax_ax.get_title()
    assert "no JAX time per gradient is measured" in title and SOURCE in title.replace("\n", " ")
    assert "4 layers" in title


def test_without_a_jax_table_the_figure_has_one_panel() -> None:
    assert len(plotting.pareto(_torch_table()).axes) == 1
    empty = plotting.pareto(_torch_table(), jax=_jax_table().assign(segments=None))
    assert "no results" in empty.axes[1].texts[0].get_text()
