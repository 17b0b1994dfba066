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
# `paper:`) on fragmental (ReLU) nets. Stored bytes (package accounting), the activation peak
# of one gradient and (torch) the peak of a whole training step (labelled by their sources),
# per method and depth, for the plain framework net, the package's methods, and ReLU and
# leaky-ReLU nets.
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

# %%
memory_scaling.summarize(results)
