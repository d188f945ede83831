# The README names these targets: `make run` and `make test` (both start with `make install`).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export LITELLM_LOCAL_MODEL_COST_MAP := True

.PHONY: install run test lint pytest format audit clean bench

install: $(STAMP)

$(STAMP): requirements/base.txt requirements/dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes \
		-r requirements/base.txt -r requirements/dev.txt
	touch $(STAMP)

run: install
	./scripts/entrypoint.sh all

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest

test: lint pytest

# Benchmarks, outside `make test`: writes bench/results.md (see bench/__main__.py).
bench: install
	$(BIN)/python -m bench

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Known vulnerabilities in the pinned dependencies (needs the PyPI JSON API or OSV to be reachable).
audit: install
	$(BIN)/pip-audit --disable-pip --require-hashes -r requirements/base.txt

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
