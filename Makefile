# terrascale: two set-up commands. Each creates .venv if missing and installs what it needs.
#   make demo   run the main job (`terrascale run configs/demo.yaml`) on the embedded sample data (CPU, minutes)
#   make test   check the import layers and ruff, then run the test suite
#   make bench  run the benchmarks (prints ratios against CDO, xarray-regrid, numpy)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.terrascale-installed
DEMO_DIR ?= runs/demo

.PHONY: demo test bench install clean container-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first: on a machine without a GPU the pinned CPU build is taken, so that resolving the
# project's dependencies does not pull a multi-GB CUDA build of torch.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[test,slurm]"
	touch $(STAMP)

install: $(STAMP)

# the import layers (import-linter contracts in pyproject.toml) and ruff first: seconds, and a
# broken layer is a design problem worth seeing before the test failures it may cause
test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/ruff check pipeline kernels tests benchmarks
	$(BIN)/pytest -q

# The main job on the embedded sample data: both tasks, every model family, history and two
# scenarios, ESM outputs and the report (README, "The run directory"). A second `make demo`
# reuses every stage whose config and inputs did not change.
demo: $(STAMP)
	$(BIN)/terrascale info
	$(BIN)/terrascale run configs/demo.yaml -o $(DEMO_DIR)
	@echo "demo outputs: $(DEMO_DIR)/ (report: $(DEMO_DIR)/report.html, ESM files: $(DEMO_DIR)/esm/)"

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# Build the CPU image here without a daemon or registry (debootstrap base + buildah, chroot
# isolation) and run `terrascale info` and a tiny `terrascale run` inside it (root, ~8 minutes).
container-test:
	bash docker/container-test.sh

clean:
	rm -rf $(VENV) runs .pytest_cache
