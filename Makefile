# Every target sets itself up: the first one you type creates .venv and installs Meridian.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STRATEGY ?= fld
PARAMS ?=

.PHONY: install test lint bench bench-full run new extract sweep dashboard clean

install: $(STAMP)

# compileall: an editable install leaves meridian's sources uncompiled (a wheel install compiles
# them); where PYTHONDONTWRITEBYTECODE is set, every command would compile them again (~0.2 s).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m compileall -q meridian >/dev/null
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/meridian extract --check notebooks/*.py
	$(BIN)/python -m pytest -q
	$(BIN)/ruff check .

lint: $(STAMP)
	$(BIN)/ruff check .

# Values reach the shell only as quoted variables ("$$PARAMS"), never pasted into the command
# line, so spaces work (PARAMS='cot_market="CRUDE OIL"') and `;` or backticks are never run.
# PARAMS="fld_offset=15 cot_threshold=0.2" is split by meridian itself (shell-style quoting).
export STRATEGY PARAMS NAME GRID SWEEP_ARGS

run: $(STAMP)
	$(BIN)/meridian run "$$STRATEGY" --params "$$PARAMS"

# make new NAME=my_idea PARAMS="lookback=20 threshold=0.5"
new: $(STAMP)
	$(BIN)/meridian new "$$NAME" --params "$$PARAMS"

extract: $(STAMP)
	$(BIN)/meridian extract "notebooks/$$STRATEGY.py"

# make sweep STRATEGY=fld GRID="fld_offset=5:40:1 cot_threshold=-0.5,0,0.5" [SWEEP_ARGS="--top 5 --reports"]
GRID ?= fld_offset=5:30:1 cot_threshold=-0.5,0,0.5
sweep: $(STAMP)
	set -f; set --; for g in $$GRID; do set -- "$$@" --grid "$$g"; done; \
	$(BIN)/meridian sweep "$$STRATEGY" "$$@" $$SWEEP_ARGS

# outputs/index.html: every run in one offline page (make dashboard OPEN=1 opens it)
dashboard: $(STAMP)
	$(BIN)/meridian dashboard $(if $(OPEN),--open)

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	$(BIN)/python -m benchmarks

bench-full: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	$(BIN)/python -m benchmarks full

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
