# tradecast — developer entry points. `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-postgres test-sqlite lint format bench bench-smoke clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: install
	$(BIN)/tradecast serve

# The whole suite on PostgreSQL when it answers on TRADECAST_TEST_PG (default
# 127.0.0.1:5432), then again on SQLite; coverage is combined over both runs.
test: install
	rm -f .coverage .coverage.*
	if $(BIN)/python tests/pg_available.py; then \
		$(MAKE) --no-print-directory test-postgres; \
	else \
		echo "PostgreSQL is not reachable: running on SQLite only"; \
	fi
	$(MAKE) --no-print-directory test-sqlite

test-postgres: install
	TRADECAST_TEST_BACKEND=postgresql $(BIN)/pytest -n 2 --cov --cov-report= $(PYTEST_ARGS)

test-sqlite: install
	TRADECAST_TEST_BACKEND=sqlite $(BIN)/pytest -n 2 --cov --cov-append --cov-report=term --cov-fail-under=90 $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python -m bench

# Tiny data and two-second runs: keeps the benchmarks working, asserts no timings.
bench-smoke: install
	$(BIN)/python -m bench --smoke

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage data
