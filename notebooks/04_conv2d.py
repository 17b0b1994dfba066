# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # E4 2D conv nets: memory vs depth and max depth
#
# Paper claim: the savings hold for 2D conv nets too. Memory vs depth and max depth at a
# budget, on synthetic tensors of CIFAR-10's per-example shape.
#
# The numbers land in `reports/results/conv2d_<backend>.csv`; the claims table is in
# `reports/report.md`.

# %% tags=["parameters"]
profile = "cpu"
backend = "torch"

# %%
from moonwalk_core import config, paths, plotting
from moonwalk_core.experiments import conv2d

# %%
out = paths.result_file("conv2d", backend)
results = conv2d.run(config.load_profile(profile), backend=backend, out=out)
results

# %%
plotting.memory_vs_depth(results[results["part"] == "memory"])

# %%
plotting.max_depth_bars(results[results["part"] == "max_depth"])
