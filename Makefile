# finetrail developer commands. `make setup` once, then `make test` / `make demo`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP_FLAGS ?= -c constraints.txt

.PHONY: setup test test-fast lint format typecheck demo demo-quick bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=24"

setup: $(BIN)/python  ## create .venv and install finetrail with every extra and the dev tools
	$(BIN)/python -m pip install -q $(PIP_FLAGS) -e ".[all,dev]"

test: setup  ## the whole suite (what CI runs)
	$(BIN)/python -m pytest -n 2 --dist loadfile

test-fast:  ## skip the slow (training, subprocess) tests
	$(BIN)/python -m pytest -n 2 --dist loadfile -m "not slow"

lint:  ## ruff lint + format check, mypy (strict for governance and reports)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(MAKE) typecheck

typecheck:  ## mypy over a symlinked finetrail/ tree (the repo maps folders to one namespace)
	rm -rf build/mypy && mkdir -p build/mypy/finetrail
	cp -rs $(CURDIR)/core/. build/mypy/finetrail/
	for d in governance training reports templates policies; do ln -s $(CURDIR)/$$d build/mypy/finetrail/$$d; done
	cd build/mypy && $(CURDIR)/$(BIN)/python -m mypy --config-file $(CURDIR)/pyproject.toml -p finetrail.governance -p finetrail.reports

format:
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

demo: setup  ## the main job: the whole pipeline end to end, offline
	$(BIN)/finetrail demo --out demo-out

demo-quick: setup
	$(BIN)/finetrail demo --out demo-out --quick

bench: setup  ## every benchmark in benchmarks/, written to docs/benchmarks.md
	$(BIN)/python benchmarks/run_all.py --out docs/benchmarks.md

clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache demo-out
