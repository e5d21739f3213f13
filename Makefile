# The two commands a new machine needs: `make demo` (the staging incident, replayed locally)
# and `make test`. Both set everything up themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test unit lint fmt bench setup clean

demo: $(STAMP)
	$(BIN)/python -m tests.demo

test: $(STAMP) build/pstest .venv-checkov/.installed lint
	$(BIN)/python -m pytest -q

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/test_intake.py tests/test_decision.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m tests.bench

setup: $(STAMP) build/pstest .venv-checkov/.installed

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

build/pstest: tests/pubsub_emulator/main.go tests/pubsub_emulator/build.sh
	bash tests/pubsub_emulator/build.sh

.venv-checkov/.installed: tests/terraform/requirements-checkov.txt tests/terraform/setup.sh
	bash tests/terraform/setup.sh
	touch .venv-checkov/.installed

clean:
	rm -rf $(VENV) .venv-checkov build .pytest_cache .ruff_cache .hypothesis bench-results.json
