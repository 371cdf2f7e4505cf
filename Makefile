# Two commands do everything: `make run` and `make test`. The rest are their parts.
SHELL := /bin/bash
PYTEST := .venv/bin/pytest
STACK := bash infra/scripts/stack.sh

.PHONY: help install up up-infra down status logs scale-out scale-in run demo test test-unit test-integration test-e2e test-debezium test-saga-debezium \
        bench lint kafka-tool psql schemas token ops

help:
	@echo "make run               install, start everything, place demo orders, follow the logs (Ctrl-C stops)"
	@echo "make test              install, start what tests need, run every test"
	@echo "make up | down | status start in the background / stop / show what runs where, with health and Prometheus (:9090)"
	@echo "RELAY=debezium make up the outboxes published by Kafka Connect + Debezium (:8083) instead of the relays; switch through make down"
	@echo "make up-infra          only Postgres and the Kafka brokers (what the integration tests need)"
	@echo "make logs | demo       follow every process's log / place the demo orders on a running stack"
	@echo "make scale-out | scale-in   a second worker and a standby relay per service / stop them"
	@echo "make test-unit | test-integration | test-e2e   one test layer"
	@echo "make test-debezium     the Debezium relay's contract and crash tests (a Connect worker of their own)"
	@echo "make test-saga-debezium   the saga's e2e paths and concurrency test with RELAY=debezium (switches the stack, then back)"
	@echo "make bench             relay throughput vs a plain producer; the saga under open-loop load; built-in relay vs Debezium"
	@echo "make lint              ruff check, ruff format --check, mypy strict (CI runs it before the tests)"
	@echo "make kafka-tool ARGS='topics --describe --topic order-events'   Kafka's own CLI tools"
	@echo "make psql              a superuser psql on the ecommerce database"
	@echo "make schemas           regenerate the committed event contracts from the event models"
	@echo "make token SUB=alice ROLE=customer [EXP=3600]   a development bearer token (roles: customer, support, admin)"
	@echo "make ops ARGS='saga trace <order_id>'   the operator CLI (.venv/bin/ecommerce): saga trace|stuck, dlt list|show|redrive, lag"

install:
	@bash infra/scripts/install.sh

up: install
	@$(STACK) up

up-infra: install
	@$(STACK) up-infra

down:
	@$(STACK) down

status:
	@$(STACK) status

logs:
	@$(STACK) logs

scale-out: up
	@$(STACK) scale-out

scale-in:
	@$(STACK) scale-in

# The token alone on stdout: TOKEN=$$(make -s token SUB=alice ROLE=customer). Keys are made if missing.
token:
	@test -f .run/keys/auth-signing.pem || .venv/bin/python infra/scripts/dev_keys.py >&2
	@.venv/bin/python infra/scripts/dev_token.py "$(SUB)" "$(ROLE)" $(if $(EXP),--exp $(EXP))

demo:
	@.venv/bin/python infra/scripts/demo.py

# The operator CLI, also on the PATH of the venv: .venv/bin/ecommerce --help
ops:
	@.venv/bin/ecommerce $(ARGS)

# Foreground: start, show the demo sagas, follow the logs; Ctrl-C stops everything.
run: up
	@trap 'trap - INT TERM EXIT; $(STACK) down' INT TERM EXIT; \
	  .venv/bin/python infra/scripts/demo.py; \
	  echo "Following logs; Ctrl-C stops everything."; \
	  tail -n 0 -F .run/logs/*-api.log .run/logs/*-worker.log .run/logs/*-relay.log

# Every test on the built-in relay (the default); then the Debezium relay's own tests, and the saga's
# end-to-end paths and its 200-order concurrency test again with Debezium publishing the outboxes
# (docs/architecture.md, "The two relays"); the stack is left on the built-in relay.
test: install
	@$(STACK) relay builtin
	@$(PYTEST) tests
	@$(MAKE) -s test-debezium
	@$(MAKE) -s test-saga-debezium

# The connectors and their slots are removed at the end (a slot left behind holds the WAL forever),
# once each has published what its outbox held.
test-saga-debezium: install
	@$(STACK) relay debezium
	@status=0; $(PYTEST) tests/e2e/test_saga_paths.py tests/e2e/test_concurrency.py || status=$$?; \
	  .venv/bin/python infra/scripts/connectors.py remove order payment inventory || status=1; \
	  $(STACK) relay builtin; exit $$status

test-unit: install
	@$(PYTEST) tests/unit

test-integration: up
	@$(PYTEST) tests/integration

test-e2e: up
	@$(PYTEST) tests/e2e

# The Debezium relay's contract and crash tests, with a Connect worker of their own beside the running
# stack (tests/integration/debezium/conftest.py).
test-debezium: up-infra
	@bash infra/connect/connect.sh install
	@RELAY=debezium bash infra/kafka/kafka.sh scram-users
	@.venv/bin/python infra/scripts/connectors.py provision
	@$(PYTEST) -m debezium tests/integration/debezium

# relay_compare needs Kafka Connect: its jars and the connect principal, as test-debezium (it starts a
# worker for the run unless RELAY=debezium runs one).
bench: up
	@.venv/bin/python bench/relay_throughput.py
	@.venv/bin/python bench/saga_load.py
	@bash infra/connect/connect.sh install
	@RELAY=debezium bash infra/kafka/kafka.sh scram-users
	@.venv/bin/python bench/relay_compare.py

# Lint, formatting and types: what CI checks before the tests (mypy strict over the files pyproject.toml lists).
# All three run, so one pass shows every problem; any failure fails the target.
lint: install
	@failed=0; \
	  .venv/bin/ruff check . || failed=1; \
	  .venv/bin/ruff format --check . || failed=1; \
	  .venv/bin/mypy || failed=1; \
	  exit $$failed

# Kafka's command-line tools against the local cluster, e.g.
#   make kafka-tool ARGS="consumer-groups --bootstrap-server 127.0.0.1:9092 --describe --all-groups"
kafka-tool:
	@bash infra/kafka/kafka.sh tool $(ARGS)

psql:
	@bash infra/postgres/postgres.sh psql

# Regenerate the committed event contracts (shared/schemas/*.json, shared/asyncapi.yaml) from the
# event models; the contract tests fail while they are stale.
schemas: install
	@.venv/bin/python -m shared.events.schema_export
	@.venv/bin/python -m shared.events.asyncapi
