# Two entry points (see README): `make run` and `make test`. Everything else is plumbing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test lint clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

## Set up and run the service on the embedded PostgreSQL (no DATABASE_URL needed).
run: $(STAMP)
	$(BIN)/changarrito serve

## Set up and run the whole test suite.
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	PYTHONPATH=examples/changarrito-mistral/src $(BIN)/python -m pytest -q examples/changarrito-mistral/tests
	PYTHONPATH=examples/changarrito-conekta/src $(BIN)/python -m pytest -q examples/changarrito-conekta/tests

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# --- Benchmarks (bench/README.md, docs/performance.md) ----------------------------------------
# Their own virtualenv, bench/.venv, holds the peers they compare against (pywa, FastAPI,
# LiteLLM...): never the project's dependencies. Each bench prints a table and writes
# bench/results/<name>-<timestamp>.json. BENCH_ARGS passes options (e.g. --duration 30).
BENCH_STAMP := bench/.venv/.installed-stamp
BENCH_PY    := bench/.venv/bin/python

.PHONY: bench-setup bench-intake bench-resolution bench-llm bench-e2e

$(BENCH_STAMP): $(STAMP) bench/requirements.txt bench/setup.sh pyproject.toml constraints.txt
	PYTHON=$(PYTHON) bash bench/setup.sh

## Set up bench/.venv (and wrk from Debian when missing).
bench-setup: $(BENCH_STAMP)

## Webhook intake: changarrito serve vs a bare Litestar endpoint vs pywa_async, one stack (wrk, one run).
bench-intake: $(BENCH_STAMP)
	$(BENCH_PY) -m bench.intake $(BENCH_ARGS)

## Cached and uncached credential resolution at 10, 10,000 and 100,000 tenants.
bench-resolution: $(BENCH_STAMP)
	$(BENCH_PY) -m bench.resolution $(BENCH_ARGS)

## LLM call overhead: our OpenAI provider vs litellm.acompletion on one local fake.
bench-llm: $(BENCH_STAMP)
	$(BENCH_PY) -m bench.llm $(BENCH_ARGS)

## Webhook to reply at 200 messages/s for 60 s, nothing lost.
bench-e2e: $(BENCH_STAMP)
	$(BENCH_PY) -m bench.e2e $(BENCH_ARGS)

## The workers' fair claim at 20, 2,000 and 10,000 backlogged tenants vs a plain claim.
.PHONY: bench-claim
bench-claim: $(BENCH_STAMP)
	$(BENCH_PY) -m bench.claim $(BENCH_ARGS)
