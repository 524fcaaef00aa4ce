# Two commands do all the set-up on a fresh machine: `make demo` (main job, offline) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-all lint help-spec clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)  ## train teachers, a CE baseline and a pFEED student offline; print the table
	HF_HUB_OFFLINE=1 $(BIN)/feed-hf demo --output_dir runs/demo

test: $(STAMP)  ## lint + the fast test suite (offline, CPU, a few minutes)
	$(BIN)/ruff check feed_hf feed_hf_cli.py tests recipes benchmarks
	$(BIN)/python -m pytest -q  # tests/conftest.py points the Hub at a loopback server: no network

test-all: $(STAMP)  ## also the slow tests (multi-process, real data)
	$(BIN)/python -m pytest -q -m "slow or not slow"

lint: $(STAMP)
	$(BIN)/ruff check feed_hf feed_hf_cli.py tests recipes benchmarks
	$(BIN)/ruff format --check feed_hf feed_hf_cli.py tests recipes benchmarks

help-spec: $(STAMP)  ## rewrite feed_hf/cli_help.json after changing an argument dataclass (a test checks it)
	$(BIN)/python -m feed_hf.runs.help_spec

clean:
	rm -rf $(VENV) runs
