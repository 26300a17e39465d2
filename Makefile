# make setup | make test | make sample | make lint
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup test sample lint

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

test: setup
	$(BIN)/python -m pytest

sample: setup
	PATH="$(abspath $(BIN)):$$PATH" bash scripts/run_sample.sh

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
