#!/usr/bin/env bash
# Kafka Connect (distributed mode) with the Debezium Postgres connector, from Maven Central jars, run
# with this machine's Java: the other outbox relay (RELAY=debezium; docs/architecture.md,
# "Debezium relay"). Its topics, ACLs and connectors: infra/scripts/connectors.py.
#
#   connect.sh install   resolve the worker's jars into .cache/connect/libs and the Debezium plugin
#                        into .cache/connect/plugins/debezium-postgres, once (needs java + mvn)
#   connect.sh worker    write the worker's properties, then exec the worker (foreground)
#   connect.sh rest      print the REST API's address
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$REPO/infra/connect"
CACHE="$REPO/.cache/connect"
LIBS="$CACHE/libs"
PLUGINS="$CACHE/plugins"
RUN_DIR="${CONNECT_RUN_DIR:-$REPO/.run/connect}"
REST_PORT="${CONNECT_REST_PORT:-8083}"
# Loopback locally; docker-compose.yml listens on the container's network and advertises its name.
REST_HOST="${CONNECT_REST_HOST:-127.0.0.1}"
ADVERTISED_HOST="${CONNECT_ADVERTISED_HOST:-127.0.0.1}"
# Modest: two cores and 4 GB are shared with three brokers, Postgres and nine service processes.
HEAP="${CONNECT_HEAP_OPTS:--Xms128m -Xmx512m}"
BOOTSTRAP="${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096}"
PASSWORD="${KAFKA_CONNECT_PASSWORD:-connect-kafka-dev}"  # development only, like the other principals'

install() {
  if [ -f "$CACHE/.complete" ] && [ "$CACHE/.complete" -nt "$HERE/pom.xml" ] \
      && [ "$CACHE/.complete" -nt "$HERE/plugin/pom.xml" ]; then return; fi
  command -v java >/dev/null || { echo "java is missing: apt-get install -y openjdk-17-jre-headless" >&2; exit 1; }
  command -v mvn >/dev/null || { echo "mvn is missing: apt-get install -y maven" >&2; exit 1; }
  echo "connect: resolving Kafka Connect and the Debezium plugin from Maven Central into $CACHE"
  rm -rf "$CACHE"
  mvn -q -B -f "$HERE/pom.xml" dependency:copy-dependencies -DoutputDirectory="$LIBS" -DincludeScope=runtime
  mvn -q -B -f "$HERE/plugin/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$PLUGINS/debezium-postgres" -DincludeScope=runtime
  touch "$CACHE/.complete"
}

write_config() {
  mkdir -p "$RUN_DIR"
  umask 077  # it holds the principal's password
  sed -e "s#@BOOTSTRAP@#$BOOTSTRAP#g" \
      -e "s#@REST_PORT@#$REST_PORT#g" \
      -e "s#@REST_HOST@#$REST_HOST#g" \
      -e "s#@ADVERTISED_HOST@#$ADVERTISED_HOST#g" \
      -e "s#@PLUGIN_PATH@#$PLUGINS#g" \
      -e "s#@PASSWORD@#$PASSWORD#g" \
      "$HERE/worker.properties.template" > "$RUN_DIR/worker.properties"
}

worker() {
  install
  write_config
  exec java $HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$HERE/log4j2.properties" \
    -cp "$LIBS/*" org.apache.kafka.connect.cli.ConnectDistributed "$RUN_DIR/worker.properties"
}

case "${1:-}" in
  install) install ;;
  worker) worker ;;
  rest) echo "http://127.0.0.1:$REST_PORT" ;;
  *) sed -n '2,10p' "$0" >&2; exit 2 ;;
esac
