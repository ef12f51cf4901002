# Every target creates or updates .venv and installs what it needs: nothing else is required.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
DURATION ?= 20

.PHONY: demo test bench lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# One stamp per set of extras; re-installed when pyproject.toml changes.
$(VENV)/.installed-%: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e '.[$*]'
	@touch $@

demo: $(VENV)/.installed-ner
	$(BIN)/sovtel demo --duration $(DURATION)

test: $(VENV)/.installed-test
	$(BIN)/python -m tests.setup
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: $(VENV)/.installed-bench $(VENV)/.installed-test
	$(BIN)/python -m bench

lint: $(VENV)/.installed-lint
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
