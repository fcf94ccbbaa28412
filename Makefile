# legato — the two commands a newcomer needs are `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint demo bench faults wheel-demo clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Two processes: every test that starts Ray (tests/cluster and the README's examples, one
# group, in order) in one, the rest beside it (tests/conftest.py).
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

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

# What a user who never saw the checkout gets: the wheel, installed into a fresh virtual
# environment in a temporary directory, runs `legato demo` from there.
wheel-demo: $(STAMP)
	@set -e; where=$$(mktemp -d); trap 'rm -rf "$$where"' EXIT; \
	$(BIN)/python -m pip wheel --quiet --no-deps -w "$$where/dist" .; \
	$(PY) -m venv "$$where/venv"; \
	"$$where/venv/bin/python" -m pip install --quiet "$$where"/dist/legato-*.whl; \
	cd "$$where" && "$$where/venv/bin/legato" --version && "$$where/venv/bin/legato" demo --no-progress

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
