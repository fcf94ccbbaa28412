# legato — the two commands a newcomer needs are `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint demo bench faults clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

demo: $(STAMP)
	$(BIN)/legato demo

bench: $(STAMP)
	$(BIN)/python -m bench

# The fault suite (about 30 minutes; `FAULTS=--quick` for 2 runs per trial).
faults: $(STAMP)
	$(BIN)/python -m bench.faults $(FAULTS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
