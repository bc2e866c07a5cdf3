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
        test test-tools test-unit lint format schemas openapi openapi-tools bench eval clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*?## "} /^[a-zA-Z_-]+:.*?## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

CLIENT := clients/python

$(VENV)/.installed: pyproject.toml constraints.txt $(CLIENT)/pyproject.toml
	$(PYTHON_BIN) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]' -e $(CLIENT)
	touch $@

# The dashboard's front-end dependencies (Chart.js), exactly as package-lock.json pins them;
# the gateway serves them itself, so nothing is fetched at run time.
DASHBOARD_ASSETS := services/gateway/dashboard/frontend
$(DASHBOARD_ASSETS)/node_modules/.installed: $(DASHBOARD_ASSETS)/package.json $(DASHBOARD_ASSETS)/package-lock.json
	npm ci --prefix $(DASHBOARD_ASSETS) --no-audit --no-fund --loglevel=error
	touch $@

install: $(VENV)/.installed $(DASHBOARD_ASSETS)/node_modules/.installed ## Create the virtualenv, install the Python dependencies, the client package (editable) and the npm assets

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
	@$(PY) -m services.gateway.admin dashboard dev-token --credentials-file .local/dev-credentials.env \
	  > .local/dashboard-token.json
	@$(STACK) welcome

demo: up test-tools ## Submit three synthesised calls to the running stack and print their signed callbacks
	$(PY) -m deploy.local.demo

down: ## Stop what `make up` started
	$(STACK) down

status: ## Show what is running
	@$(STACK) status

logs: ## Follow the services' logs
	tail -F .local/log/*.log

test-tools: ## Install what the tests need beyond the stack (festival voices for speech, Prometheus, Chromium)
	$(STACK) install-test-tools

test: install system-deps test-tools openapi-tools ## Run the whole test suite against real Kafka and PostgreSQL
	$(PY) -m pytest $(PYTEST_ARGS)

chaos: install system-deps test-tools ## Fault tests: kill workers, restart Kafka and PostgreSQL while calls flow
	$(PY) -m pytest tests/chaos -m chaos $(PYTEST_ARGS)

test-unit: install test-tools ## Run only the tests that need no infrastructure (speech synthesis included)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

lint: install ## ruff and mypy (the services, and the client package as Python 3.10)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check services schemas tests deploy/local deploy/k8s bench clients eval
	$(VENV)/bin/mypy services schemas
	$(VENV)/bin/mypy --config-file $(CLIENT)/pyproject.toml $(CLIENT)/src

format: install ## Apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format services schemas tests deploy/local deploy/k8s bench clients eval

schemas: install ## Regenerate the checked-in JSON Schema files from schemas/events.py
	$(PY) -m schemas.generate

openapi: install ## Rebuild clients/openapi/partner-api.json (the document other languages generate clients from)
	$(PY) clients/openapi/build.py

OPENAPI_GENERATOR := .local/tools/openapi-generator-cli-$(shell sed -n 's:.*<openapi-generator.version>\(.*\)</openapi-generator.version>.*:\1:p' clients/openapi/pom.xml).jar

openapi-tools: $(OPENAPI_GENERATOR) ## Fetch the pinned OpenAPI generator from Maven Central (for the generated-client test)

$(OPENAPI_GENERATOR): clients/openapi/pom.xml
	mvn -q -f clients/openapi/pom.xml dependency:copy-dependencies -DoutputDirectory=../../.local/tools
	touch $@

bench: install test-tools infra-up ## Run the benchmarks and print the figures for BENCHMARKS.md
	$(PY) -m bench.gateway_bench
	$(PY) -m bench.gateway_bench --observability
	$(PY) -m bench.http_edge_bench
	$(PY) -m bench.fetcher_bench
	$(PY) -m bench.asr_bench
	$(PY) -m bench.analyzer_bench
	$(PY) -m bench.notifier_bench
	$(PY) -m bench.read_model_bench
	$(PY) -m bench.auth_timing_bench
	$(PY) -m bench.dashboard_bench
	$(PY) -m bench.pipeline_bench
	$(PY) -m bench.client_bench

ENGINE ?= builtin
EVAL_ARGS ?=

eval: install test-tools ## Score the analysis on the labelled corpus, as text and audio (ENGINE=llm with ANALYZER_LLM_*), and PII redaction
	$(PY) -m eval.run --engine $(ENGINE) $(EVAL_ARGS)
	$(PY) -m eval.redaction

clean: down ## Stop everything and delete local state (.local/, .venv/)
	rm -rf .local $(VENV)

HELM_VERSION ?= v3.22.0
HELM := .local/bin/helm
CHART := deploy/k8s/callpipe
CHART_KAFKA := --set kafka.bootstrapServers=kafka:9092

.PHONY: helm-lint
helm-lint: install ## Lint the Helm chart and validate every rendered manifest offline (installs helm into .local/bin)
	@test -x $(HELM) || { echo "installing helm $(HELM_VERSION) into .local/bin"; \
	  GOBIN=$(CURDIR)/.local/bin go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION); }
	@# Every values combination of ci/: defaults, KEDA, metrics and hardening on, existing Secrets.
	@for values in $(CHART)/ci/*-values.yaml; do $(HELM) lint --strict $(CHART) -f $$values || exit 1; done
	@# Kubernetes kinds against the schemas kubernetes-validate ships, custom resources against
	@# deploy/k8s/schemas, alert rules through promtool, dashboard and alert queries against the
	@# metrics the services export.
	$(PY) deploy/k8s/validate.py --helm $(HELM)
	@# Without a database the chart must refuse to render, with its own message.
	@if out=$$($(HELM) template callpipe $(CHART) $(CHART_KAFKA) 2>&1); then \
	  echo "error: the chart rendered without database.url or database.existingSecret"; exit 1; \
	elif ! grep -q "database: no database configured" <<<"$$out"; then echo "$$out"; exit 1; \
	else echo "ok: refuses to render without a database secret"; fi
	@# SASL without the Secret holding its password must not render either.
	@if out=$$($(HELM) template callpipe $(CHART) -f $(CHART)/ci/defaults-values.yaml \
	    --set kafka.securityProtocol=SASL_SSL --set kafka.sasl.mechanism=PLAIN --set kafka.sasl.username=u 2>&1); then \
	  echo "error: the chart rendered SASL without kafka.sasl.existingSecret"; exit 1; \
	elif ! grep -q "kafka.sasl.existingSecret" <<<"$$out"; then echo "$$out"; exit 1; \
	else echo "ok: refuses SASL without its password Secret"; fi
	@# Production without the key that encrypts signing secrets must not render either.
	@if out=$$($(HELM) template callpipe $(CHART) $(CHART_KAFKA) --set database.url=postgresql://u@db/callpipe 2>&1); then \
	  echo "error: the chart rendered for production without secretsEncryption.existingSecret"; exit 1; \
	elif ! grep -q "secretsEncryption.existingSecret" <<<"$$out"; then echo "$$out"; exit 1; \
	else echo "ok: refuses production without the secrets encryption key"; fi
