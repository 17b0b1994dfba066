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
# # E6 RevNet: PureForward vs NaiveForward, mixed mode vs Backprop and RevBackprop
#
# Paper claim (v1): PureForward is much faster than NaiveForward on RevNets, linear against
# quadratic time in depth: speed-ups as medians over interleaved rounds (quartiles kept) and
# each mode's fitted depth exponent with its `95%` interval. Also the mixed mode against Backprop
# and RevBackprop, with peak memory at the deepest net.
#
# The numbers land in `reports/results/revnet_modes_<backend>.csv`; the claims table is in
# `reports/report.md`.

# %% tags=["parameters"]
profile = "cpu"
backend = "torch"

# %%
from moonwalk_core import config, paths, plotting
from moonwalk_core.experiments import revnet_modes

# %%
out = paths.result_file("revnet_modes", backend)
results = revnet_modes.run(config.load_profile(profile), backend=backend, out=out)
results

# %%
speedups = revnet_modes.speedups(results)
speedups

# %%
revnet_modes.summarize(results)

# %%
plotting.forward_mode_speedups(results, speedups)

# %%
plotting.pareto(results, title="RevNet: peak memory vs time per gradient")
