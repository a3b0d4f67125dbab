# Everything a fresh machine with Python 3.11 needs: `make run` and `make test`.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run demo load test test-fast lint typecheck bench soak lock clean

$(STAMP): requirements.lock pyproject.toml
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

# Loads your organisation's batches when a key is configured, otherwise runs the demo on the simulator.
run: install
	$(BIN)/openai-batches run

demo: install
	$(BIN)/openai-batches demo

load: install
	$(BIN)/openai-batches load

lint: install
	$(BIN)/ruff check pipelines tests bench
	$(BIN)/ruff format --check pipelines tests bench

typecheck: install
	$(BIN)/mypy pipelines

# Tests on every core (xdist); worksteal rebalances the few long tests (a fresh clone, DuckLake) across workers.
# The slowest 20 are listed at the end: where the suite's time goes, in every CI log.
test: install lint typecheck
	$(BIN)/pytest -q -n auto --dist worksteal --durations=20

# The inner loop (under 30 s on 2 cores): the tests of pure logic and the fast ones; no load through dlt, no
# process of its own, no PostgreSQL (markers set in tests/conftest.py).
test-fast: install
	$(BIN)/pytest -q -n 2 -m "not slow and not postgres and not subprocess"

bench: install
	$(BIN)/python bench/run.py

# Long fault, SIGKILL and state-machine campaigns (~30 min): SOAK_KILLS kill points, SOAK_FAULT_SEEDS fault
# sequences, SOAK_STATE_EXAMPLES random histories of the incremental-load state machine (shrunk on failure).
# A new seed each time unless SEED=... is given; the seed is printed, so any failure can be replayed.
SOAK_KILLS ?= 200
SOAK_FAULT_SEEDS ?= 20
SOAK_STATE_EXAMPLES ?= 150
SOAK_PROVIDER_STATE_EXAMPLES ?= 20
soak: install
	OPENAI_BATCHES_KILL_ITERATIONS=$(SOAK_KILLS) OPENAI_BATCHES_KILL_SEED=$${SEED:-$$(date +%s)} \
	OPENAI_BATCHES_FAULT_SEEDS=$(SOAK_FAULT_SEEDS) \
	OPENAI_BATCHES_STATE_EXAMPLES=$(SOAK_STATE_EXAMPLES) OPENAI_BATCHES_STATE_SEED=$${SEED:-$$(date +%s)} \
	OPENAI_BATCHES_STATE_SHRINK=1 OPENAI_BATCHES_PROVIDER_STATE_EXAMPLES=$(SOAK_PROVIDER_STATE_EXAMPLES) \
	$(BIN)/pytest -q -s -p no:cacheprovider --timeout 0 -k "sigkill or fifth or IncrementalLoad or every_provider" \
	tests/test_kill.py tests/test_reliability.py tests/test_state_machine.py

# Regenerate the lock after changing dependencies in pyproject.toml (needs the registry).
lock:
	rm -rf .lock-venv && $(PY) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade pip
	.lock-venv/bin/pip install --quiet -e '.[dev]'
	.lock-venv/bin/pip freeze --exclude-editable | grep -v '^-e' > requirements.lock
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
