# The two commands a new machine needs: `make demo` (the staging incident, replayed locally)
# and `make test`. Both set everything up themselves, the operator command included:
# .venv/bin/rollback-watchdog, which runs from any directory (watchdog/tools/install.py says why
# it is a launcher, not a pip entry point). `make playground` keeps the incident's stand-ins
# running and prints the exports, to try every command by hand (no root needed: see its target).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The real provider schemas (google, google-beta, archive, time) for tests/terraform/test_schema.py.
TF_SCHEMA := tests/terraform/.schema/.installed

.PHONY: demo playground test unit lint fmt bench setup clean

demo: $(STAMP)
	$(BIN)/python -m tests.demo

# The playground delivers through Google's pstest Pub/Sub fake where build/pstest can be built (Go and
# Debian's golang-google-cloud-dev, from apt as root the first time), else over HTTP as the push
# subscription does (tests/push_topic.py), so a build that cannot run here is no failure.
# PLAYGROUND_NO_PUBSUB=1 skips the build and delivers over HTTP.
playground: $(STAMP)
	@case "$(PLAYGROUND_NO_PUBSUB)" in \
	  ""|0) $(MAKE) --no-print-directory build/pstest || echo "make playground: build/pstest cannot be built" \
	          "here (see above); the playground delivers over HTTP instead" >&2 ;; \
	esac
	$(BIN)/python -m tests.playground

test: $(STAMP) build/pstest .venv-checkov/.installed $(TF_SCHEMA) lint
	$(BIN)/python -m pytest -q

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/test_intake.py tests/test_decision.py tests/test_layout.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m tests.bench

# The venv and the operator command .venv/bin/rollback-watchdog: PyPI only, no root (what an operator needs).
setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt watchdog/tools/install.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m watchdog.tools.install $(BIN)
	touch $(STAMP)

build/pstest: tests/pubsub_emulator/main.go tests/pubsub_emulator/build.sh
	bash tests/pubsub_emulator/build.sh

.venv-checkov/.installed: tests/terraform/requirements-checkov.txt tests/terraform/setup.sh
	bash tests/terraform/setup.sh
	touch .venv-checkov/.installed

# pip download (PyPI only) of the pinned CDKTF provider packages, schema extracted once.
$(TF_SCHEMA): $(STAMP) tests/terraform/provider_schema.py tests/terraform/requirements-schema.txt
	rm -rf tests/terraform/.schema/*.json tests/terraform/.schema/*.desc
	$(BIN)/python tests/terraform/provider_schema.py
	touch $(TF_SCHEMA)

clean:
	rm -rf $(VENV) .venv-checkov build tests/terraform/.schema .pytest_cache .ruff_cache .mypy_cache .hypothesis bench-results.json
