# availability-cron: `make run` runs the function locally, `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint format run run-once status clean bench bench-quick

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# make does not pass SIGTERM or SIGHUP on to its recipe: --exit-with-parent has the local run stop
# (and stop everything it started) when make itself is killed. RUN_ARGS adds options (see --help).
run: $(STAMP)
	$(BIN)/python -m devtools.local_run --exit-with-parent $(RUN_ARGS)

run-once: $(STAMP)
	$(BIN)/python -m devtools.local_run --exit-with-parent --once $(RUN_ARGS)

# The caches at a glance (read-only) in the local database of `make run`; ARGS="--client ID" for one workspace.
status: $(STAMP)
	$(BIN)/python -m devtools.status --local $(ARGS)

# Issue 5's scenarios (N=2,000/5,000/10,000 at L=200 ms), median of 3: about a quarter of an hour.
bench: $(STAMP)
	$(BIN)/python -m bench

# CI-sized (N=300, L=50 ms, C=8 and 32, one repetition): under a minute.
bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick

# As root the local server's data may live outside .local/ (devtools/pgstaging.py): remove it too.
clean:
	if [ -x $(BIN)/python ] && [ -d .local/postgres ]; then $(BIN)/python -m devtools.pgserver --remove .local/postgres; fi
	rm -rf $(VENV) .local .pytest_cache .mypy_cache .ruff_cache .hypothesis bench/results
