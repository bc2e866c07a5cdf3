# callpipe: `make up` runs the whole system locally, `make test` runs the test suite.
# Both set up everything they need on a fresh Debian machine (virtualenv, Python packages,
# Kafka jars from Maven Central, PostgreSQL from the Debian packages).

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BIN ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STACK := python3 deploy/local/stack.py
PYTEST_ARGS ?=

.PHONY: help install system-deps infra-up infra-down migrate up demo chaos down status logs \
        test test-tools test-unit lint format schemas bench eval clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*?## "} /^[a-zA-Z_-]+:.*?## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON_BIN) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed ## Create the virtualenv and install the Python dependencies

system-deps: ## Install PostgreSQL (Debian packages) if missing and fetch the Kafka jars
	$(STACK) install

infra-up: system-deps ## Start PostgreSQL (reused if running) and Kafka on loopback
	$(STACK) up

infra-down: ## Stop Kafka, and PostgreSQL if `make up` started it
	$(STACK) down

SERVICES := gateway fetcher analyzer notifier

migrate: install ## Apply every service's database migrations
	@for s in $(SERVICES); do $(PY) -m services.$$s migrate || exit 1; done

up: install infra-up migrate ## Install, start Kafka, PostgreSQL and every service; print dev credentials
	@$(PY) -m deploy.local.dev_tls
	$(STACK) services-up
	@$(PY) -m services.gateway.admin dev-partner --credentials-file .local/dev-credentials.env >/dev/null
	@$(STACK) welcome

demo: up test-tools ## Submit three synthesised calls to the running stack and print their signed callbacks
	$(PY) -m deploy.local.demo

down: ## Stop what `make up` started
	$(STACK) down

status: ## Show what is running
	@$(STACK) status

logs: ## Follow the services' logs
	tail -F .local/log/*.log

test-tools: ## Install what the tests need beyond the stack (festival voices for speech)
	$(STACK) install-test-tools

test: install system-deps test-tools ## Run the whole test suite against real Kafka and PostgreSQL
	$(PY) -m pytest $(PYTEST_ARGS)

chaos: install system-deps test-tools ## Fault tests: kill workers, restart Kafka and PostgreSQL while calls flow
	$(PY) -m pytest tests/chaos -m chaos $(PYTEST_ARGS)

test-unit: install test-tools ## Run only the tests that need no infrastructure (speech synthesis included)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

lint: install ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check services schemas tests deploy/local bench eval
	$(VENV)/bin/mypy services schemas

format: install ## Apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format services schemas tests deploy/local bench eval

schemas: install ## Regenerate the checked-in JSON Schema files from schemas/events.py
	$(PY) -m schemas.generate

bench: install test-tools infra-up ## Run the benchmarks and print the figures for BENCHMARKS.md
	$(PY) -m bench.gateway_bench
	$(PY) -m bench.fetcher_bench
	$(PY) -m bench.asr_bench
	$(PY) -m bench.analyzer_bench
	$(PY) -m bench.notifier_bench
	$(PY) -m bench.read_model_bench
	$(PY) -m bench.pipeline_bench

ENGINE ?= builtin
EVAL_ARGS ?=

eval: install test-tools ## Score the analysis on the labelled corpus, as text and audio (ENGINE=llm with ANALYZER_LLM_*)
	$(PY) -m eval.run --engine $(ENGINE) $(EVAL_ARGS)

clean: down ## Stop everything and delete local state (.local/, .venv/)
	rm -rf .local $(VENV)

HELM_VERSION ?= v3.22.0
HELM := .local/bin/helm
CHART := deploy/k8s/callpipe
CHART_KAFKA := --set kafka.bootstrapServers=kafka:9092

.PHONY: helm-lint
helm-lint: ## Lint and render the Helm chart (installs helm into .local/bin)
	@test -x $(HELM) || { echo "installing helm $(HELM_VERSION) into .local/bin"; \
	  GOBIN=$(CURDIR)/.local/bin go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION); }
	$(HELM) lint --strict $(CHART) $(CHART_KAFKA) --set database.url=postgresql://callpipe:lint@postgres:5432/callpipe
	$(HELM) lint --strict $(CHART) -f $(CHART)/ci/workers-values.yaml
	$(HELM) template callpipe $(CHART) $(CHART_KAFKA) --set database.url=postgresql://callpipe:lint@postgres:5432/callpipe >/dev/null
	$(HELM) template callpipe $(CHART) -f $(CHART)/ci/workers-values.yaml >/dev/null
	@# Without a database the chart must refuse to render, with its own message.
	@if out=$$($(HELM) template callpipe $(CHART) $(CHART_KAFKA) 2>&1); then \
	  echo "error: the chart rendered without database.url or database.existingSecret"; exit 1; \
	elif ! grep -q "database: no database configured" <<<"$$out"; then echo "$$out"; exit 1; \
	else echo "ok: refuses to render without a database secret"; fi
