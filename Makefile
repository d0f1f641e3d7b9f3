# Two commands on a fresh machine: `make demo` (train + evaluate a small model on CPU) and `make test`.
# Both create or reuse .venv/ from the pinned requirements.txt.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint

venv: $(STAMP)

$(STAMP): requirements.txt setup.cfg
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Extra options for tools/demo_train.py, e.g. `make demo DEMO_ARGS="--iters 20"` for a quick look.
DEMO_ARGS ?=

demo: venv
	$(PY) tools/demo_train.py $(DEMO_ARGS)

test: venv
	$(PY) -m pytest -n 2 --durations=15 tests

lint: venv
	$(VENV)/bin/ruff check mmext tools tests configs
