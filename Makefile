# One command sets everything up and runs the main job (`make repro`); one runs the tests
# (`make test`). Both create .venv from the pinned requirements when it is missing or stale.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# `make repro PROFILE=gpu` runs that profile (dvc exp run -S profile=...; it also sets
# `profile:` in params.yaml); without PROFILE, the profile params.yaml selects.
PROFILE ?=
GPU_STAMP := $(VENV)/.installed-gpu

.PHONY: setup setup-gpu repro test test-fast bench lab gpu-plan

$(STAMP): requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11) on PATH, or run: make PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/dvc config --local core.analytics false 2>/dev/null || true
	touch $(STAMP)

setup: $(STAMP)

# The CUDA builds of torch and JAX (requirements-gpu.txt) on top of the CPU pins; fails when the
# torch it leaves is not a CUDA build. See docs/gpu.md.
$(GPU_STAMP): $(STAMP) requirements-gpu.txt
	$(BIN)/pip install --quiet -r requirements-gpu.txt
	$(BIN)/python -c "import torch, sys; cuda = torch.version.cuda; print('torch', torch.__version__, 'CUDA', cuda, 'device visible:', torch.cuda.is_available()); sys.exit(0 if cuda else 'torch is a CPU build: reinstall torch==2.13.0 from PyTorch CUDA wheel index (docs/gpu.md)')"
	$(BIN)/python -c "import jax; print('jax', jax.__version__, 'devices:', jax.devices())"
	touch $(GPU_STAMP)

setup-gpu: $(GPU_STAMP)

# The main job: the whole pipeline on the chosen profile, then the report.
repro: setup
ifeq ($(strip $(PROFILE)),)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro
else
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc exp run --set-param profile=$(PROFILE)
endif
	@echo "report: reports/report.md (and reports/report.html)"

# The dry plan of a profile: estimated time and memory of each stage (default: gpu).
gpu-plan: setup
	$(BIN)/python -m moonwalk_core.experiments.plan --profile $(or $(PROFILE),gpu)

# Everything CI runs: lint, all tests not marked gpu (including the tiny pipeline run).
test: setup
	$(BIN)/ruff check moonwalk_core tests benchmarks examples
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -m "not gpu" -q

test-fast: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -m "not gpu and not slow" -q

bench: setup
	$(BIN)/python benchmarks/bench_torch_1d.py

# JupyterLab with the project's kernel (JupyterLab is pinned here, not needed by the pipeline).
lab: setup
	$(BIN)/pip install --quiet jupyterlab==4.6.6
	$(BIN)/python -m ipykernel install --user --name moonwalk --display-name "Python (moonwalk)"
	$(BIN)/jupyter lab notebooks/
