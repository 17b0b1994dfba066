# One command sets everything up and runs the main job (`make repro`); one runs the tests
# (`make test`). Both create .venv from the pinned requirements when it is missing or stale.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PROFILE ?= cpu

.PHONY: setup repro test test-fast bench lab

$(STAMP): requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11) on PATH, or run: make PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/dvc config --local core.analytics false 2>/dev/null || true
	touch $(STAMP)

setup: $(STAMP)

# The main job: the whole pipeline on the chosen profile (default: cpu), then the report.
repro: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro
	@echo "report: reports/report.md (and reports/report.html)"

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
