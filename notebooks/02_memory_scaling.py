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
# # E2 Memory vs depth for 1D causal conv nets
#
# Paper claim: Moonwalk needs markedly less memory than Backprop (figures: `params.yaml`,
# `paper:`). Stored bytes (package accounting) and peak memory (labelled by its source) per
# method and depth, fragmental (ReLU) and non-fragmental (leaky ReLU) nets.
#
# The numbers land in `reports/results/memory_scaling_<backend>.csv`; the claims table is in
# `reports/report.md`.

# %% tags=["parameters"]
profile = "cpu"
backend = "torch"

# %%
from moonwalk_core import config, paths, plotting
from moonwalk_core.experiments import memory_scaling

# %%
out = paths.result_file("memory_scaling", backend)
results = memory_scaling.run(config.load_profile(profile), backend=backend, out=out)
results

# %%
plotting.memory_vs_depth(results)
