# terrascale: two set-up commands. Each creates .venv if missing and installs what it needs.
#   make demo   run the main job on the embedded sample data (CPU, minutes)
#   make test   check the import layers and ruff, then run the test suite
#   make bench  run the benchmarks (prints ratios against CDO, xarray-regrid, numpy)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.terrascale-installed
DEMO_DIR ?= runs/demo

.PHONY: demo test bench install clean

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

# The main job (`terrascale run`) arrives with the training/report issues; until then the demo
# runs every stage that exists, on the embedded sample data (Iberia, 2011-2030).
AGG := $(DEMO_DIR)/aggregated
demo: $(STAMP)
	$(BIN)/terrascale info
	$(BIN)/terrascale features configs/demo.yaml
	for store in $(DEMO_DIR)/inputs/*.zarr; do $(BIN)/terrascale validate $$store || exit 1; done
	$(BIN)/terrascale aggregate $(DEMO_DIR)/inputs/lai.zarr --var lai --grid N32 --method mean -o $(AGG)/lai_N32.nc
	$(BIN)/terrascale aggregate $(DEMO_DIR)/inputs/lai.zarr --var lai --grid 1deg --method std -o $(AGG)/lai_1deg_stats.nc
	$(BIN)/terrascale aggregate $(DEMO_DIR)/inputs/static.zarr --var igbp --grid 1deg --method fractions -o $(AGG)/igbp_fractions_1deg.nc
	$(BIN)/terrascale aggregate $(DEMO_DIR)/inputs/static.zarr --var igbp --grid 1deg --method fractions --crosswalk pipeline/datasets/data/igbp_pft_crosswalk.csv -o $(AGG)/pft_fractions_1deg.nc
	$(BIN)/terrascale aggregate $(DEMO_DIR)/inputs/static.zarr --var igbp --grid N32 --method majority -o $(AGG)/igbp_majority_N32.nc
	for f in $(AGG)/*.nc; do $(BIN)/terrascale validate $$f || exit 1; done
	@echo "demo outputs: $(DEMO_DIR)/{config.resolved.yaml,inputs/,features/,aggregated/}"

bench: $(STAMP)
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache
