#!/usr/bin/env bash
# Bring the local system up and down: Postgres (Debian cluster), three Kafka brokers, the services
# and the monitoring (Prometheus, the lag exporter) under supervisord.
#
#   stack.sh up        start what is not running; returns when every part is ready, every Prometheus
#                      target is up and every rule loaded
#   stack.sh up-infra  only Postgres, Kafka and the topics (no services, no monitoring)
#   stack.sh down      stop services, brokers and Postgres
#   stack.sh status    what runs where: ports, pids, health
#   stack.sh logs      follow every process's log
#   stack.sh scale-out a second worker and a standby relay per service (scale-in stops them)
#   stack.sh relay M   the stack up with relay M (builtin|debezium), through `down` if it runs with
#                      the other (make test runs the saga under both)
#
# RELAY=builtin|debezium chooses who moves each outbox to Kafka (docs/runbook.md, "Choosing the
# relay"): the services' own relays (builtin, the default), or Kafka Connect with one Debezium
# connector per service. `up` records the mode of the running stack in .run/relay-mode; later
# commands without RELAY use it, and `up` refuses another mode until `down`.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export REPO
cd "$REPO"
PY="$REPO/.venv/bin/python"
SUPERVISORD="$REPO/.venv/bin/supervisord"
CTL=("$REPO/.venv/bin/supervisorctl" -c "$REPO/infra/supervisord.conf")
SERVICES=(order payment inventory)
declare -A API_PORT=([order]=8001 [payment]=8002 [inventory]=8003)
PROMETHEUS_URL=http://127.0.0.1:9090
LAG_EXPORTER_PORT=9150
RELAY_MODE_FILE=.run/relay-mode

# The relay mode: RELAY if given, else the running stack's, else builtin.
running_mode() { cat "$RELAY_MODE_FILE" 2>/dev/null || echo builtin; }
RELAY="${RELAY:-$(running_mode)}"
check_relay_name() {
  case "$1" in
    builtin | debezium) ;;
    *) echo "stack: RELAY must be builtin or debezium, not '$1'" >&2; exit 2 ;;
  esac
}
check_relay_name "$RELAY"
export RELAY                       # kafka.sh: the connect principal's SCRAM user (debezium only)
export LAG_EXPORTER_RELAY="$RELAY" # the lag exporter's relay_mode metric gates the relay alerts

supervisor_running() { [ -S .run/supervisor.sock ] && "${CTL[@]}" pid >/dev/null 2>&1; }

start_supervisor() {
  mkdir -p .run/logs
  if ! supervisor_running; then
    echo "stack: starting supervisord (Kafka brokers start with it)"
    "$SUPERVISORD" -c infra/supervisord.conf
  fi
  "${CTL[@]}" start kafka:* >/dev/null || true
}

up_infra() {
  bash infra/postgres/postgres.sh up
  start_supervisor
  "$PY" infra/scripts/provision_topics.py
  bash infra/kafka/kafka.sh scram-users  # principals added since the storage was formatted
}

# Each service's migrations, as its schema's owner role (<svc>_owner: the services' settings default
# migration_database_url to it locally); the services themselves run as <svc>_svc, which may not
# change a schema (infra/postgres/init.sql).
migrate() {
  local svc
  for svc in "${SERVICES[@]}"; do
    [ -f "services/$svc/alembic.ini" ] || continue
    (cd "services/$svc" && "$REPO/.venv/bin/alembic" -c alembic.ini upgrade head 2>&1 | grep -v '^INFO' || true)
  done
}

# Under RELAY=debezium the relays are not started: Kafka Connect publishes the outboxes.
start_services() {
  local svc role roles=(api relay worker) programs=()
  [ "$RELAY" = debezium ] && roles=(api worker)
  for svc in "${SERVICES[@]}"; do
    for role in "${roles[@]}"; do
      [ -x ".venv/bin/$svc-$role" ] && programs+=("services:$svc-$role")
    done
  done
  [ ${#programs[@]} -eq 0 ] && return
  "${CTL[@]}" start "${programs[@]}" | grep -v 'already started' || true
  "$PY" infra/scripts/wait_ready.py
}

# Prometheus (Debian's package; its own system service is not used) and the lag exporter, once the
# services run, so that the first scrape finds every target.
start_monitoring() {
  local programs=()
  command -v prometheus >/dev/null && programs+=(monitoring:prometheus)
  [ -x .venv/bin/lag-exporter ] && programs+=(monitoring:lag-exporter)
  [ ${#programs[@]} -eq 0 ] && return
  "${CTL[@]}" update monitoring >/dev/null  # a supervisord started before this group existed
  "${CTL[@]}" start "${programs[@]}" | grep -v 'already started' || true
  "$PY" infra/scripts/wait_ready.py --prometheus
}

# RELAY=debezium: Kafka Connect under the supervisor (group cdc) and a connector per service, each
# step idempotent. The relays are stopped first: a connector and a relay on the same outbox would
# both publish every event, and `prepare` makes each row vanish as it is inserted.
start_debezium() {
  local svc relays=()
  for svc in "${SERVICES[@]}"; do relays+=("services:$svc-relay"); done
  "${CTL[@]}" stop "${relays[@]}" >/dev/null 2>&1 || true
  bash infra/connect/connect.sh install
  "$PY" infra/scripts/connectors.py provision
  "$PY" infra/scripts/connectors.py prepare
  "${CTL[@]}" update cdc >/dev/null  # a supervisord started before this group existed
  "${CTL[@]}" start cdc:connect | grep -v 'already started' || true
  "$PY" infra/scripts/connectors.py register
}

# A running stack keeps its mode: switching skips the events unpublished at the switch (the
# connectors start at the WAL's current position), so it goes through `down` (docs/runbook.md).
check_mode() {
  if supervisor_running && [ "$(running_mode)" != "$RELAY" ]; then
    echo "stack: the stack runs with RELAY=$(running_mode); make down first to switch to RELAY=$RELAY" >&2
    exit 1
  fi
}

# Right after a start the broker that came up first leads every partition, and Kafka hands
# leadership back to each partition's preferred replica only every 5 minutes: a benchmark or a load
# started before then runs on one broker (docs/numbers.md). Elect the preferred leaders now.
balance_leaders() {
  if bash infra/kafka/kafka.sh tool leader-election --bootstrap-server 127.0.0.1:9092 \
       --election-type preferred --all-topic-partitions >/dev/null 2>&1; then
    echo "kafka: partition leadership on the preferred replicas"
  else
    echo "kafka: preferred leader election did not complete; Kafka rebalances leadership within 5 minutes" >&2
  fi
}

up() {
  check_mode
  "$PY" infra/scripts/dev_keys.py .run/keys  # the development keys, once (kept across restarts)
  up_infra
  echo "$RELAY" > "$RELAY_MODE_FILE"
  migrate
  # An outbox last run under Debezium deletes each row as it is inserted: the built-in relay would
  # find nothing to publish, and every event would be lost.
  [ "$RELAY" = builtin ] && "$PY" infra/scripts/connectors.py retire
  # Under Debezium the connectors (their slots) exist before any service writes: a row inserted
  # before its slot would be deleted by `prepare`'s trigger and never decoded.
  [ "$RELAY" = debezium ] && start_debezium
  start_services
  start_monitoring
  balance_leaders
}

down() {
  if supervisor_running; then
    echo "stack: stopping services, then brokers"
    "${CTL[@]}" stop monitoring:* cdc:* scale-out:* services:* >/dev/null || true
    "${CTL[@]}" stop kafka:* >/dev/null || true
    "${CTL[@]}" shutdown >/dev/null || true
    for _ in $(seq 1 60); do [ -S .run/supervisor.sock ] && [ -f .run/supervisord.pid ] && sleep 0.5 || break; done
  fi
  bash infra/postgres/postgres.sh down
  rm -f "$RELAY_MODE_FILE"
  echo "stack: down"
}

status() {
  bash infra/postgres/postgres.sh status
  if supervisor_running; then
    # supervisorctl status exits 3 when a program is stopped (the scale-out ones usually are).
    { "${CTL[@]}" status || true; } | while read -r name state rest; do
      port=""
      case "$name" in
        kafka:kafka-*) port="127.0.0.1:$(bash infra/kafka/kafka.sh ports "${name##*-}" | sed 's/client=\([0-9]*\).*/\1/')" ;;
        services:*-api) svc=${name#services:}; svc=${svc%-api}; port="http://127.0.0.1:${API_PORT[$svc]}" ;;
        monitoring:prometheus) port="$PROMETHEUS_URL" ;;
        monitoring:lag-exporter) port="http://127.0.0.1:$LAG_EXPORTER_PORT/metrics" ;;
        cdc:connect) port="$(bash infra/connect/connect.sh rest)" ;;
      esac
      printf '%-26s %-9s %-24s %s\n' "$name" "$state" "$port" "$rest"
    done
    echo "relay: $RELAY"
    if [ "$RELAY" = debezium ]; then "$PY" infra/scripts/connectors.py status || true; fi
    "$PY" infra/scripts/wait_ready.py --report
  else
    echo "supervisord not running: Kafka and services are stopped"
  fi
}

logs() { tail -n 20 -F .run/logs/*.log; }

scale_out() {
  supervisor_running || { echo "stack: not running; make up first" >&2; exit 1; }
  "${CTL[@]}" update scale-out >/dev/null  # a supervisord started before this group existed
  if [ "$RELAY" = debezium ]; then  # the second workers only: no relay runs in this mode
    "${CTL[@]}" start scale-out:order-worker-2 scale-out:payment-worker-2 scale-out:inventory-worker-2 \
      | grep -v 'already started' || true
  else
    "${CTL[@]}" start scale-out:* | grep -v 'already started' || true
  fi
  "$PY" infra/scripts/wait_ready.py
}

scale_in() {
  supervisor_running && "${CTL[@]}" stop scale-out:* >/dev/null || true
}

# Switching goes through down (see check_mode).
switch_relay() {
  check_relay_name "$1"
  if supervisor_running && [ "$(running_mode)" != "$1" ]; then down; fi
  RELAY=$1
  LAG_EXPORTER_RELAY=$1
  up
}

case "${1:-}" in
  up) up ;;
  relay) switch_relay "${2:-}" ;;
  up-infra) up_infra ;;
  down) down ;;
  status) status ;;
  logs) logs ;;
  scale-out) scale_out ;;
  scale-in) scale_in ;;
  *) sed -n '2,13p' "$0" >&2; exit 2 ;;
esac
