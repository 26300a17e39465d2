# make setup | make test | make test-fast | make sample | make push | make pull | make lint | make check | make bench
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup test test-fast sample push pull lint check bench

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[dev,standin]'
	touch $@

test: setup
	$(BIN)/python -m pytest

# The unit tests alone (no scratch repositories, stage scripts or torchrun): a quick check
# of a small change; `make test` (what CI runs) adds the end-to-end tests.
test-fast: setup
	$(BIN)/python -m pytest -m "not e2e"

sample: setup
	PATH="$(abspath $(BIN)):$$PATH" bash scripts/run_sample.sh

# Share results through the project's DVC remote (README, Share): dvc push / dvc pull with
# the remote checked first and a failed pull explained; ARGS go to dvc (ARGS=--run-cache).
push pull: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m imagenette_repro.experiments.remote $@ $(ARGS)

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

# The fault matrix (bad archives, images, params, full disks, SIGKILL, determinism) on tiny
# data; its table is committed in metrics/fault_matrix.md.
check: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m tests.faults --out metrics/fault_matrix

# Training speed against the common way, on this machine (not a test): figures in
# metrics/benchmark.json and .md. On the real JPEGs when ../shared/data has them, else on
# the embedded sample; BENCH_ARGS replaces the arguments (bench/benchmark.py --help).
BENCH_ARGS ?= $(firstword $(wildcard ../shared/data/imagenette2-224.tgz))
bench: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python bench/benchmark.py $(BENCH_ARGS)
