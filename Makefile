# Set-up and checks. `make test` and `make demo` work on a fresh machine with Python 3.10+.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint demo bench clean

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

clean:
	rm -rf $(VENV) demo-output .mypy_cache .ruff_cache
