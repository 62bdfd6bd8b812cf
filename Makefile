# Every target sets up what it needs: a virtual environment in .venv, refreshed only
# when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/python -c 'from shipyard.web._swagger import main; main()'  # /docs, served locally
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/shipyard demo

# Every test is either unit or integration (tests/_tiers.py marks them); `test` runs both.
test: $(STAMP)
	$(BIN)/pytest

# The unit tier: one process, no servers, sockets, PostgreSQL, Spark or subprocesses.
test-fast: $(STAMP)
	$(BIN)/pytest -m unit

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .venv-bench demo-output .pytest_cache .mypy_cache .ruff_cache
