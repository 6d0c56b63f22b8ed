# idae: `make all` rebuilds the report (notebooks + figures), `make test` checks it. `make help` lists targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard notebooks/0[1-9]_*.ipynb))
PROFILE ?= default

# One thread setting for every run: a different thread count changes float sums, hence outputs.
export OMP_NUM_THREADS := 2
export MKL_NUM_THREADS := 2
export OPENBLAS_NUM_THREADS := 2
# One instruction set for torch's kernels, MKL and OpenBLAS: otherwise they pick AVX-512 where they find it and
# sum floats in another order, so fits drift from one machine to the next. MKL fixes an ISA branch on Intel CPUs
# only; its COMPATIBLE branch (SSE2 without approximate reciprocals) is the one it runs alike on Intel and AMD
# (Intel oneMKL developer guide, "Obtaining Numerically Reproducible Results"), for about 15% longer fits.
export ATEN_CPU_CAPABILITY := avx2
export MKL_CBWR := COMPATIBLE,STRICT
export OPENBLAS_CORETYPE := Haswell
export ONEDNN_MAX_CPU_ISA := AVX2
export PYTHONHASHSEED := 0
export PYDEVD_DISABLE_FILE_VALIDATION := 1

# Your own data, without a params file (see the README): make all CLINICAL=c.csv GENOMIC=g.csv ID_COL=patient
# COLUMNS=er,grade,age CATEGORICAL=grade STRATIFY=er FLIP="er:neg:pos grade:1:3" LATENT_DIM=6 NAME=mine
REPORT_ARGS = --profile $(PROFILE) $(if $(PARAMS),--params $(PARAMS)) $(if $(NAME),--name $(NAME)) \
	$(if $(CLINICAL),--clinical $(CLINICAL)) $(if $(GENOMIC),--genomic $(GENOMIC)) $(if $(ID_COL),--id-col $(ID_COL)) \
	$(if $(COLUMNS),--columns $(COLUMNS)) $(if $(CATEGORICAL),--categorical $(CATEGORICAL)) \
	$(if $(STRATIFY),--stratify $(STRATIFY)) $(foreach f,$(FLIP),--flip $(f)) $(if $(LATENT_DIM),--latent-dim $(LATENT_DIM))

.PHONY: help venv all quick example html test unit lint nbval bench sweep lab lock clean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name idae --display-name "Python (idae)" >/dev/null
	touch $@

venv: $(STAMP) ## build .venv from requirements.lock (only when missing or stale)

all: $(STAMP) ## run notebooks 01-05 (papermill) and render build/html; with PARAMS=f.yaml or CLINICAL=... into build/<name>/
	$(PY) -m idae.report $(REPORT_ARGS)

quick: $(STAMP) ## the quick profile (small data, few epochs), written to build/quick/, not notebooks/
	$(PY) -m idae.report --profile quick

example: $(STAMP) ## the README's worked example: GSE4335 as two CSV tables, quick profile, into build/gse4335_quick/
	IDAE_RUN_EXAMPLE=1 $(PY) -m pytest -q tests/test_worked_example.py

html: $(STAMP) ## render the committed report to build/html/ (index + five pages, figures inline)
	$(PY) -m idae.html notebooks build/html

test: lint unit nbval example ## ruff, unit tests, nbval over the committed notebooks, the worked example

lint: $(STAMP) ## ruff over the package, tests, scripts and notebooks
	$(VENV)/bin/ruff check idae tests scripts notebooks

unit: $(STAMP) ## unit and property tests
	$(PY) -m pytest -q tests --ignore=tests/test_worked_example.py

nbval: $(STAMP) ## re-execute the committed notebooks and compare their stored outputs
	$(PY) -m pytest -q -p tests.nbval_numbers --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg $(NOTEBOOKS)

bench: $(STAMP) ## speed and memory figures beside their baselines (prints a table)
	$(PY) scripts/bench.py

sweep: $(STAMP) ## the identifiability ablation and the inversion benchmarks (about 140 min): data/*.csv
	$(PY) scripts/identifiability_sweep.py --seeds 5 --resamples 20 --segments --real --latent-sizes --cohort-stability 3 --out data
	$(PY) scripts/inversion_sweep.py --seeds 5 --semi-seeds 10 --out data

lab: $(STAMP) ## open the report in JupyterLab on the idae kernel
	$(VENV)/bin/jupyter lab notebooks/

lock: $(STAMP) ## rewrite requirements.lock from what .venv holds
	{ echo "# Exact versions installed by 'make venv' (python 3.11, CPU). Regenerate with 'make lock'."; \
	  $(PY) -m pip freeze --exclude-editable | grep -v '^#' | sed 's/+cpu$$//' | LC_ALL=C sort -f; } > requirements.lock.tmp
	mv requirements.lock.tmp requirements.lock

clean: ## remove the venv and generated scratch outputs (not the committed report)
	rm -rf $(VENV) build .pytest_cache .hypothesis notebooks/.ipynb_checkpoints
