# Set-up and checks. `make test` and `make demo` work on a fresh machine with Python 3.10+.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint demo emulator bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check tap_close tests
	$(BIN)/mypy tap_close
	$(BIN)/python -m pytest tests

lint: $(STAMP)
	$(BIN)/ruff check tap_close tests
	$(BIN)/mypy tap_close

demo: $(STAMP)
	$(BIN)/python -m tests.demo

# The Close API emulator alone, on http://127.0.0.1:8765 (key api_emulator_key) until Ctrl-C.
# Options: make emulator EMULATOR_ARGS="--port 9000 --leads 1000" (see --help).
EMULATOR_ARGS ?=
emulator: $(STAMP)
	$(BIN)/python -m tests.emulator $(EMULATOR_ARGS)

.bench-venv/bin/tap-closeio:
	$(PYTHON) -m venv .bench-venv
	.bench-venv/bin/python -m pip install --quiet tap-closeio==1.6.6

bench: $(STAMP) .bench-venv/bin/tap-closeio
	$(BIN)/python -m tests.bench

clean:
	rm -rf $(VENV) .bench-venv demo-output .mypy_cache .ruff_cache
