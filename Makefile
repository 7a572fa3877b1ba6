# One word for each thing CI does: `make check` runs all of them.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install test typecheck lint check bench run

$(BIN)/flowlib:
	python3 -m venv $(VENV) && $(BIN)/pip install -q -e '.[dev]'

install: $(BIN)/flowlib

test: install
	$(BIN)/pytest -q

typecheck: install
	$(BIN)/mypy

lint: install
	$(BIN)/ruff check .

check: test typecheck lint

run: install
	$(BIN)/flowlib run examples/log_agg.py

bench: install
	$(BIN)/python bench/run.py
