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
# # E8 torch vs JAX: same weights, same gradients
#
# The torch model's weights are loaded into the JAX model; both backends compute each
# method's gradient on the same batch.
#
# The numbers land in `reports/results/backends.csv`; the claims table is in
# `reports/report.md`.

# %% tags=["parameters"]
profile = "cpu"
backend = "torch"

# %%
from moonwalk_core import config, paths, plotting
from moonwalk_core.experiments import backends

# %%
out = paths.result_file("backends")
results = backends.run(config.load_profile(profile), backend=backend, out=out)
results

# %%
plotting.backend_agreement(results)
