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
# # E5 Runtime vs depth, and the block-size trade-off
#
# Paper claim: Moonwalk matches Backprop's runtime. ReLU nets (the paper's setting); median
# times over interleaved rounds as ratios to the plain torch net under autograd (quartiles
# kept); Moonwalk's block size against time, stored bytes and error; and peak memory against
# time per gradient beside `torch.utils.checkpoint` at every segment count (lower left wins).
#
# The numbers land in `reports/results/runtime_<backend>.csv`; the claims table is in
# `reports/report.md`.

# %% tags=["parameters"]
profile = "cpu"
backend = "torch"

# %%
from moonwalk_core import config, paths, plotting
from moonwalk_core.experiments import runtime

# %%
out = paths.result_file("runtime", backend)
results = runtime.run(config.load_profile(profile), backend=backend, out=out)
results

# %%
plotting.time_vs_depth(results)

# %%
plotting.block_size_tradeoff(results)

# %%
runtime.frontier_summary(results)

# %%
plotting.pareto(results)
