# terrascale: two set-up commands. Each creates .venv if missing and installs what it needs.
#   make demo   run the main job on the embedded sample data (CPU, minutes)
#   make test   run the test suite
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

test: $(STAMP)
	$(BIN)/pytest -q

demo: $(STAMP)
	$(BIN)/terrascale info
	$(BIN)/terrascale data demo --region iberia --years 2011:2030 -o $(DEMO_DIR)/inputs
	for store in $(DEMO_DIR)/inputs/*.zarr; do $(BIN)/terrascale validate $$store || exit 1; done

bench: $(STAMP)
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache
