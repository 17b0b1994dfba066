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
# # E1 Exactness: Moonwalk vs Backprop gradients, and the stability map
#
# Paper claim: *exact gradients*. Moonwalk's error against Backprop in float64 per network,
# dtype, activation and block size; the stability map over leaky-ReLU slope × init × depth;
# cotangent checkpoints at the map's worst corner.
#
# The numbers land in `reports/results/exactness_<backend>.csv`; the claims table is in
# `reports/report.md`.

# %% tags=["parameters"]
profile = "cpu"
backend = "torch"

# %%
from moonwalk_core import config, paths, plotting
from moonwalk_core.experiments import exactness

# %%
out = paths.result_file("exactness", backend)
results = exactness.run(config.load_profile(profile), backend=backend, out=out)
results

# %%
plotting.error_vs_depth(results)
