# labkit: `make demo` runs the main job on embedded defaults, `make test` runs every test.
# Both create .venv when missing and (re)install labkit into it when pyproject.toml changes.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.labkit-installed
PYTEST_ARGS ?=

.PHONY: demo test lint bench sysdeps install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --progress-bar off -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/labkit demo --out demo_project --force --audit

# Debian packages the tests need (PostgreSQL server, Chromium); apt-get as root.
sysdeps:
	@bash scripts/install-sysdeps.sh

# ruff and mypy (configured in pyproject.toml) must be clean before the tests run
lint: $(STAMP)
	$(VENV)/bin/ruff check labkit tests benchmarks
	$(VENV)/bin/mypy

test: $(STAMP) sysdeps lint
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m pytest -m bench benchmarks -s $(PYTEST_ARGS)

clean:
	rm -rf demo_project .pytest_cache
