# Everything a newcomer needs, from nothing but Python 3.11+:
#   make run    install the service and run it (embedded PostgreSQL, no other services)
#   make test   install the dev tools and run the whole test suite
# Dependencies come from the hash-pinned lock files (requirements*.lock).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
UV     := $(BIN)/uv
UV_VERSION := 0.13.9

.PHONY: run test lint bench lock clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.runtime-installed: requirements.lock pyproject.toml | $(BIN)/python
	$(UV) pip install --quiet --python $(BIN)/python --require-hashes -r requirements.lock
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@

$(VENV)/.dev-installed: requirements-dev.lock pyproject.toml | $(BIN)/python
	$(UV) pip install --quiet --python $(BIN)/python --require-hashes -r requirements-dev.lock
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@ $(VENV)/.runtime-installed

run: $(VENV)/.runtime-installed
	$(BIN)/feedback-service serve

test: $(VENV)/.dev-installed
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy app tests bench migrations

bench: $(VENV)/.dev-installed
	$(BIN)/python -m bench $(BENCH_ARGS)
	$(BIN)/python -m bench.kafka
	$(BIN)/python -m bench.delivery
	$(BIN)/python -m bench.metrics

# Re-resolve the lock files after changing dependencies in pyproject.toml.
lock: | $(BIN)/python
	$(UV) pip compile pyproject.toml --python-version 3.11 --generate-hashes --no-header -q -o requirements.lock
	$(UV) pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes --no-header -q -o requirements-dev.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
