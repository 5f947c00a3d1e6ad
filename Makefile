# `make book` builds the book, `make test` runs the whole test suite.  Both create the
# virtual environment .venv and install the package with what it needs on first use.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed-stamp

# Chapters run from book/, so a relative STBP_DATA (as in `STBP_DATA=../shared/data make
# test`) is made absolute here, relative to this folder, before any of them starts.
ifdef STBP_DATA
export STBP_DATA := $(abspath $(STBP_DATA))
endif

.PHONY: book test unit export check-export execute clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

## Build the book into _build/html, executing every chapter (or reusing the cache of an
## identical execution); warnings are errors.
book: $(STAMP)
	$(VENV)/bin/jupyter-book build . --warningiserror --nitpick --keep-going

## Unit tests, every chapter under nbval, the export check, then the book build.
test: $(STAMP)
	$(PY) -m pytest --nbval --nbval-current-env --durations=10
	$(MAKE) book

## Unit tests only (fast).
unit: $(STAMP)
	$(PY) -m pytest tests

## Regenerate stbp/ from the cells marked for export.
export: $(STAMP)
	$(PY) tools/nbexport.py

check-export: $(STAMP)
	$(PY) tools/nbexport.py --check

## Re-run chapters in place to refresh their committed outputs: make execute NB=book/01_neuron.ipynb
execute: $(STAMP)
	$(PY) tools/execute.py $(or $(NB),book/*.ipynb)

clean:
	rm -rf _build
