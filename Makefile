# Every target sets itself up: the first one you type creates .venv and installs Meridian.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STRATEGY ?= fld
PARAMS ?=

.PHONY: install test lint bench run new extract sweep dashboard clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/meridian extract --check notebooks/*.py
	$(BIN)/python -m pytest -q
	$(BIN)/ruff check .

lint: $(STAMP)
	$(BIN)/ruff check .

# PARAMS="fld_offset=15 cot_threshold=0.2" becomes -p fld_offset 15 -p cot_threshold 0.2
PARAM_FLAGS = $(foreach p,$(PARAMS),-p $(firstword $(subst =, ,$(p))) $(patsubst $(firstword $(subst =, ,$(p)))=%,%,$(p)))

run: $(STAMP)
	$(BIN)/meridian run $(STRATEGY) $(PARAM_FLAGS)

# make new NAME=my_idea PARAMS="lookback=20 threshold=0.5"
new: $(STAMP)
	$(BIN)/meridian new $(NAME) $(foreach p,$(PARAMS),--param $(p))

extract: $(STAMP)
	$(BIN)/meridian extract notebooks/$(STRATEGY).py

# make sweep STRATEGY=fld GRID="fld_offset=5:40:1 cot_threshold=-0.5,0,0.5" [SWEEP_ARGS="--top 5 --reports"]
GRID ?= fld_offset=5:30:1 cot_threshold=-0.5,0,0.5
sweep: $(STAMP)
	$(BIN)/meridian sweep $(STRATEGY) $(foreach g,$(GRID),--grid $(g)) $(SWEEP_ARGS)

# outputs/index.html: every run in one offline page (make dashboard OPEN=1 opens it)
dashboard: $(STAMP)
	$(BIN)/meridian dashboard $(if $(OPEN),--open)

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
