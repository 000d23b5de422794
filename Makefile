# The two commands of the README. Both create or reuse .venv and install what they need.
VENV ?= .venv
ARGS ?=
# Byte-code is written on first import (set-up no longer compiles every file of every package).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: run test lint setup lab

run: setup  ## the whole notebook pipeline on the embedded default (STS-B, all-MiniLM-L6-v2)
	$(VENV)/bin/sttune run --preset default $(ARGS)

test: setup  ## the test suite
	@scripts/browser-setup.sh || true  # Chromium for tests/end_to_end/test_browser.py; never fails the tests
	$(VENV)/bin/python -m pytest $(ARGS)

lint: setup  ## ruff over the package, tests and benchmarks (configured in pyproject.toml)
	$(VENV)/bin/ruff check .

lab: setup  ## JupyterLab on your copies of the notebooks, in ./lab/ (sttune lab)
	$(VENV)/bin/sttune lab $(ARGS)

setup:
	@STTUNE_VENV=$(VENV) scripts/setup.sh
