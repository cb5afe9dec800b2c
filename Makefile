# medseg developer entry points. Every target but browser and clean installs what it needs into .venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   ?= demo

.PHONY: install demo test test-all lint bench gpu-check cohort clean browser

# TORCH_INDEX: a package index to take torch from, e.g. PyTorch's CPU-only wheels on a machine without a GPU:
#   make install TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=

NEW_ENOUGH := -c 'import sys; sys.exit(sys.version_info < (3, 11))'

# .venv is made where it is missing; one that runs a Python older than medseg needs (3.11) is named, not removed
$(STAMP): pyproject.toml constraints.txt
	@if [ -x $(BIN)/python ]; then $(BIN)/python $(NEW_ENOUGH) || { echo "$(VENV) runs Python \
	$$($(BIN)/python -c 'import platform; print(platform.python_version())'); medseg needs 3.11 or newer: remove it \
	(rm -rf $(VENV)) and run make again with PYTHON=python3.11 or newer" >&2; exit 1; }; \
	else $(PYTHON) $(NEW_ENOUGH) 2>/dev/null || { echo "medseg needs Python 3.11 or newer, which $(PYTHON) is not \
	(or it is not there): name one, e.g. make $(or $(MAKECMDGOALS),install) PYTHON=python3.11" >&2; exit 1; }; \
	$(PYTHON) -m venv $(VENV); fi
	$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "installing torch 2.13.0$(if $(TORCH_INDEX), from $(TORCH_INDEX)) (a CPU build about 200 MB, PyPI's Linux CUDA build several GB: minutes)"
	$(BIN)/python -m pip install torch==2.13.0 -c constraints.txt $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	@echo "installing medseg and its pinned dependencies (constraints.txt: about 100 packages, minutes)"
	$(BIN)/python -m pip install -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Segment a synthetic phantom with the shipped default model and score it against its label.
demo: $(STAMP)
	$(BIN)/medseg synth $(DEMO)/phantom.nii.gz --label $(DEMO)/phantom_label.nii.gz --seed 7 --overwrite
	$(BIN)/medseg infer $(DEMO)/phantom.nii.gz -o $(DEMO) --reference $(DEMO)/phantom_label.nii.gz --overwrite
	@echo "Outputs: $(DEMO)/phantom_seg.nii.gz  $(DEMO)/phantom_seg.json  $(DEMO)/phantom_metrics.json"

# Test processes (pytest-xdist); TEST_WORKERS=0 runs the tests in one process. With more than one, each runs torch
# on one thread (OMP_NUM_THREADS=1), so that the workers do not fight over the cores. The tests are handed out a
# module at a time (--dist loadfile), so that a module's fixtures are made once, not once on each worker, in the
# order of the collection, which tests/conftest.py begins with the Snakemake test modules (minutes each): the run then
# ends on short modules (--no-loadscope-reorder keeps that order; by default the modules with most tests go first).
TEST_WORKERS ?= 2
PYTEST := $(if $(filter-out 0 1,$(TEST_WORKERS)),OMP_NUM_THREADS=1 )$(BIN)/python -m pytest -q -n $(TEST_WORKERS) \
	$(if $(filter-out 0,$(TEST_WORKERS)),--dist loadfile --no-loadscope-reorder)

## The default test suite (slow tests deselected).
test: $(STAMP)
	$(BIN)/ruff check medseg tests benchmarks
	$(PYTEST)

## Everything, slow tests included.
test-all: $(STAMP)
	$(PYTEST) -m ''

## Debian's Chromium for the HTML report's browser test (skipped with a reason when no browser is present).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
	  || (command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium could not be installed: the browser test will be skipped"

lint: $(STAMP)
	$(BIN)/ruff check medseg tests benchmarks

## Inference speed on the CPU (benchmarks/infer_speed.py on a 512×512×32 phantom; a few minutes, about 5 GB of memory).
bench: $(STAMP)
	$(BIN)/python benchmarks/infer_speed.py

## On a machine with a CUDA GPU (torch's CUDA build): the GPU tests, then inference speed in fp16 and fp32.
gpu-check: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_cuda.py
	$(BIN)/python benchmarks/infer_speed.py --device cuda --precision fp16 --slices 128 --batch-size 64
	$(BIN)/python benchmarks/infer_speed.py --device cuda --precision fp32 --slices 128 --batch-size 64

## Segment an example cohort with Snakemake (synthetic phantoms, case06 corrupt on purpose); print the report's path.
COHORT_DATA := demo/cohort
CORES ?= 2
cohort: $(STAMP) $(COHORT_DATA)/.complete
	$(BIN)/snakemake --cores $(CORES)
	@echo "Report: $(CURDIR)/results/cohort/report.html  (failure records: results/cohort/cases/*/*_failed.json)"

$(COHORT_DATA)/.complete: | $(STAMP)
	mkdir -p $(COHORT_DATA)
	for i in 1 2 3 4 5 6; do \
	  $(BIN)/medseg synth $(COHORT_DATA)/case0$$i.nii.gz --label $(COHORT_DATA)/case0$${i}_label.nii.gz \
	    --seed $$((100 + i)) --overwrite || exit 1; \
	done
	head -c 20000 $(COHORT_DATA)/case06.nii.gz > $(COHORT_DATA)/case06.cut && mv $(COHORT_DATA)/case06.cut $(COHORT_DATA)/case06.nii.gz
	touch $@

clean:
	rm -rf $(DEMO) .pytest_cache .ruff_cache
