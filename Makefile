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

# Chapters run with one thread per math library: a float32 sum split across threads
# rounds differently, and the committed outputs must not depend on the machine's cores.
ONE_THREAD = OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1

.PHONY: book test unit export check-export execute clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

## Build the book into _build/html from the outputs committed with the chapters (it
## executes nothing: _config.yml has execute_notebooks "off"); warnings are errors.
book: $(STAMP)
	$(VENV)/bin/jupyter-book build . --warningiserror --nitpick --keep-going

## The pages' widths (code lines within 88 columns, text outputs within 77:
## tools/check_width.py) and chapter references as links (tools/xref.py), then unit
## tests, every chapter under nbval, the export check, then the book build. The
## build renders the outputs nbval has just compared with a fresh run, instead of running
## every chapter a second time; its status page (book/status.md) reads the report.
test: $(STAMP)
	mkdir -p _build
	$(PY) tools/check_width.py
	$(PY) tools/xref.py --check book/*.ipynb
	$(ONE_THREAD) $(PY) -m pytest --nbval --nbval-current-env --durations=10 --junitxml=_build/test-report.xml
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
	$(ONE_THREAD) $(PY) tools/execute.py $(or $(NB),book/*.ipynb)

clean:
	rm -rf _build
