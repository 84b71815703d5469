# The two commands a new user runs (see README): `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo test check lint types chaos bench dev browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The suite runs against the installed wheel (not the source tree), as a user would get it.
install: $(BIN)/python
	$(BIN)/python -m pip install --quiet ".[test]"

dev: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"

demo: install
	$(BIN)/daz demo

browser:
	@bash scripts/ensure-chromium.sh

test: install browser
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest $(PYTEST_ARGS)

check: test

lint: $(BIN)/python
	$(BIN)/ruff check src tests bench

types: $(BIN)/python
	$(BIN)/mypy

chaos: install
	$(BIN)/python -m pytest -m chaos tests/chaos

bench: install
	bash bench/run_all.sh

clean:
	rm -rf $(VENV) build dist *.egg-info src/*.egg-info
