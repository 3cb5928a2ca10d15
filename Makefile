# Every target installs what it needs into .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# One OpenBLAS thread per process (see bench/__init__.py): tests import numpy before bench.
export OPENBLAS_NUM_THREADS ?= 1

# The tests compare numbers to their last bits, and OpenBLAS's kernels (SVD, eigh, QR) round
# differently on different CPUs: they run on one that every x86-64 CPU since 2008 has
# (tests/conftest.py sets the same when pytest is run directly).
test test-slow test-all baseline golden mutation: export OPENBLAS_CORETYPE ?= Nehalem

.PHONY: setup bench test test-slow test-all check golden baseline data mutation perf lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

bench: $(STAMP)
	$(PY) -m bench run --out results

# The model families (bench/models.toml), into results/models.
.PHONY: bench-models
bench-models: $(STAMP)
	$(PY) -m bench run --suite models --out results/models

# COCO's BBOB noiseless functions (bench/bbob.toml), every rule, into results/bbob (not
# committed: over the size budget of results/, .gitignore).
.PHONY: bench-bbob
bench-bbob: $(STAMP)
	$(PY) -m bench run --suite bbob --out results/bbob

# CUTEst's unconstrained problems through sif2jax (the optional extra), into results/cutest.
.PHONY: cutest
cutest: $(STAMP)
	$(PY) -m pip install --quiet -e '.[cutest]'
	$(PY) -m bench run --suite cutest --out results/cutest

# Test tiers (pytest markers, pyproject.toml): test, the fast tier (under 5 minutes on 2
# cores; it holds make mutation's subset), and test-slow, what it leaves out (end-to-end
# runs, several processes or devices, other instruction sets, full-scale checks, the
# optional references): CI runs
# both, which together are test-all.
test: $(STAMP)
	$(PY) -m pytest -q -n 2 -m "not slow and not extensive and not reference" tests

# The slow tier runs the local executor's end-to-end test, which needs the `cluster` extra.
test-slow: $(STAMP)
	$(PY) -m pip install --quiet -e '.[cluster,bbob]'
	$(PY) -m pytest -q -n 2 -m "slow or extensive or reference" tests

test-all: $(STAMP)
	$(PY) -m pip install --quiet -e '.[cluster,bbob]'
	$(PY) -m pytest -q -n 2 tests

# Lint, format, types and the import layering: what pre-commit and CI run before the tests.
DEV_STAMP := $(VENV)/.installed-dev
$(DEV_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,dev]'
	touch $(DEV_STAMP)

check: $(DEV_STAMP)
	$(PY) -m ruff check optimizers problems bench tests
	$(PY) -m ruff format --check optimizers problems bench tests
	$(VENV)/bin/pyright
	$(PY) -m pytest -q -p no:cacheprovider tests/test_layering.py

# Float64 golden trajectories of every optimizer and schedule (tests/golden/); the only way they change.
golden: $(STAMP)
	$(PY) tests/test_golden.py

# The quick benchmark's reference numbers (tests/baseline/); the only way they change.
# Then every rule's quick benchmark under SSE4.2 and AVX2 must match it: a baseline that
# fails this check depends on the CPU and is not to be committed.
baseline: $(STAMP)
	$(PY) -m tests.test_regression
	OPTBENCH_PORTABLE=all $(PY) -m pytest -q -n 2 tests/test_portable.py -k quick_benchmark

# The stored matrices of the registered problems (problems/data/matrices.npz).
data: $(STAMP)
	$(PY) -c "from problems import stored; stored.write()"

# Single-token mutations of the update rules, losses and runner; writes results/MUTATION.md.
mutation: $(STAMP)
	$(PY) tests/mutation/run.py

# Speed, side by side in one run: update kernels vs optax and vs the rules' PyTorch
# references, sweeps vs one-run loops (optax, torch), compile time; writes
# results/perf.csv, PERF.md, perf_*.png. The torch baselines are optional and CPU-only: the
# +cpu pin keeps pip from ever fetching a CUDA build; timm and apollo-torch come without
# their dependencies, as for the parity tests (pyproject.toml, the reference extra).
perf: $(STAMP)
	$(PY) -m pip install --quiet -e '.[perf,reference]' 'torch==2.13.0+cpu' \
		&& $(PY) -m pip install --quiet --no-deps timm==1.0.31 apollo-torch==1.0.3 \
		|| echo "perf: the torch references are not installable here; what is missing is skipped"
	$(PY) -m bench.perf --out results

lint: $(STAMP)
	$(PY) -m ruff check optimizers problems bench tests

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
