# The template repository: `make demo` runs the main job, `make test` the tests.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
UV := $(BIN)/uv
PYTEST_WORKERS ?= 2

.PHONY: help setup demo test test-fast lint bench clean

help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv

$(VENV)/.installed: $(UV) requirements/dev.txt
	$(UV) pip sync --quiet --compile-bytecode --python $(BIN)/python requirements/dev.txt
	touch $@

setup: $(VENV)/.installed ## Create .venv with the template's test tools.

demo: setup ## Bake a project with the defaults into build/demo and run its whole pipeline.
	python scripts/demo.py

test: setup ## Every test: render all options, validate inputs, run both frameworks for real.
	pytest -n $(PYTEST_WORKERS) --dist loadscope

test-fast: setup ## The tests that bake but run no pipeline.
	pytest -n $(PYTEST_WORKERS) -m "not slow"

lint: setup ## Lint the template's own code.
	ruff check scripts tests bench
	ruff format --check scripts tests bench

bench: setup ## Time bake, cold repro and no-op repro.
	python bench/pipeline.py

clean: ## Remove the environment and everything built.
	rm -rf $(VENV) build
