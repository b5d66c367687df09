# The two commands that must always work on a fresh machine: `make demo` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test setup lint bench clean

setup: $(STAMP)

# Re-install only when the dependency list changes. torch is pinned and comes from the local CPU wheel.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

demo: setup
	$(BIN)/costdna demo

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .

bench: setup
	$(BIN)/python benchmarks/quality.py
	$(BIN)/python benchmarks/external.py
	$(BIN)/python benchmarks/scan_scale.py
	$(BIN)/python benchmarks/ask_eval.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .demo
