# The two commands of the README. Everything installs into ./.venv.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint bench

$(BIN)/brand-monitor: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

setup: $(BIN)/brand-monitor

demo: setup
	$(BIN)/brand-monitor run -c config.yaml

lint: setup
	$(BIN)/ruff check monitor tests bench
	$(BIN)/mypy

test: setup lint
	$(BIN)/pytest -q -p no:cacheprovider

bench: setup
	$(BIN)/python bench/detection.py
	$(BIN)/python bench/sentiment.py
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/dashboard.py
