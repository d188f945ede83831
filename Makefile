# The README names these targets: `make run` and `make test` (both start with `make install`).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The code sandbox's own Python (runs/sandbox.py): a separate venv from its own lock, never the platform's.
SANDBOX_VENV := .venv-sandbox
SANDBOX_STAMP := $(SANDBOX_VENV)/.installed
export LITELLM_LOCAL_MODEL_COST_MAP := True

.PHONY: install sandbox-env run test lint pytest format audit clean bench lock compose-test

install: $(STAMP) $(SANDBOX_STAMP)

# The install depends on the lock files alone: every distribution, transitive ones included, is pinned there
# with its hashes, so pip installs them with --no-deps and never asks the index what a dependency wants (a
# new release of a dependency cannot change or break it). `pip check` then proves the lock is consistent.
# A changed lock rebuilds the venv from scratch, so nothing it no longer names stays installed.
$(STAMP): requirements/base.txt requirements/dev.txt
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps \
		-r requirements/base.txt -r requirements/dev.txt
	$(BIN)/python -m pip check
	touch $(STAMP)

# The same way for the sandbox's curated environment (pypdf, openpyxl, python-docx, python-pptx, pandas,
# matplotlib, pillow): hashes, --no-deps, pip check, rebuilt whole when its lock changes.
sandbox-env: $(SANDBOX_STAMP)

$(SANDBOX_STAMP): requirements/sandbox.txt
	rm -rf $(SANDBOX_VENV)
	$(PYTHON) -m venv --without-pip $(SANDBOX_VENV)
	$(PYTHON) -m pip --python $(SANDBOX_VENV)/bin/python install --quiet --disable-pip-version-check \
		--require-hashes --no-deps --no-compile -r requirements/sandbox.txt
	$(PYTHON) -m pip --python $(SANDBOX_VENV)/bin/python check
	$(SANDBOX_VENV)/bin/python -m compileall -q $(SANDBOX_VENV)/lib >/dev/null
	touch $(SANDBOX_STAMP)

# Regenerate the lock files from requirements/*.in (see docs/operations.md, "Upgrading a dependency"):
#   make lock                      keep every pin, add what a changed .in needs
#   make lock UPGRADE="litellm"    also move these packages (and what they need) to their newest release
#   make lock UPGRADE=all          move everything to its newest release
LOCK_FLAGS := --quiet --allow-unsafe --generate-hashes --strip-extras --no-emit-index-url --no-emit-find-links
LOCK_UPGRADE := $(if $(filter all,$(UPGRADE)),--upgrade,$(foreach p,$(UPGRADE),--upgrade-package $(p)))
lock: install
	cd requirements && CUSTOM_COMPILE_COMMAND="make lock" ../$(BIN)/pip-compile $(LOCK_FLAGS) $(LOCK_UPGRADE) \
		--output-file=base.txt base.in
	cd requirements && CUSTOM_COMPILE_COMMAND="make lock" ../$(BIN)/pip-compile $(LOCK_FLAGS) $(LOCK_UPGRADE) \
		--output-file=dev.txt dev.in
	cd requirements && CUSTOM_COMPILE_COMMAND="make lock" ../$(BIN)/pip-compile $(LOCK_FLAGS) $(LOCK_UPGRADE) \
		--output-file=sandbox.txt sandbox.in

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

# The Compose launch for real (outside `make test`; CI runs it last): builds the image with podman on a Debian
# base made by debootstrap, starts docker-compose.yml on SQLite and on PostgreSQL, runs a workflow over HTTP,
# redeploys and checks nothing was lost (scripts/compose_test/). Needs root and podman, runc, debootstrap.
compose-test: install
	$(BIN)/python -m scripts.compose_test $(if $(PROFILE),--profile $(PROFILE))

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Known vulnerabilities in the pinned dependencies (needs the PyPI JSON API or OSV to be reachable).
audit: install
	$(BIN)/pip-audit --disable-pip --require-hashes -r requirements/base.txt

clean:
	rm -rf $(VENV) $(SANDBOX_VENV) data .pytest_cache .mypy_cache .ruff_cache
