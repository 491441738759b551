# The template's two commands: `make demo` and `make test`.
# Both bootstrap their own virtual environment (.venv) on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR := demo
# pytest-xdist workers: the pipelines run one thread each, so two workers use both cores of CI
WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -n $(WORKERS)
# tests/test_browser.py drives JupyterLab in Debian's Chromium (Playwright never downloads a browser)
CHROMIUM ?= /usr/bin/chromium
export CHROMIUM

.DEFAULT_GOAL := help
.PHONY: help venv chromium postgresql test test-fast test-e2e test-python-matrix demo notebooks clean

help: ## List the tasks
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-12s %s\n", $$1, $$2}'

# pip would compile the bytecode on one core (about a minute); compileall uses every core and,
# like pip, does not stop the install over a file it cannot compile.
$(BIN)/.installed: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-compile -r requirements-dev.txt
	$(BIN)/python -m compileall -qq -j 0 $(VENV)/lib || true
	touch $@

venv: $(BIN)/.installed ## Create .venv with everything the tests need

# As root (CI) a missing Chromium is installed with apt-get; otherwise the browser test says how.
chromium: ## Debian's Chromium for the browser test (apt-get install as root when missing)
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "no Chromium at $(CHROMIUM): tests/test_browser.py will fail (sudo apt-get install chromium, or CHROMIUM=path)"; \
	  fi; \
	fi

# tests/test_prediction_log.py starts its own PostgreSQL server with Debian's initdb and pg_ctl
postgresql: ## Debian's PostgreSQL server binaries for the prediction-log tests (apt-get install as root when missing)
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else \
	    echo "no PostgreSQL (initdb): tests/test_prediction_log.py will fail (sudo apt-get install postgresql)"; \
	  fi; \
	fi

test: venv chromium postgresql ## All template tests: fast checks, then end-to-end runs of generated projects
	PATH="$(abspath $(BIN)):$$PATH" $(PYTEST) tests -m "not e2e"
	PATH="$(abspath $(BIN)):$$PATH" $(PYTEST) tests -m e2e

test-fast: venv ## Only the fast checks (no pipeline runs)
	PATH="$(abspath $(BIN)):$$PATH" $(PYTEST) tests -m "not e2e"

# make test runs the newest Python in cookiecutter.json's python_version; this runs the others
# (a missing interpreter is skipped here with how to get it, and fails make test for the newest)
test-python-matrix: venv ## The generated project on every other offered Python (install, unit tests, dvc repro)
	TEMPLATE_PYTHON_VERSIONS=others PATH="$(abspath $(BIN)):$$PATH" $(PYTEST) tests/test_python_versions.py -m e2e

demo: venv ## Generate the default project into demo/ and run its whole lifecycle
	rm -rf $(DEMO_DIR) && mkdir -p $(DEMO_DIR)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/cookiecutter --no-input --output-dir $(DEMO_DIR) .
	cd $(DEMO_DIR)/income-outreach && $(MAKE) setup repro PYTHON="$(abspath $(BIN))/python"
	@echo "Reports: $(DEMO_DIR)/income-outreach/reports/"

notebooks: ## Rebuild the template's notebooks from notebooks_src/
	$(PYTHON) scripts/build_notebooks.py

clean: ## Remove the virtual environment and the demo project
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
