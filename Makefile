# The two commands that matter: `make run` (the day's pipeline, sandbox mode) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup run test lint dev status bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

## run: set up, start the embedded PostgreSQL and the sandbox, run today's graph, print a summary
run: $(STAMP)
	$(BIN)/waifugen run

## test: set up and run lint and the whole test suite (real PostgreSQL, sandbox over HTTP)
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/pytest -n 2 --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

## dev: Dagster webserver + daemon on 127.0.0.1:3000 in sandbox mode; Ctrl-C stops it all
dev: $(STAMP)
	$(BIN)/waifugen dev

status: $(STAMP)
	$(BIN)/waifugen status

## bench: the benchmarks in benchmarks/, results written to docs/benchmarks.md
bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf .waifugen .pytest_cache .ruff_cache
