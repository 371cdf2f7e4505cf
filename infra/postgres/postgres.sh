#!/usr/bin/env bash
# Postgres from Debian's packages, in a cluster of its own ("ecommerce", port 5433) so that a
# machine's default cluster is left alone.
#
#   postgres.sh up       install if missing, create the cluster on first use, start it, apply init.sql
#   postgres.sh down     stop the cluster (fast shutdown: open sessions are ended)
#   postgres.sh start    start the existing cluster, return once it accepts connections
#   postgres.sh restart  fast shutdown and start again, return once it accepts connections
#   postgres.sh status   print whether it runs
#   postgres.sh psql     a superuser psql on the ecommerce database
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CLUSTER=ecommerce
PORT="${PGPORT_ECOMMERCE:-5433}"

as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }

install() {
  command -v pg_createcluster >/dev/null && return
  echo "postgres: installing Debian's postgresql package"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
}

version() { ls /usr/lib/postgresql | sort -n | tail -n 1; }

create_cluster() {
  local v; v=$(version)
  pg_lsclusters -h | awk '{print $2}' | grep -qx "$CLUSTER" && return
  echo "postgres: creating cluster $v/$CLUSTER on port $PORT"
  # wal_level=logical: a CDC-based relay can later read the outbox from the WAL.
  pg_createcluster "$v" "$CLUSTER" --port "$PORT" -- --auth-local=peer --auth-host=scram-sha-256 >/dev/null
  cat > "/etc/postgresql/$v/$CLUSTER/conf.d/ecommerce.conf" <<CONF
listen_addresses = '127.0.0.1'
wal_level = logical
max_connections = 300
shared_buffers = 256MB
max_wal_size = 2GB
CONF
}

up() {
  install
  create_cluster
  local v; v=$(version)
  online || pg_ctlcluster "$v" "$CLUSTER" start
  wait_ready
  PGOPTIONS="-c client_min_messages=warning" as_postgres psql -p "$PORT" -v ON_ERROR_STOP=1 -q -f - postgres < "$HERE/init.sql" >/dev/null
  echo "postgres: ready on 127.0.0.1:$PORT (database ecommerce)"
}

online() { pg_lsclusters -h 2>/dev/null | awk -v c="$CLUSTER" '$2==c && $4=="online"' | grep -q .; }

wait_ready() {
  for _ in $(seq 1 60); do
    as_postgres psql -p "$PORT" -Atqc 'select 1' postgres >/dev/null 2>&1 && return
    sleep 0.5
  done
  echo "postgres: not accepting connections after 30 s" >&2
  return 1
}

down() {
  command -v pg_ctlcluster >/dev/null || return 0
  online || return 0
  pg_ctlcluster "$(version)" "$CLUSTER" stop -m fast
}

# start and restart serve outages on purpose (tests/e2e/test_fault_matrix.py, operators): unlike
# `up` they install nothing and apply no init.sql, so the database is back as fast as Postgres is.
start() {
  online || pg_ctlcluster "$(version)" "$CLUSTER" start
  wait_ready
}

restart() {
  pg_ctlcluster "$(version)" "$CLUSTER" restart -m fast
  wait_ready
}

status() {
  if online; then
    echo "postgres  running  127.0.0.1:$PORT  pid $(head -n 1 "/var/lib/postgresql/$(version)/$CLUSTER/postmaster.pid")"
  else
    echo "postgres  stopped"
  fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  start) start ;;
  restart) restart ;;
  status) status ;;
  psql) shift; cd /tmp && as_postgres psql -p "$PORT" ecommerce "$@" ;;
  *) sed -n '2,11p' "$0" >&2; exit 2 ;;
esac
