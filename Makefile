# The two commands that matter: `make run` (the day's pipeline, sandbox mode) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

MANIFEST := dbt_analytics/target/manifest.json
DBT_SOURCES := $(shell find dbt_analytics/dbt_project.yml dbt_analytics/profiles.yml dbt_analytics/models dbt_analytics/macros dbt_analytics/tests -type f 2>/dev/null)

# Debian's Prometheus (promtool, prometheus), Alertmanager (amtool) and nginx: the alert-rule
# tests, the real scrape and the video store behind nginx run on every machine `make test`
# runs on. Installed where missing (CI runs as root on a fresh machine), services not started.
OPS_TOOLS := /usr/bin/promtool /usr/bin/prometheus /usr/bin/amtool /usr/sbin/nginx /usr/bin/pg_dump
# postgresql-client: Debian's PostgreSQL 15 tools, which the backup tests show refused by a
# 16 server (the backups use pgserver's 16 tools).
OPS_PACKAGES := prometheus prometheus-alertmanager nginx-light postgresql-client

.PHONY: setup run test lint dev status bench clean manifest tools

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

# The dbt manifest dagster-dbt loads (`dbt parse`: no database needed), rebuilt when a dbt
# file changes, so the code location never runs dbt to load.
$(MANIFEST): $(STAMP) $(DBT_SOURCES)
	$(BIN)/python -c "from waifugen_assets.analytics.project import ensure_manifest; ensure_manifest()"
	touch $(MANIFEST)

manifest: $(MANIFEST)

setup: $(STAMP) $(MANIFEST)

## run: set up, start the embedded PostgreSQL and the sandbox, run today's graph, print a summary
run: $(STAMP) $(MANIFEST)
	$(BIN)/waifugen run

tools:
	@missing=""; for t in $(OPS_TOOLS); do test -x $$t || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "missing:$$missing; install (as root): apt-get install $(OPS_PACKAGES)"; exit 1; fi; \
	  created=""; if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; created=1; fi; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(OPS_PACKAGES) >/dev/null; rc=$$?; \
	  if [ -n "$$created" ]; then rm -f /usr/sbin/policy-rc.d; fi; exit $$rc; \
	fi

## test: set up and run lint and the whole test suite (real PostgreSQL, sandbox over HTTP)
test: $(STAMP) $(MANIFEST) tools
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/pytest -n 2 --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

## dev: Dagster webserver + daemon on 127.0.0.1:3000 in sandbox mode; Ctrl-C stops it all
dev: $(STAMP) $(MANIFEST)
	$(BIN)/waifugen dev

status: $(STAMP) $(MANIFEST)
	$(BIN)/waifugen status

## bench: the benchmarks in benchmarks/, results written to docs/benchmarks.md
bench: $(STAMP) $(MANIFEST)
	$(BIN)/python -m benchmarks

clean:
	rm -rf .waifugen .pytest_cache .ruff_cache dbt_analytics/target dbt_analytics/logs
