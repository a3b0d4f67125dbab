# Everything a fresh machine with Python 3.11 needs: `make run` and `make test`.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run demo load test lint typecheck bench soak lock clean

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

test: install lint typecheck
	$(BIN)/pytest -q

bench: install
	$(BIN)/python bench/run.py

# Regenerate the lock after changing dependencies in pyproject.toml (needs the registry).
lock:
	rm -rf .lock-venv && $(PY) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade pip
	.lock-venv/bin/pip install --quiet -e '.[dev]'
	.lock-venv/bin/pip freeze --exclude-editable | grep -v '^-e' > requirements.lock
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
