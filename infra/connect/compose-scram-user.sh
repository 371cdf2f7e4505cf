#!/usr/bin/env bash
# docker-compose.yml's connect-scram job (COMPOSE_PROFILES=debezium), in the brokers' image: the
# connect principal's SCRAM user on the running cluster, as the admin, if it does not exist yet (as
# `RELAY=debezium infra/kafka/kafka.sh scram-users` does locally; the brokers' storage is formatted
# without it, so that with the built-in relay no other principal exists).
set -euo pipefail

umask 077
cat > /tmp/admin.properties <<PROPERTIES
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="${KAFKA_ADMIN_PASSWORD:?}";
PROPERTIES

configs() { /opt/kafka/bin/kafka-configs.sh --bootstrap-server "${KAFKA_BOOTSTRAP_SERVERS:?}" --command-config /tmp/admin.properties "$@"; }

if configs --describe --entity-type users | grep -q "user-principal 'connect' "; then
  echo "the SCRAM user connect exists"
else
  configs --alter --entity-type users --entity-name connect \
    --add-config "SCRAM-SHA-512=[password=${KAFKA_CONNECT_PASSWORD:?}]" >/dev/null
  echo "the SCRAM user connect created"
fi
