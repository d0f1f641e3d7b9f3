# Two commands on a fresh machine: `make demo` (train + evaluate a small model on CPU) and `make test`.
# Both create or reuse .venv/ from the pinned lock requirements.txt (runtime, extras and dev tools), then install
# mmext itself in editable mode without touching the lock. `make lint` is ruff; CI (.ci/run) runs lint, then test.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Extra options for tools/demo_train.py, e.g. `make demo DEMO_ARGS="--iters 20"` for a quick look.
DEMO_ARGS ?=

demo: venv
	$(PY) tools/demo_train.py $(DEMO_ARGS)

test: venv
	$(PY) -m pytest -n 2 --dist worksteal --durations=15 tests

lint: venv
	$(VENV)/bin/ruff check mmext tools tests configs setup.py mmext_startup.py
