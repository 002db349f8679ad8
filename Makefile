# doughflow: `make run` sets up and trains on the built-in pizza data; `make test` sets up and tests.
PYTHON ?= python3.11
# TORCH=cuda: an NVIDIA GPU machine (x86_64 Linux, driver >= 580). It sets up .venv-cuda from
# constraints-cuda.txt (the CPU set plus PyPI's CUDA 13 torch wheel and its CUDA runtime) and builds
# DeepSpeed against that torch: `make setup TORCH=cuda`, `make run TORCH=cuda ARGS="train.device=cuda"`.
TORCH ?= cpu
ifeq ($(TORCH),cuda)
VENV ?= .venv-cuda
CONSTRAINTS ?= constraints-cuda.txt
# PyPI's Linux torch wheel is the CUDA build; a CPU wheel in a find-links folder would win the tie.
PIP_TORCH ?=
else ifeq ($(TORCH),cpu)
VENV ?= .venv
CONSTRAINTS ?= constraints-cpu.txt
# torch 2.13.0 CPU lies in /opt/wheels on our machines; elsewhere point PIP_TORCH at the CPU index,
# e.g. PIP_TORCH="--extra-index-url https://download.pytorch.org/whl/cpu".
PIP_TORCH ?= $(if $(wildcard /opt/wheels/torch-*),--find-links /opt/wheels,)
else
$(error TORCH must be cpu or cuda, not $(TORCH))
endif
CONFIG ?= configs/pizza.yaml
ARGS ?=
PY := $(VENV)/bin/python
# uv resolves and installs the same pinned set as pip in seconds instead of minutes (a fresh CI
# machine pays this every run); INSTALLER=pip uses pip alone.
INSTALLER ?= uv
BOOTSTRAP := $(PY) -m pip install --disable-pip-version-check -q -c $(CONSTRAINTS)
ifeq ($(INSTALLER),uv)
# unsafe-best-match: like pip, take each package's best version from any index, so a torch index
# in PIP_TORCH cannot shadow PyPI's releases of other packages.
# --compile-bytecode: pip writes .pyc at install and uv does not; where PYTHONDONTWRITEBYTECODE is set
# (as on our machines) every process would otherwise compile torch and prefect from source again.
PIP := $(VENV)/bin/uv pip install --python $(PY) -q -c $(CONSTRAINTS) --index-strategy unsafe-best-match \
	--compile-bytecode $(PIP_TORCH)
else
PIP := $(BOOTSTRAP) $(PIP_TORCH)
endif
STAMP := $(VENV)/.installed

.PHONY: setup run test test-fast test-flaky lint lint-check typecheck format clean stack-env check-cuda-constraints

setup: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS) constraints-cpu.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(if $(filter uv,$(INSTALLER)),$(BOOTSTRAP) uv,true)
	$(PIP) pip setuptools wheel
	$(PIP) torch
	# DeepSpeed ships only an sdist that imports torch at build time: build it against ours. Its ops
	# are compiled on first use (DS_BUILD_OPS=0), so no CUDA compiler is needed to install it.
	DS_BUILD_OPS=0 $(PIP) --no-build-isolation deepspeed
	$(PIP) -e '.[dev]'
	touch $(STAMP)

run: setup
	$(PY) -m flows.train --config $(CONFIG) $(ARGS)

# Test files run in 2 processes (pytest-xdist): the slowest files mostly wait on servers and
# subprocesses. A file stays on one process, so its module fixtures are built once. JOBS=0 runs serially.
JOBS ?= 2
XDIST = $(if $(filter-out 0,$(JOBS)),-n $(JOBS) --dist loadfile,)

test: setup
	$(PY) -m pytest $(XDIST) $(ARGS)

test-fast: setup
	$(PY) -m pytest $(XDIST) -m "not slow" $(ARGS)

# The flow tests RUNS times over, each round as `make test` runs them, and every test that ever failed
# (tests/support/flaky.py). `make test-flaky RUNS=3 FLAKY_PATHS="tests/unit/training"` for others.
RUNS ?= 5
FLAKY_PATHS ?= tests/flows
test-flaky: setup
	$(PY) -m tests.support.flaky --runs $(RUNS) --jobs $(JOBS) $(FLAKY_PATHS)

# ruff (lint + format check) and import-linter's contracts: flows -> tasks -> doughflow, Prefect only in
# doughflow/orchestration, no import cycles. `make format` rewrites in place; lint-check is all of it but
# the format check (quick while editing).
LINTED := doughflow tasks flows tests benchmarks
lint-check: setup
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/lint-imports

lint: lint-check
	$(VENV)/bin/ruff format --check $(LINTED)

# mypy over the library, tasks, flows and benchmarks ([tool.mypy] in pyproject.toml says what and how).
typecheck: setup
	$(VENV)/bin/mypy

format: setup
	$(VENV)/bin/ruff format $(LINTED)
	$(VENV)/bin/ruff check --fix $(LINTED)

# The compose stack's .env: .env.example with a fresh random value for every secret. Needs only
# the standard library (no set-up); never overwrites an existing .env.
stack-env:
	python3 -m doughflow.stack.dotenv

# Resolves constraints-cuda.txt for an x86_64 Linux GPU machine from package metadata alone (no CUDA,
# no download): that the pinned set is consistent and complete. Needs the package index.
check-cuda-constraints: setup
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --extra s3 --extra postgres --extra stack \
		-c constraints-cuda.txt --python-platform x86_64-manylinux_2_28 --python-version 3.11 --no-header -q \
		-o /dev/null

clean:
	rm -rf $(VENV) artifacts .pytest_cache
