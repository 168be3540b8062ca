# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_WORKERS ?= auto
# the real misp-modules server the MISP tests start; its own virtualenv: it pins click and others
MISP_MODULES_VENV ?= .venv-misp-modules
MISP_MODULES_VERSION ?= 3.1.0
NPM ?= npm

.PHONY: install misp-modules run test lint format bench clean test-support

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# the web UI's front-end packages, exactly as locked; served from node_modules, never committed
node_modules/.package-lock.json: package.json package-lock.json
	$(NPM) ci --no-audit --no-fund --loglevel=error

install: $(VENV)/.installed node_modules/.package-lock.json

$(MISP_MODULES_VENV)/.installed-$(MISP_MODULES_VERSION):
	$(PYTHON) -m venv $(MISP_MODULES_VENV)
	$(MISP_MODULES_VENV)/bin/python -m pip install --quiet misp-modules==$(MISP_MODULES_VERSION)
	touch $@

misp-modules: $(MISP_MODULES_VENV)/.installed-$(MISP_MODULES_VERSION)

## npm packages of the test servers (the OpenID provider of the SSO tests), from package-lock.json.
SUPPORT_OIDC := tests/support/oidc
$(SUPPORT_OIDC)/node_modules/.installed: $(SUPPORT_OIDC)/package-lock.json
	cd $(SUPPORT_OIDC) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

test-support: $(SUPPORT_OIDC)/node_modules/.installed

## Start the server with its embedded defaults (SQLite + attachments in ./data, bundled neurons).
run: install
	$(VENV)/bin/neurocortex serve

## Lint, then the whole test suite (tests in parallel, one server per test module) on SQLite, then the
## end-to-end suite again with the servers on PostgreSQL (127.0.0.1:5432), when one is reachable.
test: install misp-modules test-support lint
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)
	@if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then \
		echo "== end-to-end suite on PostgreSQL =="; \
		NEUROCORTEX_TEST_DATABASE=postgresql $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile tests/e2e $(PYTEST_ARGS); \
	else echo "PostgreSQL is not reachable on 127.0.0.1:5432: end-to-end suite not repeated on it"; fi

lint: install
	$(VENV)/bin/ruff check src tests bench neurons
	$(VENV)/bin/ruff format --check src tests bench neurons

format: install
	$(VENV)/bin/ruff check --fix src tests bench neurons
	$(VENV)/bin/ruff format src tests bench neurons

bench: install
	$(PY) bench/overhead.py
	$(PY) bench/ui_pages.py

clean:
	rm -rf $(VENV) $(MISP_MODULES_VENV) .pytest_cache .ruff_cache
