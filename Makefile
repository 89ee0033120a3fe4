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

.PHONY: install demo test check lint typecheck pytest test-slow lock clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip setuptools wheel
	$(PIP) install -c requirements.lock $(TORCH)
	# sam2 ships only as source: build it against the torch above, without its CUDA extension
	SAM2_BUILD_CUDA=0 $(PIP) install --no-build-isolation -c requirements.lock sam2==1.1.0
	$(PIP) install -c requirements.lock -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/curator demo

lint: $(STAMP)
	$(BIN)/ruff check curator benchmarks api selectors tests

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck

# tests/test_web.py drives a real Chromium: Debian's `chromium`, or $CURATOR_CHROMIUM.
pytest: $(STAMP)
	@browser="$${CURATOR_CHROMIUM:-$$(command -v chromium || true)}"; \
	if [ -z "$$browser" ] || [ ! -x "$$browser" ]; then \
		echo "!!! BROWSER TESTS CANNOT RUN: no Chromium found (CURATOR_CHROMIUM unset or not executable, no chromium on PATH)."; \
		echo "!!! tests/test_web.py will skip (and FAIL when CI is set). Get one: sudo apt-get install chromium, or CURATOR_CHROMIUM=/path/to/chromium make test"; \
	fi
	$(BIN)/python -m pytest -q -n auto

test: check pytest

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --runslow

# Refresh the pinned versions from the current environment.
lock:
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e ' > requirements.lock

clean:
	rm -rf $(VENV) curator-data demo-report .pytest_cache .mypy_cache .ruff_cache
