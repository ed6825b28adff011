# Two commands on a fresh machine:  `make demo` (install + run the demo DAG)  and  `make test`.
PYTHON ?= python3.11
VENV ?= .venv
CORES ?= all
BIN := $(VENV)/bin

.PHONY: demo test install

install: $(VENV)/.installed

# torch is pinned first: an unpinned torch pulls a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test,text]'
	$(BIN)/pip check
	touch $@

# A run killed hard leaves Snakemake's lock behind: release it when no snakemake process runs.
demo: install
	@pgrep -x snakemake >/dev/null || $(BIN)/snakemake --unlock >/dev/null 2>&1 || true
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake --cores $(CORES)

test: install
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest
