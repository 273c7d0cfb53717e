# equivar: two commands do everything (see README.md).
#   make book   environment + every chapter (papermill, profile "default", WORKERS=2 Dask
#               workers, into _build/rerun; book/ is left as committed) + HTML with -W
#   make test   environment + Fashion-MNIST + the whole test suite
# and two more:
#   make html   render the chapters already in book/chapters (the committed paper-profile run)
#   make paper  re-run every chapter under "paper" into book/chapters and book/figures (a new
#               committed edition), then render
#   make pdf    the book as one PDF (XeLaTeX from Debian packages: scripts/ensure-tex)
PYTHON  ?= $(shell command -v python3.11 || command -v python3)
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PROFILE ?= default
# One thread per process (see equivar/runtime.py and benchmarks/threads.py): on a shared 2-core
# machine torch/OpenBLAS thread pools spin-wait and slow every step down; parallelism comes
# from processes (equivar run --workers N). A value set in the caller's environment wins.
export OMP_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: env data test book html paper pdf bench clean

$(STAMP): requirements/lock.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "equivar needs Python 3.11, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-deps -r requirements/lock.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python scripts/check-env.py
	touch $@

env: $(STAMP)

data: env
	scripts/ensure-fashion-mnist

test: env data
	$(BIN)/python -m pytest

# Two single-threaded worker processes fill the cache first (equivar.book.sweep), then the
# chapters run once on cache hits; WORKERS=0 runs everything in one process.
WORKERS ?= 2
WORKERS_FLAG = $(if $(filter-out 0,$(WORKERS)),--workers $(WORKERS))

book: env data
	$(BIN)/equivar book --profile $(PROFILE) $(WORKERS_FLAG)

html: env
	$(BIN)/equivar book --no-execute

paper: env data
	$(BIN)/equivar book --profile paper --update-book $(WORKERS_FLAG)

# The chapters in book/chapters as one PDF (_build/latex/equivar.pdf), linked from the HTML.
pdf: env
	scripts/ensure-tex
	$(BIN)/equivar pdf

bench: env
	$(BIN)/python benchmarks/simulator.py
	$(BIN)/python benchmarks/threads.py

clean:
	rm -rf _build book/chapters book/generated benchmarks/results book/figures/*.pdf book/figures/*.png \
	       book/figures/*.csv book/figures/*.json
