# The two commands that matter: `make run` (the day's pipeline, sandbox mode) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

MANIFEST := dbt_analytics/target/manifest.json
DBT_SOURCES := $(shell find dbt_analytics/dbt_project.yml dbt_analytics/profiles.yml dbt_analytics/models dbt_analytics/macros dbt_analytics/tests -type f 2>/dev/null)

.PHONY: setup run test lint dev status bench clean manifest

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

## test: set up and run lint and the whole test suite (real PostgreSQL, sandbox over HTTP)
test: $(STAMP) $(MANIFEST)
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
