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
# # E7 Training conv nets on MNIST-1D and 8x8 digits with Moonwalk and Backprop
#
# Paper claim: Moonwalk's gradients train networks as Backprop's do. A 1D net on MNIST-1D
# (`data/mnist1d.npz` from the `data` stage) and a 2D masked-conv net on scikit-learn's
# bundled 8x8 digits, each with ReLU (fragmental) and leaky ReLU; same seed, same batches,
# Adam.
#
# The numbers land in `reports/results/training_<backend>.csv`; the claims table is in
# `reports/report.md`.

# %% tags=["parameters"]
profile = "cpu"
backend = "torch"

# %%
from moonwalk_core import config, paths, plotting
from moonwalk_core.experiments import training

# %%
out = paths.result_file("training", backend)
results = training.run(config.load_profile(profile), backend=backend, out=out)
results

# %%
plotting.training_curves(results)
