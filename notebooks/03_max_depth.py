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
# # E3 Max trainable depth at a fixed memory budget (1D)
#
# Paper claim: at the same memory budget Moonwalk trains much deeper nets than Backprop.
# A depth search of the measured peak against the profile's budget.
#
# The numbers land in `reports/results/max_depth_<backend>.csv`; the claims table is in
# `reports/report.md`.

# %% tags=["parameters"]
profile = "cpu"
backend = "torch"

# %%
from moonwalk_core import config, paths, plotting
from moonwalk_core.experiments import max_depth

# %%
out = paths.result_file("max_depth", backend)
results = max_depth.run(config.load_profile(profile), backend=backend, out=out)
results

# %%
plotting.max_depth_bars(results)
