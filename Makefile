# Set-up and checks. `make test` and `make demo` work on a fresh machine with Python 3.10+.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test test-sdk-next lint demo emulator bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Test files run on 2 workers (pytest-xdist), each file on one worker: every test has its own
# emulator (port 0), temporary directories and databases; `make emulator` tests take a lock.
# PYTEST_ARGS= runs them one after another.
PYTEST_ARGS ?= -n 2 --dist loadfile
test: $(STAMP)
	$(BIN)/ruff check tap_close tests
	$(BIN)/mypy tap_close
	$(BIN)/python -m pytest $(PYTEST_ARGS) tests

lint: $(STAMP)
	$(BIN)/ruff check tap_close tests
	$(BIN)/mypy tap_close

# The suite on the newest singer-sdk release, pre-releases included, in its own venv (the pin in
# pyproject.toml stays; pip warns that the newer SDK is outside it).
NEXT := .venv-sdk-next
test-sdk-next:
	$(PYTHON) -m venv $(NEXT)
	$(NEXT)/bin/python -m pip install --quiet --upgrade pip
	$(NEXT)/bin/python -m pip install --quiet -e '.[test]'
	$(NEXT)/bin/python -m pip install --quiet --upgrade --pre 'singer-sdk[msgspec,faker,testing]'
	$(NEXT)/bin/python -c 'import importlib.metadata as m; print("singer-sdk", m.version("singer-sdk"))'
	$(NEXT)/bin/ruff check tap_close tests
	$(NEXT)/bin/mypy tap_close
	$(NEXT)/bin/python -m pytest tests

demo: $(STAMP)
	$(BIN)/python -m tests.demo

# The Close API emulator alone, on http://127.0.0.1:8765 (key api_emulator_key; OAuth app
# emu_client / emu_secret: authorize, token, revoke) until Ctrl-C.
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
	rm -rf $(VENV) $(NEXT) .loader-venvs .bench-venv demo-output .mypy_cache .ruff_cache
