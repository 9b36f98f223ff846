# aurora-snowflake-replication: the two commands are `make demo` and `make test`.
SHELL := /bin/bash
# Lambda's runtime is Python 3.12: use it when it is on PATH or installed by pyenv
PY ?= $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12 /usr/bin/python3.12; do \
        $$p -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1 && { command -v $$p || echo $$p; } && break; done)
VENV := .venv
SAMVENV := .venv-sam
SCANVENV := .venv-scan
# the RDS global CA bundle that MySQL TLS verifies against, packaged into the layer
CA_BUNDLE := layers/aurora_replication/aurora_replication/certs/rds-global-bundle.pem
CA_BUNDLE_URL := https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem
ENV ?= dev
PIP_QUIET := 2>&1 | grep -v "is ignored: it is neither" || true
export SAM_CLI_TELEMETRY := 0
export PATH := $(dir $(PY)):$(PATH)

.PHONY: setup sam scan-tools scan ca-bundle deploy mariadb browser demo test unit integration lint requirements build bench clean stop

$(VENV)/.installed: pyproject.toml layers/aurora_replication/requirements.txt
	@test -n "$(PY)" || { echo "Python 3.12 is needed (Lambda's runtime): install it, e.g. pyenv install 3.12"; exit 1; }
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip $(PIP_QUIET)
	$(VENV)/bin/pip install -q -e '.[dev]' $(PIP_QUIET)
	$(VENV)/bin/python -c "import aurora_replication, fakesnow, moto, snowflake.connector"
	touch $@

setup: $(VENV)/.installed

$(SAMVENV)/.installed:
	$(PY) -m venv $(SAMVENV)
	$(SAMVENV)/bin/pip install -q --upgrade pip $(PIP_QUIET)
	$(SAMVENV)/bin/pip install -q aws-sam-cli $(PIP_QUIET)
	$(SAMVENV)/bin/sam --version
	touch $@

sam: $(SAMVENV)/.installed

$(SCANVENV)/.installed:
	$(PY) -m venv $(SCANVENV)
	$(SCANVENV)/bin/pip install -q --upgrade pip $(PIP_QUIET)
	$(SCANVENV)/bin/pip install -q 'checkov>=3.2,<4' $(PIP_QUIET)
	$(SCANVENV)/bin/checkov --version
	touch $@

scan-tools: $(SCANVENV)/.installed

# static security scan of the template; justified exceptions are Metadata checkov skips in it
scan: scan-tools
	$(SCANVENV)/bin/checkov --file template.yaml --framework cloudformation --skip-download --compact --quiet

# fetch the RDS CA bundle into the layer (needs network); `sam build` then packages it
ca-bundle:
	curl -fsSL --retry 3 -o $(CA_BUNDLE).tmp $(CA_BUNDLE_URL)
	@n=$$(grep -c 'BEGIN CERTIFICATE' $(CA_BUNDLE).tmp); test "$$n" -gt 0 || { echo "$(CA_BUNDLE_URL) held no certificate"; rm -f $(CA_BUNDLE).tmp; exit 1; }; \
	  echo "$$n certificates"
	mv $(CA_BUNDLE).tmp $(CA_BUNDLE)

# deploy one samconfig.toml environment: make deploy ENV=prod
deploy: setup sam
	@test -f $(CA_BUNDLE) || { echo "$(CA_BUNDLE) is missing: run make ca-bundle (MySQL TLS verifies against it)"; exit 1; }
	$(VENV)/bin/python tools/check_concurrency.py --env $(ENV)
	$(SAMVENV)/bin/sam build --parallel
	$(SAMVENV)/bin/sam deploy --config-env $(ENV)

mariadb: setup
	$(VENV)/bin/python -c "from aurora_replication_dev.local.services import ensure_mariadb_installed as e; print('MariaDB:', e()[0])"

# headless Chromium and ChromeDriver (Debian's packages) for the run report's browser test
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  echo "installing Debian's chromium and chromium-driver (the run report's browser test)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }
	@chromium --version 2>/dev/null | head -1

demo: setup mariadb
	$(VENV)/bin/replicate demo

lint: setup sam
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/python tools/layer_requirements.py --check
	$(SAMVENV)/bin/sam validate --lint

# the layer's requirements.txt from pyproject.toml's dependencies (edit those, then run this)
requirements: setup
	$(VENV)/bin/python tools/layer_requirements.py

build: sam
	$(SAMVENV)/bin/sam build --parallel

unit: setup
	$(VENV)/bin/pytest -q -m "not integration and not fault"

# the tests that start MariaDB, moto and the emulator (markers set by directory in tests/conftest.py)
integration: setup mariadb
	$(VENV)/bin/pytest -q -m "integration or fault"

# two pytest processes (pytest-xdist), each with its own MariaDB, emulator and moto; a file's tests stay together
test: setup sam mariadb browser lint scan build
	$(VENV)/bin/pytest -q -p no:cacheprovider -n 2 --dist loadfile --durations=30 tests

# the package bench/ (python -m bench); BENCH_ARGS=--quick for 100,000 rows; see docs/performance.md
BENCH_ARGS ?=
bench: setup mariadb
	$(VENV)/bin/python -m bench $(BENCH_ARGS)

stop: setup
	$(VENV)/bin/replicate stop

clean:
	rm -rf .aws-sam .local .pytest_cache .mypy_cache .ruff_cache
