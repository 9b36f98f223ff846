# aurora-snowflake-replication: the two commands are `make demo` and `make test`.
SHELL := /bin/bash
# Lambda's runtime is Python 3.12: use it when it is on PATH or installed by pyenv
PY ?= $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12 /usr/bin/python3.12; do \
        $$p -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1 && { command -v $$p || echo $$p; } && break; done)
VENV := .venv
SAMVENV := .venv-sam
PIP_QUIET := 2>&1 | grep -v "is ignored: it is neither" || true
export SAM_CLI_TELEMETRY := 0
export PATH := $(dir $(PY)):$(PATH)

.PHONY: setup sam mariadb demo test unit integration lint build bench clean stop

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

mariadb: setup
	$(VENV)/bin/python -c "from aurora_replication.local.services import ensure_mariadb_installed as e; print('MariaDB:', e()[0])"

demo: setup mariadb
	$(VENV)/bin/replicate demo

lint: setup sam
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(SAMVENV)/bin/sam validate --lint

build: sam
	$(SAMVENV)/bin/sam build --parallel

unit: setup
	$(VENV)/bin/pytest -q tests/unit

test: setup sam mariadb lint build
	$(VENV)/bin/pytest -q -p no:cacheprovider tests

# bench/run.py --quick for 100,000 rows; see docs/performance.md
BENCH_ARGS ?=
bench: setup mariadb
	$(VENV)/bin/python bench/run.py $(BENCH_ARGS)

stop: setup
	$(VENV)/bin/replicate stop

clean:
	rm -rf .aws-sam .local .pytest_cache .mypy_cache .ruff_cache
