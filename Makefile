# Postroom: `make up` runs the whole stack, `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DISTS  := -e 'shared[embedded]' -e services/smtp-in -e services/delivery-worker \
          -e services/access -e services/mailbox-api
PROJECT_FILES := constraints.txt requirements-dev.txt shared/pyproject.toml \
                 $(wildcard services/*/pyproject.toml)
TYPED  := shared/postroom services/access/postroom/access services/smtp-in/postroom/smtp_in \
          services/delivery-worker/postroom/delivery services/mailbox-api/postroom/api

.DEFAULT_GOAL := help
.PHONY: help install up test lint bench bench-imap-large imaptest lock clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 12

install: $(STAMP) node_modules/.installed ## Create or update .venv (every service editable) and node_modules (test-only axe-core)

$(STAMP): $(PROJECT_FILES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt \
		$(DISTS) -r requirements-dev.txt
	touch $(STAMP)

# The web pages need no build step; npm brings only axe-core, which the browser tests inject.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

up: install ## Run the whole stack in the foreground (Ctrl-C stops it)
	$(BIN)/postroom up

test: install ## Run the whole test suite
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check shared services tests bench
	$(BIN)/mypy $(TYPED)

bench: install ## Run the benchmarks and print their figures
	$(BIN)/python bench/run.py

bench-imap-large: install ## IMAP against Dovecot on 100,000 messages (half an hour on 2 cores)
	POSTROOM_BENCH_IMAP_SIZES=100000 $(BIN)/python bench/bench_imap.py

imaptest: install ## Dovecot's imaptest (IMAPTEST=path to a built binary) against Postroom
	$(BIN)/python bench/imaptest_run.py

lock: ## Re-pin every dependency (constraints.txt) from a fresh resolve
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install -q $(DISTS) -r requirements-dev.txt
	.venv-lock/bin/pip freeze --exclude-editable | grep -v '^-e' > constraints.txt
	rm -rf .venv-lock

clean: ## Remove .venv and caches (not the data dir)
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
