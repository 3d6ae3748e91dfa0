# The two commands of the README: `make run` and `make test`. Both bootstrap everything they need.
PYTHON ?= python3
UV_VERSION := 0.13.9
VENV := .venv
# The pyenv shim costs ~100 ms a start: resolve the real interpreter once.
PY_REAL := $(shell $(PYTHON) -c 'import os, sys; print(os.path.realpath(sys.executable))')
UV := $(or $(shell command -v uv 2>/dev/null),.uv/bin/uv)
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: run test install lint typecheck pytest fmt bench lock clean model sandbox-host test-host \
	runtime runtime-lock ts-client ts-client-schema

run: sandbox-host $(VENV)/.installed runtime
	$(VENV)/bin/companion serve

test: sandbox-host test-host $(VENV)/.installed runtime model ts-client lint typecheck pytest

# bubblewrap for the sandbox, installed when we may (root with apt). Without it a root service
# builds the same namespaces itself; a non-root service without it refuses to run snippets.
sandbox-host:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing bubblewrap for the sandbox"; \
	    { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null 2>&1 || \
	      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap; }; } \
	      || echo "could not install bubblewrap: the sandbox uses its own namespaces"; \
	  else echo "bubblewrap is not installed (apt install bubblewrap): see docs/execution.md"; fi; }

# What only the tests need from the system: Chromium (the dashboard's browser tests) and HAProxy
# (the balancer in front of the multi-node test), installed when we may. Without them those tests
# skip locally and fail in CI.
TEST_PACKAGES := chromium haproxy
test-host:
	@missing=""; for pkg in $(TEST_PACKAGES); do dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing$$missing for the tests"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null 2>&1 || \
	      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; } || \
	      echo "could not install$$missing: their tests skip (and fail in CI)"; \
	  else echo "missing$$missing (apt install$$missing): their tests skip"; fi; \
	fi

install: $(VENV)/.installed

.uv/bin/uv:
	$(PY_REAL) -m venv .uv
	.uv/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --all-extras --python $(PY_REAL)
	@touch $@

# The sandbox's Python packages (numpy, pandas, matplotlib, scipy, scikit-learn), pinned with hashes
# in runtimes/python/requirements.lock and installed flat (`--target`) for a read-only mount.
RUNTIME_DIR := .runtimes/python
runtime: $(RUNTIME_DIR)/.installed

$(RUNTIME_DIR)/.installed: runtimes/python/requirements.lock | $(UV)
	rm -rf $(RUNTIME_DIR)
	$(UV) pip install --quiet --target $(RUNTIME_DIR) --require-hashes --only-binary :all: \
	  --python $(PY_REAL) -r runtimes/python/requirements.lock
	@touch $@

# After editing runtimes/python/requirements.in: pin it again, then `make runtime`.
runtime-lock: | $(UV)
	$(UV) pip compile runtimes/python/requirements.in --generate-hashes --no-header \
	  --python $(PY_REAL) -o runtimes/python/requirements.lock

# The ONNX embedding model the knowledge tests use; exported once with torch in a throwaway venv.
MODEL_DIR := .models/all-MiniLM-L6-v2
model: $(MODEL_DIR)/model.int8.onnx

# The float model, then its int8 variant (added to an existing export without redoing it).
$(MODEL_DIR)/model.int8.onnx: | $(VENV)/.installed
	$(VENV)/bin/companion models export --out $(MODEL_DIR) --quantize int8

# The TypeScript client's dev dependencies (typescript, openapi-typescript, @types/node) from its
# package-lock.json, installed again when the lock changes; its tests run in `make test`. Without
# Node and npm they skip locally and fail in CI.
TS_CLIENT := clients/typescript
ts-client:
	@if command -v npm >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory $(TS_CLIENT)/node_modules/.package-lock.json; \
	else echo "node and npm are missing (apt install nodejs npm): the TypeScript client's tests skip"; fi

$(TS_CLIENT)/node_modules/.package-lock.json: $(TS_CLIENT)/package-lock.json
	cd $(TS_CLIENT) && npm ci --ignore-scripts --no-audit --no-fund
	@touch $@

# After changing a route or a model: the client's openapi.json dumped from the app, then its
# src/schema.ts generated from it (a test fails until both are current).
ts-client-schema: ts-client | $(VENV)/.installed
	$(VENV)/bin/python $(TS_CLIENT)/scripts/openapi.py
	cd $(TS_CLIENT) && npm run --silent generate

lint:
	$(VENV)/bin/ruff check src tests clients/python
	$(VENV)/bin/ruff format --check src tests clients/python

typecheck:
	$(VENV)/bin/mypy

pytest:
	$(VENV)/bin/pytest

fmt: $(VENV)/.installed
	$(VENV)/bin/ruff format src tests clients/python
	$(VENV)/bin/ruff check --fix src tests clients/python

bench: $(VENV)/.installed
	$(VENV)/bin/companion bench

lock: | $(UV)
	$(UV) lock --python $(PY_REAL)

clean:
	rm -rf $(VENV) .uv .mypy_cache .ruff_cache .pytest_cache
