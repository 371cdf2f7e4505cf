#!/usr/bin/env bash
# A broker of docker-compose.yml: the apache/kafka image's own start (/etc/kafka/docker/run: its
# configure step writes the server properties from the KAFKA_* environment, its launch step formats
# the storage if need be and starts the broker), with the storage formatted first with the SCRAM
# users, as infra/kafka/kafka.sh formats the local brokers'. The development passwords, as kafka.sh's.
set -euo pipefail

. /etc/kafka/docker/bash-config
[ -z "${KAFKA_ZOOKEEPER_CONNECT-}" ] && . /etc/kafka/docker/configureDefaults
/etc/kafka/docker/configure

password_of() {
  local var="SCRAM_$(echo "$1" | tr '[:lower:]' '[:upper:]')_PASSWORD"
  echo "${!var:-$1-kafka-dev}"
}

config=/opt/kafka/config/server.properties
if [ ! -f "$KAFKA_LOG_DIRS/meta.properties" ]; then
  scram=()
  for principal in broker admin order payment inventory monitor; do  # kafka.sh's SCRAM_PRINCIPALS
    scram+=(--add-scram "SCRAM-SHA-512=[name=$principal,password=$(password_of "$principal")]")
  done
  /opt/kafka/bin/kafka-storage.sh format --cluster-id "$CLUSTER_ID" --config "$config" --ignore-formatted \
    "${scram[@]}" >/dev/null
fi

# The healthcheck's client properties (compose's healthcheck runs kafka-broker-api-versions.sh as the admin).
umask 077
cat > /tmp/admin.properties <<PROPERTIES
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(password_of admin)";
PROPERTIES

# The Prometheus JMX exporter agent (docker-compose.yml's jmx-exporter-agent job fetched it), in the
# broker's JVM only: every Kafka tool run in this container reads KAFKA_OPTS (the healthcheck's
# kafka-broker-api-versions.sh too), and a second agent on the broker's port would stop that JVM.
if [ -n "${JMX_EXPORTER_PORT-}" ]; then
  export KAFKA_OPTS="${KAFKA_OPTS-} -javaagent:/opt/jmx-exporter/jmx_prometheus_javaagent.jar=$JMX_EXPORTER_PORT:/opt/ecommerce/jmx-exporter.yml"
fi

exec /etc/kafka/docker/launch
